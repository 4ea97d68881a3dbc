"""Faults end in one clear line and a state the next command can finish (issue 10).

Each test stages one fault a hostile or unlucky user met (a damaged catalog, hostile
text, an oversized search, a missing file, ...) and checks what the user sees then.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from core.api.settings import Settings
from core.host.app import Reelvault
from core.library.doctor import doctor
from tests import sora_support, test_webhooks
from tests.conftest import on_postgresql

api = sora_support.api
still_720p = sora_support.still_720p
announced = test_webhooks.announced
hooked_app = test_webhooks.hooked_app

sqlite_only = pytest.mark.skipif(on_postgresql(), reason="damages a SQLite catalog file")


def _make_clip(run, still: Path) -> str:
    data = json.loads(run("generate", still, "-p", "pan right", "--json").stdout)
    return data["id"]


def _one_line_exit_2(run, *args: str) -> str:
    result = run(*args, expect=2)
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1, result.output
    assert "Traceback" not in result.output
    return lines[0]


# -- (3) a damaged catalog ------------------------------------------------------------


@sqlite_only
def test_random_bytes_catalog_is_one_line_naming_the_file(home: Path, run):
    home.mkdir(parents=True)
    catalog = home / "catalog.db"
    catalog.write_bytes(os.urandom(20_000))
    line = _one_line_exit_2(run, "list")
    assert str(catalog) in line and "damaged" in line and "backup" in line
    for command in (["jobs"], ["resume"], ["doctor"], ["worker", "--until-idle"], ["gc"]):
        assert _one_line_exit_2(run, *command) == line, command
    assert _one_line_exit_2(run, "backup", home / "copy.db") == line


@sqlite_only
@pytest.mark.parametrize("damage", ["truncated", "zeroed page"])
def test_damaged_catalog_of_a_real_library(home: Path, run, still: Path, damage: str):
    clip = _make_clip(run, still)
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
        line = _one_line_exit_2(run, *command)
        assert str(catalog) in line, line


@sqlite_only
def test_emptied_catalog_beside_a_full_store_says_so(home: Path, run, still: Path):
    _make_clip(run, still)
    catalog = home / "catalog.db"
    catalog.write_bytes(b"")
    for wal in home.glob("catalog.db-*"):
        wal.unlink()
    for command in (["list"], ["audit"]):
        line = _one_line_exit_2(run, *command)
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

    _make_clip(run, still)  # the store holds files
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
    clip = _make_clip(run, still)
    copy = tmp_path / "backup.db"
    assert "backed up" in run("backup", copy).output
    with sqlite3.connect(copy) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
        assert conn.execute("SELECT id FROM generations").fetchall() == [(clip,)]
    line = _one_line_exit_2(run, "backup", copy)  # never overwrites
    assert "already exists" in line
    assert not list(tmp_path.glob("*.partial"))


def test_backup_of_postgresql_says_to_use_pg_dump(tmp_path: Path):
    from catalog.health import backup
    from core.api.errors import RequestError

    engine = __import__("sqlalchemy").create_engine("postgresql+psycopg://u@127.0.0.1:1/x")
    with pytest.raises(RequestError, match="pg_dump"):
        backup(engine, tmp_path / "x")


def test_doctor_finds_and_fixes_only_what_is_safe(home: Path, run, still: Path, app: Reelvault):
    clip = _make_clip(run, still)
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
    _make_clip(run, still)
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


# -- (5) control characters in what people typed or files carry -----------------------

HOSTILE = "\x1b]0;owned\x07pan \x1b[2J right\rOVERWRITE\nforged line\x9b31m"


def _assert_escaped(output: str) -> None:
    for raw in ("\x1b", "\x07", "\r", "\x9b"):
        assert raw not in output, repr(output)
    lines = output.splitlines()
    assert not any(line.lstrip().startswith("forged") for line in lines), output


def test_control_characters_are_escaped_for_people_and_exact_in_json(
    home: Path, run, still: Path, tmp_path: Path
):
    hostile_still = tmp_path / "still\x1b[2J\nforged.jpg"
    hostile_still.write_bytes(still.read_bytes())
    run("signing", "init")  # the clip's credentials carry the prompt and the file name
    data = json.loads(run("generate", hostile_still, "-p", HOSTILE, "--json").stdout)
    assert data["prompt"] == HOSTILE  # JSON keeps the exact string
    clip = data["id"]

    shown = run("show", clip).output
    _assert_escaped(shown)
    assert "\\x1b]0;owned\\x07" in shown and "\\n" in shown
    assert json.loads(run("show", clip, "--json").stdout)["prompt"] == HOSTILE

    for args in (["list"], ["list", "--text", "forged"], ["lineage", clip], ["verify", clip]):
        _assert_escaped(run(*args).output)
    assert json.loads(run("list", "--json").stdout)[0]["prompt"] == HOSTILE

    imported = run("import", hostile_still).output
    _assert_escaped(imported)
    assert "\\x1b[2J\\nforged.jpg" in imported
    _assert_escaped(run("verify", hostile_still, expect=1).output)


def test_control_characters_from_an_imported_files_manifest_are_escaped(
    home: Path, run, still: Path, tmp_path: Path, app: Reelvault, monkeypatch
):
    """The prompt and names a signed clip carries, read back from its credentials by
    ``import`` into another library: escaped by import, show, list, lineage and verify."""
    run("signing", "init")
    data = json.loads(run("generate", still, "-p", HOSTILE, "--json").stdout)
    signed = tmp_path / "clip\x1b]0;x\x07.mp4"
    signed.write_bytes(app.store.local_path(data["video"]["sha256"]).read_bytes())

    monkeypatch.setenv("REELVAULT_HOME", str(tmp_path / "other-home"))
    if on_postgresql():
        monkeypatch.delenv("REELVAULT_DB")  # a library of its own, on SQLite
    _assert_escaped(run("import", signed).output)
    (row,) = json.loads(run("list", "--json").stdout)
    assert row["prompt"] == HOSTILE  # read from the manifest, exact in JSON
    for args in (["show", row["id"]], ["list"], ["lineage", row["id"]], ["verify", signed]):
        output = run(*args).output
        _assert_escaped(output)
    assert "\\x1b]0;owned\\x07" in run("show", row["id"]).output


def test_errors_naming_hostile_files_are_escaped(home: Path, run, tmp_path: Path):
    missing = tmp_path / "gone\x1b]0;x\x07\n.jpg"
    result = run("generate", missing, "-p", "pan", expect=2)
    _assert_escaped(result.output)


# -- (8) an enormous search text -------------------------------------------------------


def test_oversized_search_text_is_one_line_on_the_cli(home: Path, run, still: Path):
    from catalog.search import MAX_SEARCH_TEXT

    _make_clip(run, still)
    line = _one_line_exit_2(run, "list", "--text", "a" * 60_000)
    assert "60,000 characters" in line and f"{MAX_SEARCH_TEXT:,}" in line
    assert run("list", "--text", "x" * MAX_SEARCH_TEXT).exit_code == 0  # the limit is allowed
    _one_line_exit_2(run, "export", "--text", "a" * 60_000)


def test_oversized_search_text_is_a_400_on_the_web(app: Reelvault):
    from starlette.testclient import TestClient

    from core.web.app import create_app

    with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
        answer = client.get("/", params={"q": "a" * 60_000})
        assert answer.status_code == 400
        assert "characters" in answer.text
        assert client.get("/", params={"q": "a" * 60_000, "format": "json"}).status_code == 400
        assert client.get("/", params={"q": "pan"}).status_code == 200


# -- (9) a derived clip whose source still's file is gone ------------------------------


def _remove_stored(app: Reelvault, sha256: str) -> None:
    path = app.store.path_for(sha256)
    path.parent.chmod(0o755)
    path.unlink()


def test_remix_of_a_clip_whose_still_is_gone_says_so_and_adds_no_row(
    home: Path, run, still: Path, app: Reelvault
):
    clip = _make_clip(run, still)
    shown = json.loads(run("show", clip, "--json").stdout)
    _remove_stored(app, shown["source"]["sha256"])
    result = run("remix", clip, "-p", "zoom in", expect=1)
    assert result.output.strip() == (
        "Error: the source still's file is missing from the store; run `reelvault audit`"
    )
    assert [row["id"] for row in json.loads(run("list", "--json").stdout)] == [clip]


# -- (1) a provider's damaged thumbnail or spritesheet ----------------------------------


def test_damaged_extras_become_warnings_and_the_clip_completes(home: Path, run, api, still_720p):
    api.truncated_variants.update({"thumbnail": 100, "spritesheet": 300})
    result = run("generate", still_720p, "-p", "a harbour", "--model", "sora-2", "--size",
                 "1280x720", "--json")  # fmt: skip
    clip = json.loads(result.stdout)
    assert clip["status"] == "completed" and clip["video"]["mime"] == "video/mp4"
    warnings = clip["details"]["warnings"]
    assert len(warnings) == 2
    assert "thumbnail" in warnings[0] and "made from the video" in warnings[0]
    assert "spritesheet" in warnings[1] and "has no spritesheet" in warnings[1]
    assert clip["thumbnail"]["mime"] == "image/webp" and clip["thumbnail"]["width"] == 480
    assert clip["spritesheet"] is None
    assert "downloaded" not in clip["details"]
    shown = run("show", clip["id"]).output
    assert shown.count("warning   the provider's") == 2
    assert "warning: the provider's thumbnail" in result.stderr


def test_extras_that_fail_to_download_become_warnings_and_the_clip_completes(
    home: Path, run, api, still_720p
):
    api.failing_variants.update({"thumbnail": 404, "spritesheet": 404})
    result = run("generate", still_720p, "-p", "a harbour", "--model", "sora-2", "--size",
                 "1280x720", "--json")  # fmt: skip
    clip = json.loads(result.stdout)
    assert clip["status"] == "completed" and clip["video"]["mime"] == "video/mp4"
    warnings = clip["details"]["warnings"]
    assert len(warnings) == 2 and all("HTTP 404" in w for w in warnings), warnings
    assert "thumbnail" in warnings[0] and "made from the video" in warnings[0]
    assert "spritesheet" in warnings[1]
    assert clip["thumbnail"]["mime"] == "image/webp" and clip["spritesheet"] is None
    assert json.loads(run("jobs", "--json").stdout) == []
    assert run("show", clip["id"]).output.count("warning   the provider's") == 2


def test_resume_never_downloads_again_what_the_store_holds(
    home: Path, run, api, still_720p, monkeypatch
):
    import core.generation.finish as finish_module

    real_ingest = finish_module.ingest

    def interrupted_at_the_thumbnail(app, path, kind, **options):
        if kind == "thumbnail":
            raise KeyboardInterrupt
        return real_ingest(app, path, kind, **options)

    monkeypatch.setattr(finish_module, "ingest", interrupted_at_the_thumbnail)
    run("generate", still_720p, "-p", "a harbour", "--model", "sora-2", "--size", "1280x720",
        expect=130)  # fmt: skip
    monkeypatch.setattr(finish_module, "ingest", real_ingest)
    (job,) = json.loads(run("jobs", "--json").stdout)
    assert "completed" in run("resume").output
    shown = json.loads(run("show", job["id"], "--json").stdout)
    assert shown["status"] == "completed" and shown["thumbnail"] and shown["spritesheet"]
    videos = [
        r for r in api.requests
        if r.route == "/videos/{id}/content" and r.query.get("variant", "video") == "video"
    ]  # fmt: skip
    assert len(videos) == 1


def test_resume_catalogs_the_video_a_kill_left_stored_but_uncataloged(
    home: Path, run, still: Path, app: Reelvault, monkeypatch
):
    """A kill after the signed video is in the store but before the catalog knows it:
    the resumed finish catalogs that very file (a second signature would give other
    bytes and leave the first file orphaned)."""
    import core.generation.finish as finish_module

    real_ingest = finish_module.ingest
    stored: list[str] = []

    def killed_after_the_store_put(app_, path, kind, **options):
        if kind == "video" and not stored:
            stored.append(app_.store.put_file(path).sha256)
            raise KeyboardInterrupt  # no row for the file, as SIGKILL would leave it
        return real_ingest(app_, path, kind, **options)

    run("signing", "init")  # each signing gives other bytes
    monkeypatch.setattr(finish_module, "ingest", killed_after_the_store_put)
    run("generate", still, "-p", "pan right", expect=130)
    (job,) = json.loads(run("jobs", "--json").stdout)
    assert doctor(app).orphans == stored  # the window this test is about

    assert run("resume").output.strip().endswith("completed")
    clip = json.loads(run("show", job["id"], "--json").stdout)
    assert clip["status"] == "completed"
    assert "storing" not in clip["details"] and "downloaded" not in clip["details"]
    assert clip["video"]["sha256"] == stored[0]  # the same bytes, not a second signing
    assert doctor(app).orphans == []
    videos = [d for d in app.store.digests() if _is_video(app, d)]
    assert videos == stored  # one stored video: the first signing's


def _is_video(app: Reelvault, digest: str) -> bool:
    return app.store.local_path(digest).read_bytes()[4:8] == b"ftyp"


# -- (4) a full disk under the media store ----------------------------------------------


def test_full_disk_is_one_line_and_resume_goes_on_with_the_other_jobs(
    home: Path, run, still: Path, monkeypatch
):
    import errno

    from core.media.store import MediaStore

    _make_clip(run, still)  # the still is stored; every new file fails from here on
    real_commit = MediaStore._commit
    failures = {"left": 1_000}

    def full_disk(self, tmp, sha256, size):
        if not self.path_for(sha256).exists() and failures["left"] > 0:
            failures["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_commit(self, tmp, sha256, size)

    monkeypatch.setattr(MediaStore, "_commit", full_disk)
    for prompt in ("zoom in", "pan left"):
        result = run("generate", still, "-p", prompt, expect=1)
        lines = result.output.strip().splitlines()
        assert lines == [
            f"Error: no space left on the device holding {home / 'media'}; free some space "
            "or fix the folder, then `reelvault resume`"
        ], result.output
    jobs = json.loads(run("jobs", "--json").stdout)
    assert len(jobs) == 2 and all(job["remote_job_id"] for job in jobs)

    failures["left"] = 1  # still full for the first job resumed, then space is freed
    resumed = run("resume", expect=1).output.strip().splitlines()
    assert "no space left on the device holding" in resumed[0]
    assert resumed[1].endswith("completed")
    assert "1 of 2 jobs did not complete" in resumed[-1]
    assert run("resume").output.strip().endswith("completed")
    assert json.loads(run("jobs", "--json").stdout) == []


def _no_space(*_args, **_kwargs):
    import errno

    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_work_folder_at_submit_is_one_line_and_retry_sends_it(
    home: Path, run, still: Path, monkeypatch
):
    """The local backend copies the still into its job folder before rendering: a full
    disk there is one line, and the row is failed as never sent, for `resume --retry`."""
    import plugins.local_backend as local_backend

    run("jobs")  # the catalog exists: the output below is the fault's alone
    with monkeypatch.context() as patched:
        patched.setattr(local_backend, "write_atomic", _no_space)
        result = run("generate", still, "-p", "pan right", expect=1)
    assert result.output.strip().splitlines() == [
        f"Error: no space left on the device holding {home / 'work' / 'local'}; free some "
        "space or fix the folder, then `reelvault resume --retry`"
    ]
    (row,) = json.loads(run("list", "--json").stdout)
    assert row["status"] == "failed"
    assert not list((home / "work" / "local").iterdir())  # no half-made job folder
    assert "completed" in run("resume", "--retry").output
    assert json.loads(run("show", row["id"], "--json").stdout)["status"] == "completed"


def test_a_full_work_folder_while_rendering_leaves_the_job_resumable(
    home: Path, run, still: Path, monkeypatch
):
    """A render that cannot write its video fails the render, not the job: one line, the
    clip stays in flight, and `resume` renders it again once there is room."""
    import plugins.local_backend.jobs as local_jobs

    real_render = local_jobs.render_clip
    run("jobs")  # the catalog exists: the output below is the fault's alone
    with monkeypatch.context() as patched:
        patched.setattr(local_jobs, "render_clip", _no_space)
        result = run("generate", still, "-p", "pan right", expect=1)
    assert result.output.strip().splitlines() == [
        f"Error: no space left on the device holding {home / 'work' / 'local'}; free some "
        "space or fix the folder, then `reelvault resume`"
    ]
    (job,) = json.loads(run("jobs", "--json").stdout)
    assert job["status"] == "in_progress" and job["remote_job_id"]
    assert local_jobs.render_clip is real_render
    assert run("resume").output.strip().endswith("completed")
    assert json.loads(run("show", job["id"], "--json").stdout)["status"] == "completed"


# -- (7) the webhooks receiver under hostile clients -------------------------------------


@pytest.fixture
def webhook_receiver(hooked_app, api, monkeypatch):
    from core.remote import webhooks

    monkeypatch.setattr(webhooks, "READ_TIMEOUT_SECONDS", 2.0, raising=False)
    monkeypatch.setattr(webhooks, "MAX_CONNECTIONS", 8, raising=False)
    with webhooks.WebhookReceiver(hooked_app) as running:
        yield running


def test_a_400_digit_webhook_timestamp_is_a_400(webhook_receiver):
    import http.client

    host, port = webhook_receiver.url.removeprefix("http://").rstrip("/").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    headers = {"webhook-id": "wh_1", "webhook-timestamp": "9" * 400, "webhook-signature": "v1,A"}
    conn.request("POST", "/", b'{"type": "video.completed"}', headers)
    answer = conn.getresponse()
    assert answer.status == 400
    assert "webhook-timestamp" in json.loads(answer.read())["message"]
    conn.close()


def test_a_silent_client_times_out_and_connections_are_bounded(webhook_receiver):
    import socket
    import threading

    from core.remote import webhooks

    host, port = webhook_receiver.url.removeprefix("http://").rstrip("/").split(":")
    before = threading.active_count()
    silent = []
    for _ in range(webhooks.MAX_CONNECTIONS + 20):
        conn = socket.create_connection((host, int(port)), timeout=5)
        conn.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
        silent.append(conn)
    time.sleep(0.3)
    assert threading.active_count() - before <= webhooks.MAX_CONNECTIONS
    refused = silent[-1].recv(4096)
    assert refused.startswith(b"HTTP/1.1 503"), refused
    for conn in silent:
        conn.close()
    # A closed client frees its thread (and its slot) as soon as its handler reads the
    # end of the stream; wait for that rather than racing the handlers.
    freed_by = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < freed_by:
        time.sleep(0.05)
    assert threading.active_count() <= before, "closed connections kept their threads"
    started = time.monotonic()
    slow = socket.create_connection((host, int(port)), timeout=30)
    slow.sendall(b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n")
    answer = slow.recv(4096)
    assert answer.startswith(b"HTTP/1.1 408") or answer == b"", answer
    assert time.monotonic() - started < webhooks.READ_TIMEOUT_SECONDS + 5
    slow.close()


# -- (10) leftovers in the work folder ----------------------------------------------------


def _work_files(home: Path) -> list[Path]:
    work = home / "work"
    return sorted(p for p in work.rglob("*") if p.is_file()) if work.exists() else []


def test_a_finished_job_leaves_nothing_in_the_work_folder(home: Path, run, still: Path):
    run("signing", "init")  # the signer's copy passes through the work folder too
    _make_clip(run, still)
    assert _work_files(home) == []


def test_ctrl_c_says_how_to_finish_and_resume_cleans_what_a_kill_left(
    home: Path, run, still: Path, monkeypatch
):
    import core.generation.finish as finish_module

    real_ingest = finish_module.ingest

    def ctrl_c_at_the_video(app, path, kind, **options):
        if kind == "video":
            raise KeyboardInterrupt
        return real_ingest(app, path, kind, **options)

    monkeypatch.setattr(finish_module, "ingest", ctrl_c_at_the_video)
    result = run("generate", still, "-p", "pan right", expect=130)
    assert result.output.strip().splitlines()[-1] == (
        "interrupted: the job was not cancelled and nothing is lost; "
        "run `reelvault resume` to finish it"
    )
    monkeypatch.setattr(finish_module, "ingest", real_ingest)
    killed = home / "work" / "incoming" / "clip_x-video-abcdef"  # what SIGKILL leaves
    killed.write_bytes(b"partial download")
    dead_job = home / "work" / "local" / "local_ffffffffffffffffffffffff"
    dead_job.mkdir()
    (dead_job / "video.mp4").write_bytes(b"unsigned")
    old = time.time() - 7200
    for path in (killed, dead_job / "video.mp4", dead_job):
        os.utime(path, (old, old))
    assert run("resume").output.strip().endswith("completed")
    assert _work_files(home) == []


def _generate_in_a_process(still: Path, patch: str) -> subprocess.CompletedProcess[str]:
    """``generate`` in a process of its own, after running ``patch`` (Python that may use
    ``os`` and ``request``, the module :mod:`core.generation.request`)."""
    script = (
        "import os, sys\n"
        "import core.generation.request as request\n"
        f"{patch}\n"
        "from core.cli import main\n"
        "sys.argv = ['reelvault', *sys.argv[1:]]\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, "generate", str(still), "-p", "pan right"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _killed_before_the_row(home: Path, still: Path) -> subprocess.CompletedProcess[str]:
    """A real ``generate`` process that dies (as by SIGKILL: no handler, no cleanup) right
    after its still is cataloged, at the moment it would write the clip's row."""
    return _generate_in_a_process(
        still, "request.add_generation = lambda *args, **kwargs: os._exit(137)"
    )


