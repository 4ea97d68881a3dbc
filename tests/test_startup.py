"""Quick start-up: commands load their modules (and the heavy libraries) only to run.

Timings are bench/'s business; these tests check what is imported and that the static
command table ``--help`` shows is the truth about the commands the modules define.
"""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from catalog.db import (
    _alembic_config,
    create_engine,
    current_revisions,
    head_revisions,
    open_catalog,
)
from catalog.migrations import HEADS
from core.api.settings import ANCHORS_CACHE, Settings
from core.cli import COMMANDS, cli
from core.provenance.signing import make_dev_chain
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


def modules_after(code: str, names: tuple[str, ...], env_home: Path) -> set[str]:
    """Which of ``names`` a fresh interpreter has imported after running ``code``."""
    probe = (
        f"{code}\nimport sys, json\n"
        f"print(json.dumps(sorted(m for m in {names!r} if m in sys.modules)))"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(env_home), "REELVAULT_HOME": str(env_home)}
    result = subprocess.run(
        [sys.executable, "-c", probe], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    return set(json.loads(result.stdout.splitlines()[-1]))


def run_cli(argv: list[str], exit_code: int = 0) -> str:
    """Code for :func:`modules_after` that runs one command as ``reelvault`` would."""
    return (
        "from click.testing import CliRunner\nfrom core.cli import cli\n"
        f"result = CliRunner().invoke(cli, {argv!r})\n"
        f"assert result.exit_code == {exit_code}, result.output\n"
    )


UPGRADE_ONLY = ("alembic", "filelock")
"""What only creating or upgrading a catalog needs."""
UNUSED_BY_LIST = ("httpx", "tenacity", "tomlkit", "sqlalchemy.dialects.postgresql")
"""What plugins and the catalog modules import at their first use, which ``list`` on a
SQLite catalog never reaches."""


def test_list_checks_a_current_schema_without_alembic(tmp_path: Path) -> None:
    home = tmp_path / "home"
    probe = (*UPGRADE_ONLY, *UNUSED_BY_LIST, "sqlmodel")
    # The first command makes the catalog: that is an upgrade, and it goes through Alembic.
    assert {*UPGRADE_ONLY, "sqlmodel"} <= modules_after(run_cli(["list"]), probe, home)
    # Every later one reads the version table itself, and still runs the real query.
    assert modules_after(run_cli(["list"]), probe, home) == {"sqlmodel"}


def test_the_heads_opening_compares_with_are_alembics() -> None:
    """A new migration must update ``catalog.migrations.HEADS`` with it, or every command
    would take the catalog for an outdated one (and import Alembic to find nothing to do)."""
    assert head_revisions() == HEADS


def test_heads_lagging_behind_the_migrations_change_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Should a migration be merged without its revision in HEADS, opening a catalog
    compares with Alembic's heads before changing anything: no upgrade, no ANALYZE."""
    url = f"sqlite:///{tmp_path / 'c.db'}"
    open_catalog(url).dispose()
    before = (tmp_path / "c.db").stat().st_mtime_ns
    monkeypatch.setattr("catalog.db.HEADS", frozenset({"0008_removals"}))
    open_catalog(url).dispose()
    assert (tmp_path / "c.db").stat().st_mtime_ns == before
    assert current_revisions(create_engine(url)) == head_revisions()


def test_the_version_table_is_read_as_alembic_reads_it(tmp_path: Path) -> None:
    from alembic import command
    from alembic.runtime.migration import MigrationContext

    engine = create_engine(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        assert current_revisions(engine) == frozenset()  # a new, empty database
        for branch in ("0002", "0003"):  # two branches: one version row each
            with engine.begin() as conn:
                command.upgrade(_alembic_config(conn), branch)
        with engine.connect() as conn:
            alembic_view = frozenset(MigrationContext.configure(conn).get_current_heads())
        assert current_revisions(engine) == alembic_view == {"0002", "0003"}
    finally:
        engine.dispose()


def test_verify_of_a_file_opens_no_catalog_and_decodes_nothing(tmp_path: Path) -> None:
    """``verify PATH`` needs the verifier plugin and c2pa, not the catalog nor a decoder;
    the trust anchors are parsed (with cryptography) once, not by every command."""
    home = tmp_path / "home"
    modules_after(run_cli(["signing", "init"]), (), home)  # a trust anchor to hand c2pa
    still = REPO / "examples" / "harbor.jpg"  # no credentials: verified as absent, exit 1
    verify = run_cli(["verify", str(still)], 1)
    probe = ("c2pa", "cryptography", "sqlalchemy", "sqlmodel", "alembic", "av", "PIL", "numpy")
    assert modules_after(verify, probe, home) == {"c2pa", "cryptography"}
    assert modules_after(verify, probe, home) == {"c2pa"}


def test_the_trust_anchors_c2pa_gets_follow_every_change_to_their_files(tmp_path: Path) -> None:
    first = make_dev_chain("bench")
    second = next(c for c in iter(lambda: make_dev_chain("bench"), None)
                  if len(c.ca_pem) == len(first.ca_pem))  # fmt: skip
    settings = Settings.load(home=tmp_path / "home")
    anchors = settings.trust_dir / "anchors.pem"
    anchors.parent.mkdir(parents=True)
    anchors.write_bytes(first.ca_pem)
    parsed = settings.trust_anchors_pem()
    assert parsed and parsed == settings.trust_anchors_pem()  # read back from the cache
    assert (settings.home / "cache" / ANCHORS_CACHE).is_file()
    # Another certificate of the same length and modification time (as a quick rewrite on
    # a coarse clock leaves it): the cache is keyed by the bytes, so it is not fooled.
    written = anchors.stat()
    anchors.write_bytes(second.ca_pem)
    os.utime(anchors, ns=(written.st_atime_ns, written.st_mtime_ns))
    assert settings.trust_anchors_pem() == second.ca_pem.decode() != parsed
    anchors.write_bytes(first.ca_pem[:-200] + b"\n" + second.ca_pem)  # a damaged block first
    assert settings.trust_anchors_pem() == second.ca_pem.decode()
    anchors.unlink()
    assert settings.trust_anchors_pem() == ""


def test_a_deferred_module_is_imported_at_its_first_use_by_any_thread(tmp_path: Path) -> None:
    code = (
        "import sys, threading\n"
        "from core.api.deferred import deferred_import\n"
        "wave = deferred_import('wave')\n"
        "assert 'wave' not in sys.modules\n"
        "barrier = threading.Barrier(8)\n"
        "seen = []\n"
        "def first_use():\n"
        "    barrier.wait()\n"
        "    seen.append(wave.Wave_read)\n"
        "threads = [threading.Thread(target=first_use) for _ in range(8)]\n"
        "for t in threads: t.start()\n"
        "for t in threads: t.join()\n"
        "assert seen == [sys.modules['wave'].Wave_read] * 8, seen\n"
    )
    assert modules_after(code, ("wave",), tmp_path) == {"wave"}
