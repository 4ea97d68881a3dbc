"""A damaged, emptied or half-created catalog ends in one clear line, and ``backup`` and
``doctor`` leave a state the next command can use (issue 10, case 3).

The other faults of issue 10 are staged in the ``test_faults_*`` modules beside this
one: hostile input, interrupted jobs, and what an interruption leaves behind.
"""

from __future__ import annotations

import json
import os
import sqlite3
import time
from pathlib import Path

import pytest

from core.api.settings import Settings
from core.host.app import Reelvault
from core.library.doctor import doctor
from tests import sora_support
from tests.fault_support import make_clip, one_line_exit_2, sqlite_only

api = sora_support.api


# -- (3) a damaged catalog ------------------------------------------------------------


@sqlite_only
def test_random_bytes_catalog_is_one_line_naming_the_file(home: Path, run):
    home.mkdir(parents=True)
    catalog = home / "catalog.db"
    catalog.write_bytes(os.urandom(20_000))
    line = one_line_exit_2(run, "list")
    assert str(catalog) in line and "damaged" in line and "backup" in line
    for command in (["jobs"], ["resume"], ["doctor"], ["worker", "--until-idle"], ["gc"]):
        assert one_line_exit_2(run, *command) == line, command
    assert one_line_exit_2(run, "backup", home / "copy.db") == line


