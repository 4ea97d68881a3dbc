"""Queued work run by workers sharing one catalog, including a worker killed mid-job."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from core.app import Reelvault
from core.config import Settings
from core.generate import derive, generate
from core.plugins import load_host
from core.videos_api_server import VideosAPIServer
from core.worker import Worker, WorkerReport
from tests import counting_backend, sora_support
from tests.conftest import REPO

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
    parent = generate(app, still, "pan left", seconds=1, size="640x360")
    queued = derive(app, parent.id, "tilt up", queue=True)
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
        generate(app, still_720p, f"harbour {i}", model="sora-2", size="1280x720", queue=True)
        for i in range(5)
    ]
    worker = Worker(app, concurrency=5, lease_seconds=30)
    result: list[WorkerReport] = []
    thread = threading.Thread(target=lambda: result.append(worker.run(until_idle=True)))
    thread.start()
    try:
        api.wait_for(lambda: api.count("POST", "/videos") == 5, timeout=30)
        api.wait_for(lambda: all(api.video(v)["status"] == "in_progress" for v in api.video_ids()))
        polls_before = api.count("GET", "/videos/{id}")
        api.wait_for(lambda: api.count("GET", "/videos/{id}") >= polls_before + 10)
        polled = {r.path.rsplit("/", 1)[-1] for r in api.requests[-10:] if r.method == "GET"}
        assert len(polled) > 1  # the held jobs are polled side by side
        api.release()
        thread.join(60)
    finally:
        worker.stop.set()
        api.release()
        thread.join(60)
    (report,) = result
    assert sorted(report.completed) == sorted(g.id for g in queued)
    assert api.count("POST", "/videos") == 5