def _asset_ids(run) -> set[str]:
    return {row["id"] for row in json.loads(run("assets", "--json").stdout)}


def test_a_kill_before_the_clips_row_leaves_no_still_that_resume_does_not_clear(
    home: Path, run, still: Path
):
    """The still a killed request cataloged, with no clip made from it, is what ``resume``
    clears (recorded as a removal); a still that a clip uses by then is kept."""
    assert _killed_before_the_row(home, still).returncode == 137
    left = _asset_ids(run)
    assert len(left) == 1 and next(iter(left)).startswith("img_")
    assert json.loads(run("list", "--json").stdout) == []
    (note,) = (home / "work" / "requests").iterdir()

    result = run("resume")
    assert _asset_ids(run) == set()
    assert not note.exists()
    for asset in left:
        assert f"removed {asset}" in result.stderr
    assert json.loads(run("audit", "--json").stdout)["clean"]

    # Killed again, and meanwhile a clip is made from the same still: it stays.
    assert _killed_before_the_row(home, still).returncode == 137
    clip = _make_clip(run, still)
    source = json.loads(run("show", clip, "--json").stdout)["source"]["id"]
    assert {source} == left
    result = run("resume")
    assert source in _asset_ids(run)
    assert "removed" not in result.stderr
    assert not list((home / "work" / "requests").iterdir())


