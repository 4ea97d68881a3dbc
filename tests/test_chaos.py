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
from datetime import timedelta
from pathlib import Path

import pytest

from core.library.doctor import doctor
from core.testing import VideosAPIServer
from tests import sora_support
from tests.conftest import REPO

api = sora_support.api
still_720p = sora_support.still_720p

RUNS = 30


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
        child = subprocess.Popen(
            [sys.executable, "-m", "core", "generate", str(still_720p),
             "-p", f"a harbour, take {number}", *target],
            cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(rng.uniform(0.5, 4.0))
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=30)

    # Rows killed before their create: failed once the window has passed, then retried.
    monkeypatch.setattr(run_module, "SUBMIT_WINDOW", timedelta(seconds=2))
    time.sleep(2.5)
    first = run_module.resume(app)
    retried = run_module.resume(app, retry=True)
    problems = [p for _, p in first.outcomes + retried.outcomes if p]

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
