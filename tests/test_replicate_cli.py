"""replicate end to end: the CLI a user types, the catalog it writes, the loopback API."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.testing.replicate_api import ReplicateServer
from tests import sora_support
from tests.conftest import REPO
from tests.sora_support import catalog_dump, write_config

KEY = "r8_Lq7Tz3Vw9Xc2Bn5Mk8Pj4Rh6Sd1Fg0"
still_720p = sora_support.still_720p
KLING = "kwaivgi/kling-v2.1"
REPLICATE = ("--backend", "replicate", "--model", KLING, "--size", "1280x720")


@pytest.fixture
def api(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReplicateServer]:
    """Replicate on loopback, reached through a profile added with `providers add`."""
    with ReplicateServer(api_key=KEY) as server:
        monkeypatch.setenv("LOCAL_REPLICATE_TOKEN", KEY)
        write_config(
            home,
            f'poll_timeout = 30\n[providers.rep]\nkind = "replicate"\nbase_url = '
            f'"{server.base_url}"\nkey_env = "LOCAL_REPLICATE_TOKEN"\n',
        )
        yield server


def make(run, image: Path, *extra: str, expect: int = 0):
    args = ("generate", image, "-p", "a harbour at dawn", *REPLICATE, "--provider", "rep")
    result = run(*args, *extra, "--json", expect=expect)
    return json.loads(result.stdout) if expect == 0 else result


def test_generate_uploads_the_still_and_maps_the_input(run, api: ReplicateServer, still_720p):
    clip = make(run, still_720p, "--seconds", "10")
    assert clip["status"] == "completed" and clip["remote_job_id"].endswith("@rep")
    (body,) = api.creates
    assert body["input"]["duration"] == 10 and body["input"]["mode"] == "standard"
    assert body["input"]["start_image"].startswith(f"{api.base_url}/files/")
    assert list(api.files.values()) == [still_720p.read_bytes()]
    assert (clip["video"]["width"], clip["video"]["height"]) == (1280, 720)
    assert clip["video"]["duration"] == pytest.approx(10, abs=0.3)

    pinned = make(run, still_720p, "-m", "bytedance/seedance-1-pro", "--seconds", "3")
    assert api.creates[-1]["input"]["duration"] == 3 and pinned["status"] == "completed"
    assert "does not allow 7 seconds" in make(run, still_720p, "--seconds", "7", expect=2).output
    assert len(api.creates) == 2 and len(api.files) == 2  # nothing uploaded for a refusal


def test_a_flagged_prediction_is_a_refusal_and_a_bad_input_names_its_field(
    run, home: Path, api: ReplicateServer, still_720p
):
    api.fail_next("The input or output was flagged as sensitive. Please try again. (E005)")
    result = make(run, still_720p, expect=1)
    shown = json.loads(run("show", json.loads(result.stdout)["id"], "--json").stdout)
    assert shown["status"] == "failed" and "flagged as sensitive" in shown["error"]["message"]
    (deny,) = [d for d in shown["policy_decisions"] if d["plugin"] == "replicate"]
    assert deny["outcome"] == "deny"

    write_config(
        home,
        f'[plugins.replicate.models."{KLING}"]\nimage_field = "start_image"\n'
        f'[plugins.replicate.models."{KLING}".seconds]\n5 = {{ duration = 7 }}\n'
        f'[plugins.replicate.models."{KLING}".sizes]\n1280x720 = {{}}\n',
    )
    invalid = make(run, still_720p, expect=1)
    assert "rep refused the request: - input.duration: duration must be one of" in invalid.output
    assert "(field input.duration)" in invalid.output


def test_a_429_storm_is_waited_out_and_a_bad_key_is_one_line(
    run, api: ReplicateServer, still_720p, monkeypatch: pytest.MonkeyPatch
):
    throttled = {"detail": "Request was throttled. Your rate limit resets in ~1s."}
    api.inject("POST", r"/predictions$", 429, times=3, body=throttled,
               headers={"Retry-After": "0.05"})  # fmt: skip
    api.inject("GET", r"/predictions/", 429, times=2, body=throttled)
    assert make(run, still_720p)["status"] == "completed"
    assert len(api.creates) == 1 and api.count("POST", r"/predictions$") == 4

    monkeypatch.setenv("LOCAL_REPLICATE_TOKEN", "r8_wrong")
    line = make(run, still_720p, expect=1).output.strip().splitlines()[-1]
    assert line == (
        "Error: provider rep did not accept the API key from $LOCAL_REPLICATE_TOKEN "
        "(HTTP 401); set a valid one with `reelvault keys set rep`"
    )


def test_removed_output_is_expired_and_resume_never_recreates(
    run, home: Path, api: ReplicateServer, still_720p
):
    config = home / "config.toml"
    config.write_text(config.read_text().replace("poll_timeout = 30", "poll_timeout = 0.3"))
    api.hold = True
    make(run, still_720p, expect=1)
    make(run, still_720p, expect=1)
    jobs = json.loads(run("jobs", "--json").stdout)
    gone = jobs[0]["remote_job_id"].split("@")[0]
    api.release()
    api.expire(gone)
    assert "expired" in run("resume", expect=1).output
    states = {j["remote_job_id"]: json.loads(run("show", j["id"], "--json").stdout) for j in jobs}
    assert states[jobs[0]["remote_job_id"]]["error"]["code"] == "expired"
    assert states[jobs[1]["remote_job_id"]]["status"] == "completed"
    assert len(api.creates) == 2


def test_no_key_reaches_output_catalog_files_or_logs(
    run, home: Path, db_url: str, api: ReplicateServer, still_720p, caplog
):
    caplog.set_level(logging.DEBUG)
    clip = make(run, still_720p)
    outputs = [run(*args).output for args in (
        ("show", clip["id"], "--json"), ("jobs", "--json"), ("providers", "list", "--json"),
        ("export",), ("export", "--format", "csv"),
    )]  # fmt: skip
    api.fail_next(f"flagged (echo {KEY})")
    outputs.append(make(run, still_720p, expect=1).output)
    texts = {"output": "\n".join(outputs), "catalog": json.dumps(catalog_dump(db_url)),
             "logs": caplog.text}  # fmt: skip
    for path in home.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("latin-1")
    assert clip["id"] in outputs[3]
    hunted = [KEY, KEY[3:-3], KEY[-8:]]
    leaks = [(where, k) for where, text in texts.items() for k in hunted if k in text]
    assert leaks == [], leaks


@pytest.mark.slow
def test_a_kill_while_polling_then_resume_never_creates_twice(
    run, home: Path, api: ReplicateServer, still_720p: Path
):
    api.hold = True
    env = {**os.environ, "REELVAULT_HOME": str(home)}
    child = subprocess.Popen(
        [sys.executable, "-m", "core", "generate", str(still_720p), "-p", "a harbour",
         *REPLICATE, "--provider", "rep"],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        api.wait_for(lambda: api.count("GET", r"/predictions/") >= 3, timeout=60)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    (job,) = json.loads(run("jobs", "--json").stdout)
    assert job["status"] in ("queued", "in_progress") and job["remote_job_id"]
    api.release()
    assert f"{job['id']} completed" in run("resume").stdout
    assert len(api.creates) == 1
