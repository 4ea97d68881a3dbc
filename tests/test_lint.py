"""The code base stays ruff-clean and type-checks; a lint failure fails the suite like any
other bug."""

from __future__ import annotations

import re
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


IGNORE = re.compile(r"#\s*type:\s*ignore(?P<rest>.*)$")
EXPLAINED = re.compile(r"^\[[a-z0-9-]+(?:,\s*[a-z0-9-]+)*\]\s+#\s*\S")
"""A silenced error names its codes and then says why: ``# type: ignore[code]  # because``."""


def unexplained_lines(text: str) -> list[int]:
    """The numbers of the lines holding a ``type: ignore`` without codes or a reason."""
    return [
        number
        for number, line in enumerate(text.splitlines(), 1)
        if (found := IGNORE.search(line)) and not EXPLAINED.match(found.group("rest"))
    ]


def unexplained_in(module: str) -> list[str]:
    lines = (REPO / module).read_text(encoding="utf-8").splitlines()
    return [f"{module}:{n}: {lines[n - 1].strip()}" for n in unexplained_lines("\n".join(lines))]


def checked_modules() -> list[str]:
    return sorted(
        path.relative_to(REPO).as_posix()
        for package in ("core", "plugins", "catalog")
        for path in (REPO / package).rglob("*.py")
    )


def test_every_type_ignore_says_why():
    unexplained = [line for module in checked_modules() for line in unexplained_in(module)]
    assert not unexplained, "say why after each (`# type: ignore[code]  # why`):\n" + "\n".join(
        unexplained
    )


def test_an_ignore_without_codes_or_a_reason_is_found():
    text = "\n".join(
        [
            "a = f()  # type: ignore[call-arg]",
            "b = f()  # type: ignore",
            "c = f()  # type: ignore  # no codes, so it silences everything",
            "d = f()  # type: ignore[call-arg, arg-type]  # f is declared without arguments",
        ]
    )
    assert unexplained_lines(text) == [1, 2, 3]