def test_doctor_reports_a_killed_requests_stills_and_fix_removes_them(home: Path, run, still: Path):
    assert _killed_before_the_row(home, still).returncode == 137
    left = _asset_ids(run)
    report = json.loads(run("doctor", "--json", expect=1).stdout)
    assert sorted(report["abandoned"]) == sorted(left) and not report["healthy"]
    assert _asset_ids(run) == left  # reported only
    fixed = run("doctor", "--fix")
    assert "stills of killed requests: 1" in fixed.stdout and "removed" in fixed.stdout
    assert _asset_ids(run) == set()
    after = json.loads(run("doctor", "--json").stdout)  # healthy: exit 0
    assert after["abandoned"] == [] and after["orphans"] == []
    assert len(after["removed_files"]) == 1  # the still's file, for gc: not an orphan


def test_a_request_that_fails_before_its_row_removes_the_still_it_cataloged(
    home: Path, run, still: Path, monkeypatch: pytest.MonkeyPatch
):
    """Ctrl-C (or any error) after the still is cataloged but before the row: a still the
    request added goes again at once; one that was in the library before stays."""
    import core.generation.request as request_module

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(request_module, "run_checks", interrupted)
    run("generate", still, "-p", "pan right", expect=130)
    assert _asset_ids(run) == set()
    assert not list((home / "work" / "requests").iterdir())

    run("import", still)
    imported = _asset_ids(run)
    run("generate", still, "-p", "pan right", expect=130)
    assert _asset_ids(run) == imported  # there before the request: not the request's to remove


