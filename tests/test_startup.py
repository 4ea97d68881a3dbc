"""Quick start-up: commands load their modules (and the heavy libraries) only to run.

Timings are bench/'s business; these tests check what is imported and that the static
command table ``--help`` shows is the truth about the commands the modules define.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from core.cli import COMMANDS, cli
from tests.conftest import REPO

HEAVY = ("numpy", "av", "PIL", "cv2", "c2pa", "prov", "pydot", "starlette")


def imported_after(code: str, env_home: Path | None = None) -> list[str]:
    """The heavy libraries a fresh interpreter has imported after running ``code``."""
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(env_home or REPO)}
    if env_home is not None:
        env["REELVAULT_HOME"] = str(env_home)
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def test_importing_the_cli_loads_no_heavy_library() -> None:
    assert imported_after("import core.cli") == []


def test_help_and_an_empty_list_load_no_heavy_library(tmp_path: Path) -> None:
    for argv in (["--help"], ["list"]):
        code = (
            "from click.testing import CliRunner\nfrom core.cli import cli\n"
            f"result = CliRunner().invoke(cli, {argv!r})\n"
            "assert result.exit_code == 0, result.output\n"
        )
        assert imported_after(code, env_home=tmp_path / "home") == [], argv


def test_help_lists_every_command_with_its_short_help() -> None:
    output = CliRunner().invoke(cli, ["--help"], terminal_width=200).output
    listed = output.split("Commands:\n", 1)[1].splitlines()
    shown = dict(line.strip().split(None, 1) for line in listed if line.strip())
    assert set(COMMANDS) <= set(shown)
    for name, (_, short_help) in COMMANDS.items():
        assert shown[name] == short_help


def test_the_command_table_matches_the_commands_the_modules_define() -> None:
    for module in {module for module, _ in COMMANDS.values()}:
        importlib.import_module(module)
    built_in = {
        name: (command.callback.__module__, command.get_short_help_str(limit=1000))
        for name, command in cli.commands.items()
        if command.callback and command.callback.__module__.startswith("core.cli.")
    }
    assert built_in == COMMANDS
