"""The code base stays ruff-clean and type-checks; a lint failure fails the suite like any
other bug."""

from __future__ import annotations

import subprocess
import sys

from tests.conftest import REPO


def test_ruff_check_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "check", "--no-cache", "."],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_format_is_clean():
    result = subprocess.run(
        [sys.executable, "-m", "ruff", "format", "--check", "--no-cache", "."],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_finds_no_type_errors():
    """``[tool.mypy]`` in pyproject.toml says how strict; every ``type: ignore`` says why."""
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "core", "plugins", "catalog"],
        cwd=REPO, capture_output=True, text=True,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