def test_a_failed_cleanup_keeps_the_note_and_reports_the_first_error(home: Path, run, still: Path):
    """Ctrl-C before the row while the catalog cannot take the removal either: the user
    sees the interruption, not the cleanup's error, and the note stays for `resume`."""
    patch = (
        "import core.library.notes as notes\n"
        "from core.api.errors import CatalogError\n"
        "def interrupted(*args, **kwargs): raise KeyboardInterrupt\n"
        "def unreachable(*args, **kwargs): raise CatalogError('the catalog cannot be reached')\n"
        "request.run_checks = interrupted\n"
        "notes.plan_removal = unreachable"
    )
    result = _generate_in_a_process(still, patch)
    assert result.returncode == 130 and "cannot be reached" not in result.stderr
    (note,) = (home / "work" / "requests").iterdir()
    assert len(_asset_ids(run)) == 1
    assert "removed img_" in run("resume").stderr
    assert _asset_ids(run) == set() and not note.exists()


# -- (2) killed between writing the row and recording the job id --------------------------

SORA_ARGS = ("--model", "sora-2", "--size", "1280x720")


def _killed_after_the_create(run, monkeypatch, image: Path) -> str:
    """A generate whose create reached the provider but whose job id was never recorded."""
    import core.generation.run as run_module

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(run_module, "_record_sent", killed)
        run("generate", image, "-p", "a harbour", *SORA_ARGS, expect=130)
    (job,) = json.loads(run("jobs", "--json").stdout)
    assert job["status"] == "submitting" and job["remote_job_id"] is None
    return job["id"]


