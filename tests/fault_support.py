"""What the ``test_faults*`` modules share: one clip made through the CLI, and the check
that a fault ends in exactly one line and exit status 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import on_postgresql

sqlite_only = pytest.mark.skipif(on_postgresql(), reason="damages a SQLite catalog file")


def make_clip(run, still: Path) -> str:
    data = json.loads(run("generate", still, "-p", "pan right", "--json").stdout)
    return data["id"]


def one_line_exit_2(run, *args: str) -> str:
    result = run(*args, expect=2)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]
