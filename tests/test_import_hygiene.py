"""What may be imported where: optional extras stay optional, and every module imports on
Windows (no Unix-only module at import time, no ``os.fchmod``)."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO

PACKAGES = ("core", "plugins", "catalog")
UNIX_ONLY = ("fcntl", "pwd", "grp", "termios", "resource")


def python_files(*packages: str) -> list[Path]:
    return sorted(p for package in packages for p in (REPO / package).rglob("*.py"))


def imported_modules(path: Path) -> set[str]:
    """Every module an ``import`` or ``from ... import`` in the file names, at any depth."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)
    return found


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def importable_modules(*packages: str) -> list[str]:
    """Every module of the packages that importing does not run: not ``__main__`` (it runs
    the CLI) nor Alembic's migration scripts (Alembic loads those itself)."""
    names = [module_name(p) for p in python_files(*packages)]
    return [n for n in names if not n.endswith(".__main__") and ".migrations." not in f"{n}."]


BLOCKER = """
import importlib, importlib.abc, json, sys

class Blocker(importlib.abc.MetaPathFinder):
    def __init__(self, names):
        self.names = set(names)

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in self.names:
            raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)")
        return None

blocked, modules = json.loads(sys.argv[1]), json.loads(sys.argv[2])
for name in blocked:
    sys.modules.pop(name, None)
sys.meta_path.insert(0, Blocker(blocked))
failed = {}
for module in modules:
    try:
        importlib.import_module(module)
    except BaseException as exc:  # SystemExit too: one module must not hide the rest
        failed[module] = f"{type(exc).__name__}: {exc}"
print(json.dumps(failed))
"""


def import_with_blocked(blocked: tuple[str, ...], modules: list[str]) -> dict[str, str]:
    """Import ``modules`` in a fresh interpreter where ``blocked`` cannot be imported;
    returns the modules that failed, with their error."""
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, json.dumps(blocked), json.dumps(modules)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_every_module_imports_without_unix_only_modules():
    modules = importable_modules(*PACKAGES)
    assert "catalog.db" in modules and "core.remote.profiles" in modules
    assert import_with_blocked(UNIX_ONLY, modules) == {}


def test_the_blocker_does_catch_a_module_level_unix_import(tmp_path: Path):
    """The check above would pass vacuously if the blocker blocked nothing."""
    (tmp_path / "needs_fcntl_probe.py").write_text("import fcntl\n")
    done = subprocess.run(
        [sys.executable, "-c", BLOCKER, json.dumps(UNIX_ONLY), '["needs_fcntl_probe"]'],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    failed = json.loads(done.stdout.strip().splitlines()[-1])
    assert "blocked by the test" in failed["needs_fcntl_probe"]


def uses_fchmod(path: Path) -> bool:
    """Whether the code (not its prose) names ``fchmod``: ``os.fchmod`` or an import of it."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Attribute) and node.attr == "fchmod":
            return True
        if isinstance(node, ast.Name) and node.id == "fchmod":
            return True
        if isinstance(node, ast.ImportFrom) and any(a.name == "fchmod" for a in node.names):
            return True
    return False


def test_nothing_calls_os_fchmod_which_windows_lacks(tmp_path: Path):
    offenders = [str(p.relative_to(REPO)) for p in python_files(*PACKAGES) if uses_fchmod(p)]
    assert offenders == []
    probe = tmp_path / "probe.py"
    probe.write_text("import os\n\nos.fchmod(3, 0o600)\n")
    assert uses_fchmod(probe)  # the check does see a call


def test_only_core_testing_imports_python_multipart():
    testing = REPO / "core" / "testing"
    offenders = [
        str(p.relative_to(REPO))
        for p in python_files(*PACKAGES)
        if testing not in p.parents and "python_multipart" in imported_modules(p)
    ]
    assert offenders == []
    assert any("python_multipart" in imported_modules(p) for p in testing.rglob("*.py"))


def test_core_testing_without_python_multipart_names_the_extra():
    failed = import_with_blocked(("python_multipart", "multipart"), ["core.testing"])
    assert "pip install 'reelvault[testing]'" in failed["core.testing"]
    assert failed["core.testing"].startswith("ImportError: core.testing needs python-multipart")


def test_the_rest_of_reelvault_imports_without_python_multipart():
    outside = [m for m in importable_modules(*PACKAGES) if not m.startswith("core.testing")]
    assert import_with_blocked(("python_multipart", "multipart"), outside) == {}


def kills(path: Path) -> list[int]:
    """Lines calling ``os.kill`` (a probe on POSIX, a termination on Windows)."""
    return [
        node.lineno
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Call) and ast.unparse(node.func) in ("os.kill", "kill")
    ]


def test_only_core_api_processes_probes_a_pid():
    """The platform check lives in one place: anyone else asking would need it too."""
    offenders = [
        f"{p.relative_to(REPO).as_posix()}:{line}"
        for p in python_files(*PACKAGES)
        if p != REPO / "core" / "api" / "processes.py"
        for line in kills(p)
    ]
    assert offenders == []


def test_a_process_is_asked_after_only_where_asking_cannot_end_it(
    monkeypatch: pytest.MonkeyPatch,
):
    """On Windows ``os.kill(pid, 0)`` terminates the process, so there nothing is probed:
    a finisher's claim waits out its lease and a render's leftovers are kept."""
    import socket

    from core.api import processes
    from core.generation.claim import holder_gone
    from plugins.local_backend import jobs

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    holder = f"finishing:{socket.gethostname()}:{ended.pid}:abc123"
    partial = f".video.mp4.{jobs._HOST}-{ended.pid}-1.partial"
    assert processes.process_ended(ended.pid) and not processes.process_ended(os.getpid())
    assert holder_gone(holder) and jobs._writer_gone(partial)

    def terminate(pid: int, sig: int) -> None:
        raise AssertionError(f"os.kill({pid}, {sig}) would end that process on Windows")

    monkeypatch.setattr(processes.os, "kill", terminate)
    monkeypatch.setattr(processes, "PROBE_IS_SAFE", False)  # as on Windows
    assert not processes.process_ended(ended.pid)
    assert not holder_gone(holder) and not jobs._writer_gone(partial)