def test_resume_adopts_the_remote_job_a_kill_did_not_record(
    home, run, api, still_720p, monkeypatch
):
    clip = _killed_after_the_create(run, monkeypatch, still_720p)
    assert "completed" in run("resume").output
    assert api.count("POST", "/videos") == 1  # never created twice
    shown = json.loads(run("show", clip, "--json").stdout)
    assert shown["status"] == "completed" and shown["remote_job_id"]
    assert len(json.loads(run("list", "--json").stdout)) == 1


def test_resume_adopts_only_the_remote_job_that_matches_the_row(
    home, run, api, still_720p, monkeypatch, app
):
    """A listed job with another prompt (or made outside the window) is someone else's:
    never adopted, and the row is failed once the window has passed."""
    from datetime import timedelta

    from catalog.queries import get_generation

    clip = _killed_after_the_create(run, monkeypatch, still_720p)

    def change_row(**values: object) -> None:
        with app.session() as session:
            row = get_generation(session, clip)
            for name, value in values.items():
                setattr(row, name, value)
            session.add(row)

    with app.session() as session:
        created = get_generation(session, clip).created_at
    change_row(prompt="a harbour at night")
    assert "again later" in run("resume", expect=1).output  # not adopted: another prompt
    change_row(prompt="a harbour", created_at=created - timedelta(hours=1))
    assert "interrupted before submission" in run("resume", expect=1).output  # not in window
    assert api.count("POST", "/videos") == 1
    assert json.loads(run("show", clip, "--json").stdout)["remote_job_id"] is None