@sqlite_only
@pytest.mark.parametrize("damage", ["truncated", "zeroed page"])
def test_damaged_catalog_of_a_real_library(home: Path, run, still: Path, damage: str):
    clip = make_clip(run, still)
    catalog = home / "catalog.db"
    data = bytearray(catalog.read_bytes())
    page = 4096
    if damage == "truncated":
        data = data[: len(data) // 2 + 100]
    else:
        for number in range(1, len(data) // page):
            data[number * page : (number + 1) * page] = bytes(page)
    catalog.write_bytes(bytes(data))
    for wal in home.glob("catalog.db-*"):
        wal.unlink()
    for command in (["list"], ["show", clip], ["audit"]):
        line = one_line_exit_2(run, *command)
        assert str(catalog) in line, line


@sqlite_only
def test_emptied_catalog_beside_a_full_store_says_so(home: Path, run, still: Path):
    make_clip(run, still)
    catalog = home / "catalog.db"
    catalog.write_bytes(b"")
    for wal in home.glob("catalog.db-*"):
        wal.unlink()
    for command in (["list"], ["audit"]):
        line = one_line_exit_2(run, *command)
        assert "empty" in line and str(catalog) in line and "holds files" in line
    assert catalog.stat().st_size == 0  # nothing was written over it


@sqlite_only
def test_a_catalog_being_created_is_never_taken_for_an_emptied_one(
    home: Path, run, still: Path, monkeypatch: pytest.MonkeyPatch
):
    """Two first commands in a new library: one writes the still and makes the catalog
    while the other looks at the catalog's empty file. The file is first opened only
    under the upgrade lock, and an empty file counts as emptied only once that lock is
    free and the file is still empty."""
    from filelock import FileLock, Timeout

    import catalog.db

    make_clip(run, still)  # the store holds files
    fresh = home / "second.db"
    lock = FileLock(fresh.with_suffix(".migrate-lock"))
    opened_under_lock: list[bool] = []
    real_journal_mode = catalog.db._journal_mode

    def spying_journal_mode(engine, switch_to=None):  # type: ignore[no-untyped-def]
        try:
            with FileLock(fresh.with_suffix(".migrate-lock"), timeout=0):
                opened_under_lock.append(False)
        except Timeout:
            opened_under_lock.append(True)
        return real_journal_mode(engine, switch_to)

    monkeypatch.setattr(catalog.db, "_journal_mode", spying_journal_mode)
    app = Reelvault(Settings.load(home=home, db_url=f"sqlite:///{fresh}"))
    app.engine  # noqa: B018 (opening makes the catalog)
    app.close()
    assert opened_under_lock and all(opened_under_lock)
    assert fresh.stat().st_size > 0

    fresh.write_bytes(b"")  # another process's first opening, caught mid-creation
    with lock:
        assert not catalog.db.left_empty(fresh)
    assert catalog.db.left_empty(fresh)  # nobody is making it: it was emptied


@sqlite_only
def test_backup_is_a_catalog_with_the_same_clips(home: Path, run, still: Path, tmp_path: Path):
    clip = make_clip(run, still)
    copy = tmp_path / "backup.db"
    assert "backed up" in run("backup", copy).output
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT id FROM generations").fetchall() == [(clip,)]
    line = one_line_exit_2(run, "backup", copy)  # never overwrites
    assert "already exists" in line
    assert not list(tmp_path.glob("*.partial"))


def test_backup_of_postgresql_says_to_use_pg_dump(tmp_path: Path):
    from catalog.health import backup
    from core.api.errors import RequestError

    engine = __import__("sqlalchemy").create_engine("postgresql+psycopg://u@127.0.0.1:1/x")
    with pytest.raises(RequestError, match="pg_dump"):
        backup(engine, tmp_path / "x")


def test_doctor_finds_and_fixes_only_what_is_safe(home: Path, run, still: Path, app: Reelvault):
    clip = make_clip(run, still)
    assert run("doctor").exit_code == 0
    work = app.settings.work_dir
    partial = work / "incoming" / "video-abc123"
    partial.parent.mkdir(parents=True, exist_ok=True)
    partial.write_bytes(b"x" * 1000)
    dead_job = work / "local" / "local_000000000000000000000000"
    dead_job.mkdir(parents=True)
    (dead_job / "input.png").write_bytes(b"y" * 500)
    fresh = work / "incoming" / "video-being-written"
    fresh.write_bytes(b"z")
    old = time.time() - 7200
    for path in (partial, dead_job / "input.png", dead_job):
        os.utime(path, (old, old))
    orphan = app.store.put_stream(__import__("io").BytesIO(b"a file no row names"))
    os.utime(orphan.path, (old, old))
    with app.session() as session:
        from catalog.queries import get_generation

        row = get_generation(session, clip)
        row.status = "in_progress"
        row.updated_at = row.updated_at.replace(year=2020)
        session.add(row)

    report = json.loads(run("doctor", "--json", expect=1).stdout)
    assert report["stuck"] == [clip]
    assert report["orphans"] == [orphan.sha256]
    assert sorted(report["leftovers"]) == sorted([str(partial), str(dead_job)])

    text = run("doctor", "--fix", expect=1).output
    assert "resume" in text and "orphan files: 1" in text and "removed 2" in text
    assert not partial.exists() and not dead_job.exists()
    assert fresh.exists()  # may be in use by a running download
    assert orphan.path.exists()  # may be the only copy of a clip: never deleted here
    assert doctor(Reelvault(Settings.load(home=home))).leftovers == []


@sqlite_only
def test_doctor_reports_a_catalog_that_fails_its_integrity_check(home: Path, run, still: Path):
    """A catalog that still opens but whose index no longer matches its rows: the
    commands go on working, and doctor is what finds it."""
    make_clip(run, still)
    with sqlite3.connect(home / "catalog.db") as conn:
        conn.execute("PRAGMA writable_schema=ON")
        conn.execute(
            "UPDATE sqlite_master SET sql = 'CREATE INDEX ix_generations_status "
            "ON generations (prompt)' WHERE name = 'ix_generations_status'"
        )
    report = json.loads(run("doctor", "--json", expect=1).stdout)
    assert report["integrity"] == ["row 1 missing from index ix_generations_status"]
    assert report["healthy"] is False
    text = run("doctor", expect=1).output.strip().splitlines()
    assert text == [
        "catalog damaged: row 1 missing from index ix_generations_status — restore it "
        "from a backup (`reelvault backup` makes one)"
    ]


# -- docs/operations.md: what the issue asks it to cover, with the figures in force -------


def test_operations_doc_covers_every_command_and_status_with_the_limits_in_force():
    import re

    from catalog.search import MAX_SEARCH_TEXT
    from core.api.types import GenerationStatus
    from core.library.doctor import STUCK_AFTER
    from core.remote import webhooks
    from tests.conftest import REPO

    text = (REPO / "docs" / "operations.md").read_text()
    flat = " ".join(text.split())
    for command in ("reelvault backup", "reelvault doctor", "reelvault resume", "resume --retry"):
        assert command in text, command
    for status in GenerationStatus:  # each in the first cell of a row of the status table
        assert re.search(rf"^\| [^|]*`{status.value}`", text, re.MULTILINE), status
    assert f"at most {MAX_SEARCH_TEXT:,} characters" in flat
    assert f"at most {webhooks.MAX_CONNECTIONS} connections" in flat
    assert f"{webhooks.READ_TIMEOUT_SECONDS:g} seconds to send its request" in flat
    assert STUCK_AFTER.total_seconds() == 3600 and "untouched for an hour" in flat
