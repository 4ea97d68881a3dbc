"""Queued work run by workers sharing one catalog, including a worker killed mid-job."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

import core.generation.claim
import core.generation.run
import core.generation.worker
from catalog.models import Generation
from catalog.queue import claim_next, database_now
from core.api.hookspecs import hookimpl
from core.api.settings import Settings
from core.api.types import GenerationRequest, JobState, JobStatus
from core.generation import derive, generate, resume
from core.generation.worker import Worker, WorkerReport
from core.host.app import Reelvault
from core.host.plugins import load_host
from core.testing import VideosAPIServer
from plugins.local_backend import LocalBackend
from tests import counting_backend, sora_support
from tests.conftest import REPO
from tests.lease_support import lapse_lease
from tests.sora_support import write_config

SUBMIT_ARGS = ("--seconds", "1", "--size", "640x360")


def test_submit_queues_and_a_worker_runs_everything(run, still: Path):
    ids = [
        run("submit", still, "-p", f"pan right {i}", *SUBMIT_ARGS).stdout.strip() for i in range(4)
    ]
    queued = json.loads(run("jobs", "--json").stdout)
    assert [j["id"] for j in queued] == ids and {j["status"] for j in queued} == {"pending"}
    result = run("worker", "--until-idle", "--concurrency", "3")
    assert "4 completed, 0 failed" in result.stderr
    ended = json.loads(run("jobs", "--ended", "10", "--json").stdout)
    assert sorted(j["id"] for j in ended) == sorted(ids)
    assert {j["status"] for j in ended} == {"completed"} and {j["attempts"] for j in ended} == {1}
    assert all(j["worker"] is None for j in ended)  # leases released
    shown = json.loads(run("show", ids[0], "--json").stdout)
    assert shown["video"]["frame_count"] == 24


def test_submit_validates_before_queueing(run, still: Path):
    result = run("submit", still, "-p", "pan", "--size", "123x45", expect=2)
    assert "does not allow size" in result.stderr
    assert json.loads(run("jobs", "--json").stdout) == []


def test_a_queued_remix_runs_from_its_parent(run, app, still: Path):
    parent = generate(app, still, "pan left", seconds=1, size="640x360").generation
    queued = derive(app, parent.id, "tilt up", queue=True).generation
    assert queued.status == "pending" and queued.parent_id == parent.id
    report = Worker(app, concurrency=1, lease_seconds=30).run(until_idle=True)
    assert report.completed == [queued.id]
    shown = json.loads(run("show", queued.id, "--json").stdout)
    assert shown["relation"] == "remix_of" and shown["status"] == "completed"


def _rows(url: str, sql: str) -> list[tuple]:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(sa.text(sql))]
    finally:
        engine.dispose()


@pytest.mark.slow
def test_three_workers_twenty_jobs_one_killed_mid_job(home: Path, still: Path, tmp_path: Path):
    log = tmp_path / "submits.log"
    env = {
        **os.environ,
        "REELVAULT_HOME": str(home),
        "REELVAULT_PLUGINS": "tests.counting_backend",
        "REELVAULT_TEST_SUBMIT_LOG": str(log),
        "PYTHONPATH": str(REPO),
    }
    host = load_host()
    host.register(counting_backend, "counting")
    app = Reelvault(Settings.load(home=home), host=host)
    for i in range(20):
        generate(app, still, f"pan right take {i}", backend="counting", seconds=3,
                 size="640x360", queue=True)  # fmt: skip
    app.close()
    url = Settings.load(home=home).db_url
    cli = [sys.executable, "-m", "core"]

    def worker(name: str, concurrency: int) -> subprocess.Popen[str]:
        return subprocess.Popen(
            [*cli, "worker", "--until-idle", "--lease", "3", "--name", name,
             "--concurrency", str(concurrency)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    victim = worker("victim", 1)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # wait until the victim is polling a submitted job
        held = _rows(url, "SELECT status, remote_job_id FROM generations "
                          "WHERE lease_owner = 'victim'")  # fmt: skip
        if held and held[0][0] == "in_progress" and held[0][1]:
            break
        time.sleep(0.02)
    else:
        pytest.fail("the victim never started a job")
    victim.send_signal(signal.SIGKILL)
    victim.wait(10)
    survivors = [worker("w1", 2), worker("w2", 2)]
    for proc in survivors:
        _out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err

    rows = _rows(url, "SELECT status, remote_job_id, attempts, lease_owner FROM generations")
    assert len(rows) == 20
    assert {r[0] for r in rows} == {"completed"}, rows
    assert all(r[3] is None for r in rows)
    assert max(r[2] for r in rows) == 2  # the killed worker's job was taken over once
    submits = log.read_text().splitlines()
    job_ids = [line.split()[1] for line in submits]
    assert len(job_ids) == 20 and len(set(job_ids)) == 20  # no job submitted twice
    assert sorted(job_ids) == sorted(r[1] for r in rows)


api = sora_support.api
still_720p = sora_support.still_720p


def test_one_worker_polls_its_remote_jobs_concurrently(
    app: Reelvault, api: VideosAPIServer, still_720p: Path
):
    """All jobs are created and held in progress at once before any may finish: a worker
    that ran them one by one would never get past the first."""
    api.hold = True
    queued = [
        generate(
            app, still_720p, f"harbour {i}", model="sora-2", size="1280x720", queue=True
        ).generation
        for i in range(5)
    ]
    worker = Worker(app, concurrency=5, lease_seconds=30)
    result: list[WorkerReport] = []
    thread = threading.Thread(target=lambda: result.append(worker.run(until_idle=True)))
    thread.start()
    try:
        api.wait_for(lambda: api.count("POST", "/videos") == 5, timeout=30)
        api.wait_for(lambda: all(api.video(v)["status"] == "in_progress" for v in api.video_ids()))
        # the held jobs are polled side by side: together, in rounds of the job list
        singles, lists = api.count("GET", "/videos/{id}"), api.count("GET", "/videos")
        api.wait_for(lambda: api.count("GET", "/videos") >= lists + 10)
        assert api.count("GET", "/videos/{id}") - singles < 10
        api.release()
        thread.join(60)
    finally:
        worker.stop.set()
        api.release()
        thread.join(60)
    (report,) = result
    assert sorted(report.completed) == sorted(g.id for g in queued)
    assert api.count("POST", "/videos") == 5


# --- leases, stopping and failures ------------------------------------------------------


def row_of(app: Reelvault, generation_id: str) -> Generation:
    with app.session() as session:
        row = session.get(Generation, generation_id)
        assert row is not None
        return row


class SlowCreate(LocalBackend):
    """The local backend whose create blocks until released (a create retried for long)."""

    name = "local"

    def __init__(self, work_dir: Path) -> None:
        super().__init__(work_dir)
        self.entered = threading.Event()
        self.proceed = threading.Event()
        self.creates = 0

    def submit(self, request: GenerationRequest) -> JobStatus:
        self.creates += 1
        self.entered.set()
        assert self.proceed.wait(30)
        return super().submit(request)


def test_a_create_that_outlives_its_lease_keeps_its_job_and_is_finished(app, still: Path):
    slow = SlowCreate(app.settings.work_dir / "local")
    app.backends["local"] = slow
    queued = generate(app, still, "pan right", seconds=1, size="640x360", queue=True).generation
    first = Worker(app, concurrency=1, lease_seconds=30, name="A", idle_wait=0.05)
    result: list[WorkerReport] = []
    thread = threading.Thread(target=lambda: result.append(first.run(until_idle=True)))
    thread.start()
    try:
        assert slow.entered.wait(30)
        lapse_lease(app, queued.id)
        second = Worker(app, concurrency=1, lease_seconds=30, name="B").run(until_idle=True)
        assert second.failed[queued.id].startswith("interrupted while submitting")
        slow.proceed.set()  # A's create succeeds after all: the job exists and is paid for
        thread.join(60)
        deadline = time.monotonic() + 30
        while row_of(app, queued.id).status != "completed" and time.monotonic() < deadline:
            Worker(app, concurrency=1, lease_seconds=30, name="C").run(until_idle=True)
            time.sleep(0.1)
    finally:
        slow.proceed.set()
        first.stop.set()
        thread.join(60)
    row = row_of(app, queued.id)
    assert row.status == "completed" and row.remote_job_id and row.error_code is None
    assert slow.creates == 1 and row.output_asset_id


def test_a_create_whose_worker_died_before_recording_it_is_adopted_not_sent_again(
    app: Reelvault, api: VideosAPIServer, still_720p: Path
):
    """A worker killed after its create reached the service, before the job id was
    recorded, leaves a ``submitting`` row with no job id. The worker that takes the job
    over finds the create in the backend's listing and finishes that job: no second
    create, no job left orphaned at the provider."""
    queued = generate(
        app, still_720p, "harbour", model="sora-2", size="1280x720", queue=True
    ).generation
    backend, request = core.generation.run.request_for(app, queued.id)
    sent = backend.submit(request)  # the dead worker's create, whose answer was lost
    with app.session() as session:
        row = session.get(Generation, queued.id)
        assert row is not None
        row.status = "submitting"
        row.lease_owner = "worker-that-died"
        row.lease_expires_at = database_now(session) - timedelta(seconds=1)
        session.add(row)
    report = Worker(app, concurrency=1, lease_seconds=30, name="B").run(until_idle=True)
    assert report.completed == [queued.id] and not report.failed
    row = row_of(app, queued.id)
    assert row.status == "completed" and row.remote_job_id == sent.job_id
    assert api.count("POST", "/videos") == 1


def test_stopping_hands_running_jobs_back_at_once(
    app: Reelvault, api: VideosAPIServer, still_720p: Path
):
    """A worker told to stop leaves its polls at once: it neither waits for remote jobs to
    end nor lets its leases lapse meanwhile, and says so before it waits for anything."""
    api.hold = True
    queued = generate(
        app, still_720p, "harbour", model="sora-2", size="1280x720", queue=True
    ).generation
    events: list[str] = []
    worker = Worker(app, concurrency=2, lease_seconds=30, name="w1", on_event=events.append)
    result: list[WorkerReport] = []
    thread = threading.Thread(target=lambda: result.append(worker.run()))
    thread.start()
    try:
        api.wait_for(lambda: row_of(app, queued.id).status == "in_progress", timeout=30)
        started = time.monotonic()
        worker.stop.set()
        thread.join(10)
        assert not thread.is_alive() and time.monotonic() - started < 5
    finally:
        worker.stop.set()
        api.release()
        thread.join(60)
    (report,) = result
    assert list(report.unfinished) == [queued.id] and not report.failed
    stopping = next(i for i, e in enumerate(events) if e.startswith("stopping: handing back 1"))
    assert stopping < next(i for i, e in enumerate(events) if "handed back" in e)
    with app.session() as session:
        taken = claim_next(session, "w2", timedelta(seconds=30))  # free for others at once
        assert taken is not None and taken.id == queued.id and taken.remote_job_id


@pytest.mark.slow
def test_ctrl_c_on_the_worker_command_hands_back_at_once(
    home: Path, app: Reelvault, api: VideosAPIServer, still_720p: Path
):
    api.hold = True
    queued = generate(
        app, still_720p, "harbour", model="sora-2", size="1280x720", queue=True
    ).generation
    worker = subprocess.Popen(
        [sys.executable, "-m", "core", "worker", "--lease", "30", "--name", "w1"],
        cwd=REPO, env={**os.environ, "REELVAULT_HOME": str(home)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        api.wait_for(lambda: row_of(app, queued.id).status == "in_progress", timeout=60)
        worker.send_signal(signal.SIGINT)
        _out, err = worker.communicate(timeout=20)  # not "when the remote job ends"
    finally:
        worker.kill()
        api.release()
    assert worker.returncode == 130, err
    assert "stopping: handing back 1 running job(s)" in err and "Traceback" not in err
    assert err.index("stopping:") < err.index(f"{queued.id} handed back")
    with app.session() as session:
        assert claim_next(session, "w2", timedelta(seconds=30)).id == queued.id


def test_a_job_that_cannot_be_sent_from_here_fails_and_is_not_left_submitting(
    app: Reelvault, still: Path
):
    queued = generate(app, still, "pan right", seconds=1, size="640x360", queue=True).generation
    with app.session() as session:
        session.get(Generation, queued.id).backend = "not-installed-here"
    report = Worker(app, concurrency=1, lease_seconds=30).run(until_idle=True)
    assert "unknown backend 'not-installed-here'" in report.failed[queued.id]
    row = row_of(app, queued.id)
    assert (row.status, row.error_code, row.lease_owner) == ("failed", "not_sent", None)
    assert resume(app).outcomes == []  # nothing dangling for resume to complain about


def test_a_job_left_in_flight_is_retried_by_another_worker_once_its_lease_lapses(
    home: Path, api: VideosAPIServer, still_720p: Path
):
    write_config(home, "poll_timeout = 0.3\n")
    app = Reelvault(Settings.load(home=home))
    api.hold = True
    queued = generate(
        app, still_720p, "harbour", model="sora-2", size="1280x720", queue=True
    ).generation
    first = Worker(app, concurrency=1, lease_seconds=30, name="w1").run(until_idle=True)
    assert "still in_progress" in first.unfinished[queued.id]
    row = row_of(app, queued.id)
    assert (row.status, row.lease_owner) == ("in_progress", "w1") and row.remote_job_id
    api.release()
    lapse_lease(app, queued.id)  # w1 kept the owner, so the job is claimable once it lapses
    second = Worker(app, concurrency=1, lease_seconds=30, name="w2").run(until_idle=True)
    assert second.completed == [queued.id]
    row = row_of(app, queued.id)
    assert (row.status, row.attempts, row.lease_owner) == ("completed", 2, None)
    assert api.count("POST", "/videos") == 1
    app.close()


def test_a_job_that_ends_just_before_a_renewal_is_reported_completed_not_lost(
    app: Reelvault, still: Path
):
    queued = generate(app, still, "pan right", seconds=1, size="640x360", queue=True).generation
    worker = Worker(app, concurrency=1, lease_seconds=30, name="w1")
    with app.session() as session:
        claim_next(session, worker.name, worker.lease)
    finished: Future = Future()
    finished.set_result(worker._run_one(queued.id))  # the job's thread ran to its end...
    report = WorkerReport()
    worker._renew({queued.id: finished}, report)  # ...just as the main thread renewed
    assert report.lost == [] and report.completed == [queued.id]
    assert row_of(app, queued.id).lease_owner is None


def locked(_statement: str = "SELECT") -> sa.exc.OperationalError:
    return sa.exc.OperationalError(_statement, {}, sqlite3.OperationalError("database is locked"))


def test_a_database_error_is_waited_out_not_fatal(
    run, app: Reelvault, still: Path, monkeypatch: pytest.MonkeyPatch
):
    queued = [
        generate(app, still, f"pan right {i}", seconds=1, size="640x360", queue=True).generation.id
        for i in range(2)
    ]
    real_claim, real_renew = core.generation.claim.claim_next, core.generation.claim.renew
    failures = {"claim": 2, "renew": 1}

    def flaky(name: str, real: Callable[..., object]) -> Callable[..., object]:
        def call(*args: object) -> object:
            if failures[name]:
                failures[name] -= 1
                raise locked()
            return real(*args)

        return call

    monkeypatch.setattr(core.generation.claim, "claim_next", flaky("claim", real_claim))
    monkeypatch.setattr(core.generation.claim, "renew", flaky("renew", real_renew))
    monkeypatch.setattr(core.generation.worker, "DB_RETRY_FIRST", 0.01)
    events: list[str] = []
    worker = Worker(app, lease_seconds=0.3, on_event=events.append)  # renews every 0.1 s
    report = worker.run(until_idle=True)
    assert sorted(report.completed) == sorted(queued)
    assert sum("catalog unavailable (database is locked)" in e for e in events) == 3
    failures["claim"] = 1
    result = run("worker", "--until-idle")  # the CLI: a line, no traceback, and on it goes
    assert "catalog unavailable (database is locked); retry in" in result.stderr
    assert "Traceback" not in result.output


def test_threads_share_one_set_of_backends(app: Reelvault):
    calls: list[int] = []

    class Counting:
        @hookimpl
        def register_backends(self, register: Callable[[object], None], settings: object) -> None:
            calls.append(1)
            time.sleep(0.05)  # long enough for every thread to arrive while it builds

    app.host.register(Counting(), "counting-registrations")
    barrier = threading.Barrier(6)
    seen: list[dict] = []

    def touch() -> None:
        barrier.wait()
        seen.append(app.backends)

    threads = [threading.Thread(target=touch) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert calls == [1] and all(found is seen[0] for found in seen)


def test_progress_is_written_as_often_as_the_interval_allows(
    app: Reelvault, monkeypatch: pytest.MonkeyPatch
):
    class Counting:
        """Reports 1%, 2%, ... 20% on successive polls, as fast as it is asked."""

        polls = 0

        def poll(self, job_id: str) -> JobStatus:
            self.polls += 1
            state = JobState.IN_PROGRESS if self.polls <= 20 else JobState.COMPLETED
            return JobStatus(job_id, state, progress=self.polls, poll_after=0)

    row = Generation(id="clip_progress", backend="x", model="m", prompt="p", seconds=1,
                     size="640x360", status="in_progress", remote_job_id="job_1")  # fmt: skip
    with app.session() as session:
        session.add(row)
    writes: list[int] = []
    monkeypatch.setattr(
        core.generation.run,
        "_record_status",
        lambda _app, _id, status: writes.append(status.progress),
    )
    monkeypatch.setattr(core.generation.run, "MIN_POLL_INTERVAL", 0.001)
    monkeypatch.setattr(core.generation.run, "PROGRESS_WRITE_INTERVAL", 0.0)
    core.generation.run._poll_until_done(app, row, Counting(), 30, None)  # type: ignore[arg-type]
    assert writes == list(range(1, 21))  # every change, none skipped
    writes.clear()
    monkeypatch.setattr(core.generation.run, "PROGRESS_WRITE_INTERVAL", 3600.0)
    queued = row.model_copy(update={"status": "queued"})
    core.generation.run._poll_until_done(app, queued, Counting(), 30, None)  # type: ignore[arg-type]
    assert writes == [1]  # the change of state only: the interval never passed again


def test_identical_local_requests_stay_two_clips_of_one_shared_job(app: Reelvault, still: Path):
    """The local backend's job ids name their inputs, so a request made twice shares its
    job: unlike a provider's video, that is two clips, never merged into one."""
    first = generate(app, still, "pan right", seconds=1, size="640x360").generation
    second = generate(app, still, "pan right", seconds=1, size="640x360").generation
    assert first.id != second.id and first.remote_job_id == second.remote_job_id
    assert {row_of(app, g.id).status for g in (first, second)} == {"completed"}
    assert row_of(app, first.id).listed_job_id is None