def test_sync_adopts_into_the_submitting_row_instead_of_importing_a_duplicate(
    home, run, api, still_720p, monkeypatch
):
    clip = _killed_after_the_create(run, monkeypatch, still_720p)
    synced = json.loads(run("sync", "--json").stdout)
    assert synced["imported"] == [] and [a["id"] for a in synced["adopted"]] == [clip]
    assert "completed" in run("resume").output
    assert len(json.loads(run("list", "--json").stdout)) == 1
    assert api.count("POST", "/videos") == 1


def test_a_create_that_never_left_fails_once_the_window_passes_and_retry_sends_it(
    home, run, api, still_720p, monkeypatch, app
):
    from datetime import timedelta

    from plugins.sora_backend import SoraBackend

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(SoraBackend, "submit", killed)
        run("generate", still_720p, "-p", "a harbour", *SORA_ARGS, expect=130)
    (job,) = json.loads(run("jobs", "--json").stdout)
    assert "again later" in run("resume", expect=1).output  # within the window: wait
    with app.session() as session:
        from catalog.queries import get_generation

        row = get_generation(session, job["id"])
        row.created_at = row.created_at - timedelta(hours=1)
        session.add(row)
    failed = run("resume", expect=1).output
    assert "interrupted before submission" in failed and "--retry" in failed
    assert json.loads(run("jobs", "--json").stdout) == []  # nothing left stuck
    assert api.count("POST", "/videos") == 0
    assert "completed" in run("resume", "--retry").output
    assert api.count("POST", "/videos") == 1
    assert json.loads(run("show", job["id"], "--json").stdout)["status"] == "completed"


