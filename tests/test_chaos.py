"""Chaos: generation killed with SIGKILL at a random moment, over and over (issue 10).

Each run starts a real ``reelvault generate`` process (local or the loopback Videos API)
and kills it at a random moment; then ``resume --retry`` finishes what can be finished
and ``audit`` checks every file. Afterwards no row is stuck, no remote job was created
twice, and no stored file is orphaned.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from pathlib import Path

import pytest

from core.host.app import Reelvault
from core.library.doctor import doctor
from core.testing import VideosAPIServer
from tests import sora_support
from tests.conftest import REPO

api = sora_support.api
still_720p = sora_support.still_720p

RUNS = 30
EARLY_KILLS = 0.25
"""The share of runs killed at any moment from the start; the others are killed at a
random moment after their row was written."""
WINDOW = timedelta(seconds=20)


def _row_count(app: Reelvault) -> int:
    import sqlalchemy as sa

    from catalog.models import Generation

    with app.session() as session:
        return session.execute(sa.select(sa.func.count()).select_from(Generation)).scalar_one()


def _wait_for_row(app: Reelvault, rows_before: int, child: subprocess.Popen[bytes]) -> None:
    """Until the child has written its row (or ended, or a minute passed)."""
    ends = time.monotonic() + 60
    while _row_count(app) == rows_before and child.poll() is None and time.monotonic() < ends:
        time.sleep(0.05)


@pytest.mark.slow
def test_killed_generations_resume_to_a_consistent_library(
    run, home: Path, app, api: VideosAPIServer, still_720p: Path, monkeypatch
):
    import core.generation.run as run_module

    rng = random.Random(10)
    env = {**os.environ, "REELVAULT_HOME": str(home)}
    for number in range(RUNS):
        remote = number % 2 == 1
        target = ("--model", "sora-2", "--size", "1280x720") if remote else ()
        rows_before = _row_count(app)
        child = subprocess.Popen(
            [sys.executable, "-m", "core", "generate", str(still_720p),
             "-p", f"a harbour, take {number}", *target],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        if rng.random() < EARLY_KILLS:
            time.sleep(rng.uniform(0.2, 4.0))  # anywhere, start-up and still ingest included
        else:
            # From the moment its row exists: a loaded machine's start-up alone can take
            # longer than any fixed delay, and a kill there would test nothing.
            _wait_for_row(app, rows_before, child)
            time.sleep(rng.uniform(0.0, 1.5 if remote else 4.0))  # the stand-in is quick
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)

    killed_in = Counter(  # where each kill left its row, for the log (-s)
        row["status"] for row in json.loads(run("list", "-n", "0", "--json").stdout)
    )

    # Rows killed before their create: failed once the window has passed, then retried.
    # The window is shortened, but it still has to cover a create sent late by a loaded
    # machine (a shorter one would fail, and then retry, a create that did arrive).
    monkeypatch.setattr(run_module, "SUBMIT_WINDOW", WINDOW)
    time.sleep(WINDOW.total_seconds() + 0.5)
    first = run_module.resume(app)
    retried = run_module.resume(app, retry=True)
    problems = [p for _, p in first.outcomes + retried.outcomes if p]
    print(
        f"\n{RUNS} runs killed; rows left: {dict(sorted(killed_in.items()))}; "
        f"resume finished {sum(1 for _, p in first.outcomes if not p)}, "
        f"resume --retry {len(retried.outcomes)}; creates sent {api.count('POST', '/videos')}"
    )

    assert json.loads(run("jobs", "--json").stdout) == []  # nothing stuck
    rows = json.loads(run("list", "-n", "0", "--json").stdout)
    assert all(row["status"] == "completed" for row in rows), (
        [r["status"] for r in rows],
        problems,
    )
    sora_jobs = [
        json.loads(run("show", row["id"], "--json").stdout)["remote_job_id"]
        for row in rows
        if row["backend"] == "sora"
    ]
    assert len(sora_jobs) == len(set(sora_jobs))
    assert api.count("POST", "/videos") == len(sora_jobs)  # no create was sent twice
    report = doctor(app)
    assert report.integrity == [] and report.stuck == []
    # A kill between storing a finished video and writing its row left that file without
    # a row (the resumed finish signed anew, so its bytes differed); the hash noted on the
    # row before the store put now lets the resumed finish catalog that very file.
    assert report.orphans == []
    run("audit")
