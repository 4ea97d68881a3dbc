"""All SQL lives in catalog/: core opens sessions and hands them to catalog functions.

Read from the source (an AST walk, no import), so a query written straight into a core
module fails here, however well it works: the catalog is the one place a schema change
has to be followed through, and the catalog depends on nothing in core but ``core.api``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.conftest import REPO

STILL_RUNNING_SQL: frozenset[str] = frozenset()
"""Core modules let off while their SQL moves into catalog/: none are left; a module
that must run SQL for a while is named here, and leaves when its SQL has moved."""
SESSION_SQL = {"exec", "execute", "get", "add", "add_all", "flush", "delete", "merge", "scalar"}
"""Session methods that run SQL or write rows: core calls catalog functions instead."""
SQLALCHEMY_ALLOWED = {"Engine", "exc"}
"""``sa.`` names core may use: the engine's type, and database errors it reports."""


def modules(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def relative(path: Path) -> str:
    return path.relative_to(REPO).as_posix()


def sql_in(tree: ast.AST) -> list[str]:
    """What in one module runs SQL or builds a query, one line per finding."""
    found: list[str] = []
    for node in ast.walk(tree):
        where = f"line {getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.ImportFrom) and node.module:
            if node.module.startswith("sqlalchemy"):
                found.append(f"{where}: imports from {node.module}")
            elif node.module.startswith("sqlmodel"):
                found += [
                    f"{where}: imports {alias.name} from sqlmodel"
                    for alias in node.names
                    if alias.name != "Session"  # a type: core passes sessions along
                ]
        elif isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id == "sa" and node.attr not in SQLALCHEMY_ALLOWED:
                found.append(f"{where}: sa.{node.attr}")
            elif node.value.id == "session" and node.attr in SESSION_SQL:
                found.append(f"{where}: session.{node.attr}")
    return found


@pytest.mark.parametrize(
    "path",
    [p for p in modules("core") if relative(p) not in STILL_RUNNING_SQL],
    ids=relative,
)
def test_core_runs_no_sql_of_its_own(path: Path) -> None:
    assert sql_in(ast.parse(path.read_text(encoding="utf-8"))) == []


def test_the_modules_still_running_sql_are_real_and_still_do() -> None:
    """A module that no longer runs SQL must leave the list, so the list stays honest."""
    for name in sorted(STILL_RUNNING_SQL):
        assert sql_in(ast.parse((REPO / name).read_text(encoding="utf-8"))), name


def test_the_finder_sees_a_query_written_in_core() -> None:
    source = "from sqlmodel import Session, select\nrows = session.exec(select(Thing))\n"
    assert sql_in(ast.parse(source)) == [
        "line 1: imports select from sqlmodel",
        "line 2: session.exec",
    ]


def test_the_catalog_imports_nothing_from_core_but_its_api() -> None:
    wrong: list[str] = []
    for path in modules("catalog"):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = (
                [node.module or ""]
                if isinstance(node, ast.ImportFrom)
                else [alias.name for alias in node.names]
                if isinstance(node, ast.Import)
                else []
            )
            wrong += [
                f"{relative(path)}:{node.lineno} imports {name}"
                for name in names
                if (name == "core" or name.startswith("core."))
                and not (name == "core.api" or name.startswith("core.api."))
            ]
    assert wrong == []