# -- (6) forged lineage claims ------------------------------------------------------------


def test_a_forged_parent_claim_and_a_forged_id_are_not_adopted(home, run, still: Path, app):
    from catalog.models import Asset
    from core.provenance.credentials import compare_lineage, ingredient_is
    from core.provenance.importer import link_lineage

    run("signing", "init")
    genuine = json.loads(run("generate", still, "-p", "pan right", "--json").stdout)
    parent_sha = genuine["video"]["sha256"]
    unborn_id = "clip_zzzzzzzzzzzz"
    forged = {
        "label": "urn:c2pa:forged",
        "signer": "Mallory",
        "issuer": "Mallory CA",
        "generation": {
            "generation_id": unborn_id,
            "prompt": "a remix, supposedly",
            "relation": "remix_of",
            "parent": {"sha256": parent_sha},
        },
        "ingredients": [{"title": "cat.jpg", "format": "image/jpeg", "relationship": "parentOf"}],
    }
    with app.session() as session:
        fake = Asset(id="vid_forged", sha256="f" * 64, kind="video", mime="video/mp4")
        session.add(fake)
        session.flush()
        made = link_lineage(session, fake, forged)  # valid credentials, not trusted
        assert made is not None
        assert made.parent_id is None  # the claim is not linked...
        assert made.details["claims_not_supported"] == {"parent": parent_sha}  # ...but kept
        assert made.id != unborn_id  # an untrusted signer's id is not adopted
        made_id = made.id
        video = session.get(Asset, genuine["video"]["id"])
        assert ingredient_is(forged["ingredients"][0], video, parent_sha) is False
        # audit compares the file's ingredients with the catalog's (unlinked) lineage
        problems = compare_lineage(forged, source=None, parent=None, derived=False)
        assert [p.kind for p in problems] == ["lineage_contradiction"]
    shown = run("show", made_id).output
    assert f"claimed   parent {parent_sha} (claimed, not supported by ingredients)" in shown


