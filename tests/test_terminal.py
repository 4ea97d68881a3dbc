"""Terminal habits: narrow terminals, ``-h``, ``NO_COLOR``, ``--quiet``, completion.

Tables are only fitted to the terminal when output is one, so the width tests run the
command line in a pseudo-terminal of a known size, as a person would see it.
"""

from __future__ import annotations

import fcntl
import json
import os
import pty
import re
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

from core.cli import COMMANDS
from tests.conftest import REPO
from tests.test_cli import generate

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def in_terminal(*args: str, columns: int, env: dict[str, str] | None = None) -> str:
    """What ``reelvault ARGS`` prints on a terminal ``columns`` wide (stdout and stderr)."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 50, columns, 0, 0))
    environment = {**os.environ, **(env or {})}
    environment.pop("COLUMNS", None)
    environment.pop("FORCE_COLOR", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "core", *args],
        stdin=follower,
        stdout=follower,
        stderr=follower,
        cwd=REPO,
        env=environment,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the other side closed: the command ended
            break
        if not chunk:
            break
        chunks.append(chunk)
    process.wait(timeout=60)
    os.close(leader)
    return b"".join(chunks).decode()


def test_list_at_80_columns_keeps_every_id_whole(run, home: Path, still: Path):
    long_prompt = "a slow push in over the harbor at dawn while gulls circle the masts " * 2
    clips = [generate(run, still, prompt=long_prompt), generate(run, still, prompt="pan left")]
    clips.append(json.loads(run("remix", clips[1]["id"], "-p", "tilt", "--json").stdout))
    shown = in_terminal("list", columns=80)
    lines = shown.splitlines()
    assert all(len(ANSI.sub("", line)) <= 80 for line in lines)
    for clip in clips:
        assert clip["id"] in shown  # whole, on one line
    assert shown.count(clips[1]["id"]) == 2  # as the remix's parent too, whole
    first_words = [ANSI.sub("", line).split()[0] for line in lines if line.startswith("clip_")]
    assert sorted(first_words) == sorted(clip["id"] for clip in clips)


def test_assets_at_80_columns_keep_each_long_id_whole_and_the_rest_readable(
    run, home: Path, still: Path
):
    """An asset's id is 68 characters: beside it a table would fold every other column to
    a letter a line, so each asset becomes a block, its id first, on a line of its own."""
    clip = generate(run, still)
    ids = [asset["id"] for asset in json.loads(run("assets", "--json").stdout)]
    shown = ANSI.sub("", in_terminal("assets", columns=80))
    lines = shown.splitlines()
    assert all(len(line) <= 80 for line in lines)
    assert [line.strip() for line in lines if not line.startswith(" ")] == ids
    assert "name still.jpg" in shown and f"name video of {clip['id']}" in shown
    assert "provenance absent" in shown
    wide = ANSI.sub("", in_terminal("assets", columns=200)).splitlines()
    assert wide[0].split() == ["id", "created", "type", "size", "provenance", "parents",
                               "children", "name"]  # fmt: skip
    assert [line.split()[0] for line in wide[1:] if line.strip()] == ids


def test_models_fit_100_columns_with_whole_model_names(run, home: Path):
    shown = ANSI.sub("", in_terminal("models", columns=100))
    assert all(len(line) <= 100 for line in shown.splitlines())
    for model in json.loads(run("models", "--json").stdout):
        assert re.search(rf"\b{re.escape(model['model'])}\b", shown)


def test_no_color_means_no_ansi_at_all(run, home: Path, still: Path):
    generate(run, still)
    coloured = in_terminal("list", columns=120)
    assert ANSI.search(coloured), "the table heading is expected to be bold on a terminal"
    plain = in_terminal("list", columns=120, env={"NO_COLOR": "1"})
    assert "\x1b[" not in plain and "created" in plain


def test_quiet_hides_warnings(run, home: Path, still: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("REELVAULT_PLUGINS", "no_such_module_for_reelvault")
    loud = run("list")
    assert "warning: plugin" in loud.stderr
    assert "warning" not in run("--quiet", "list").stderr


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_dash_h_works_on_every_command(run, command: str):
    shown = run(command, "-h").stdout
    assert shown.startswith("Usage:") and "-h, --help" in shown


def test_dash_h_works_on_every_subcommand(run):
    """``-h`` reaches the commands of each command group too (``media where``, ``trust
    add``, …), not only the top level."""
    import click

    from core.cli import cli

    context = click.Context(cli)
    groups = {name: cli.get_command(context, name) for name in sorted(COMMANDS)}
    pairs = [
        (name, sub)
        for name, group in groups.items()
        if isinstance(group, click.Group)
        for sub in group.list_commands(context)
    ]
    assert {name for name, _ in pairs} >= {"media", "policy", "consent", "trust", "signing"}
    for name, sub in pairs:
        shown = run(name, sub, "-h").stdout
        assert shown.startswith("Usage:") and f"{name} {sub}" in shown, (name, sub)
        assert "-h, --help" in shown, (name, sub)


def test_dash_h_works_on_the_group(run):
    assert "Commands:" in run("-h").stdout


def test_shell_completion_script_is_offered(home: Path):
    env = {**os.environ, "_REELVAULT_COMPLETE": "bash_source"}
    script = subprocess.run(
        [sys.executable, "-m", "core"], env=env, capture_output=True, text=True, cwd=REPO
    )
    assert "complete" in script.stdout and "_REELVAULT_COMPLETE" in script.stdout


def test_show_gives_the_latest_check_per_verifier_and_counts_the_rest(run, still: Path):
    clips = [generate(run, still, prompt=f"pan left {n}") for n in range(3)]
    shown = json.loads(run("show", clips[-1]["id"], "--json").stdout)
    history = shown["source"]["verifications"]
    verifiers = {v["verifier"] for v in history}
    assert len(history) > len(verifiers), "the still is expected to be checked per clip"
    text = run("show", clips[-1]["id"]).stdout
    source_block = text.split("source", 1)[1].split("\nvideo", 1)[0]
    checks = [line for line in source_block.splitlines() if "verified by" in line]
    assert len(checks) == len(verifiers)
    earlier = len(history) // len(verifiers) - 1
    assert all(f"({earlier} earlier check" in line for line in checks)
