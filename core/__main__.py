"""``python -m core`` runs the CLI, for environments where the script is not on PATH."""

from core.cli import main

main()
