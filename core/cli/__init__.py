"""The ``reelvault`` command line: the click group and one module per command area."""

from __future__ import annotations

import importlib

from core.cli.base import cli, default_host

__all__ = ["cli", "main"]

COMMAND_MODULES: tuple[str, ...] = (
    "core.cli.clips",
    "core.cli.library",
    "core.cli.media",
    "core.cli.plugins",
    "core.cli.policy",
    "core.cli.queue",
    "core.cli.provenance",
    "core.cli.remote",
    "core.cli.web",
)


def _attach_command_modules() -> None:
    """Each command area's module adds its commands to :data:`cli` when imported."""
    for module in COMMAND_MODULES:
        importlib.import_module(module)


_attach_command_modules()
default_host().hook.register_commands(cli=cli)


def main() -> None:
    cli(prog_name="reelvault")