def test_forged_files_imported_through_the_cli_claim_nothing_they_cannot_show(
    home: Path, run, still: Path, app: Reelvault, tmp_path: Path, monkeypatch
):
    """The same forgeries as above, as files a user imports: signed (validly) by a CA
    nobody trusts, with a reelvault generation assertion that claims a trusted clip as
    parent and the clip's id, while the real ``parentOf`` ingredient is another image."""
    from core.api import GENERATION_ASSERTION
    from core.provenance.trust import add_anchors
    from tests.conftest import textured_image
    from tests.provenance_support import other_signer, remux, sign_image

    run("signing", "init")
    genuine = json.loads(run("generate", still, "-p", "pan right", "--json").stdout)
    genuine_file = app.store.local_path(genuine["video"]["sha256"])
    unrelated = textured_image(tmp_path / "cat.png", 320, 180, seed=4)
    plain = tmp_path / "plain.mp4"
    plain.write_bytes(remux(genuine_file.read_bytes()))
    claim = {
        "generation_id": genuine["id"],
        "prompt": "a remix, supposedly",
        "relation": "remix_of",
        "parent": {"sha256": genuine["video"]["sha256"]},
    }
    forged = sign_image(
        app.settings, plain, tmp_path / "forged.mp4", "video/mp4",
        signer=other_signer(tmp_path / "mallory"),
        ingredients=[(unrelated, "image/png", "parentOf")],
        assertions=[{"label": GENERATION_ASSERTION, "data": claim}],
    )  # fmt: skip

    bare = sign_image(  # the same claim with no ingredient at all
        app.settings, plain, tmp_path / "bare.mp4", "video/mp4",
        signer=other_signer(tmp_path / "mallory"),
        assertions=[{"label": GENERATION_ASSERTION, "data": claim}],
    )  # fmt: skip

    # In the genuine clip's library: the parent claims are kept, not linked, and audited.
    run("import", forged, bare)
    forged_ids = [
        row["id"] for row in json.loads(run("list", "-n", "0", "--json").stdout)
        if row["id"] != genuine["id"]
    ]  # fmt: skip
    assert len(forged_ids) == 2
    audited = run("audit", expect=1).output
    for forged_id in forged_ids:
        shown = json.loads(run("show", forged_id, "--json").stdout)
        assert shown["parent_id"] is None and shown["relation"] is None, shown
        claimed = shown["details"]["claims_not_supported"]
        assert claimed == {"parent": genuine["video"]["sha256"]}
        assert "(claimed, not supported by ingredients)" in run("show", forged_id).output
        assert f"({forged_id}): its credentials claim parent {genuine['video']['sha256']}" in (
            audited
        )

    # In a new library, the forgery imported first does not take the genuine clip's id.
    other_home = tmp_path / "other-home"
    monkeypatch.setenv("REELVAULT_HOME", str(other_home))
    if on_postgresql():
        monkeypatch.delenv("REELVAULT_DB")  # a library of its own, on SQLite
    run("import", forged)
    (first,) = json.loads(run("list", "-n", "0", "--json").stdout)
    assert first["id"] != genuine["id"]  # an untrusted signer's id is not adopted
    add_anchors(Settings.load(home=other_home), app.settings.signing_paths()[0])
    run("import", genuine_file)
    videos = {
        row["id"]: json.loads(run("show", row["id"], "--json").stdout)["video"]["sha256"]
        for row in json.loads(run("list", "-n", "0", "--json").stdout)
    }
    assert videos[genuine["id"]] == genuine["video"]["sha256"]  # the genuine clip's own id


def test_a_claim_is_given_up_only_for_a_holder_process_that_is_gone():
    import socket
    import subprocess
    import sys

    from core.generation.claim import holder_gone, holder_name

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert holder_gone(f"finishing:{socket.gethostname()}:{ended.pid}:abc123")
    assert not holder_gone(holder_name("finishing"))  # this very process
    assert not holder_gone(f"finishing:another-host:{ended.pid}:abc123")  # cannot be checked
    assert not holder_gone("not a holder name") and not holder_gone(None)


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
