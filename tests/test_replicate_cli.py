"""replicate end to end: the CLI a user types, the catalog it writes, the loopback API."""

from __future__ import annotations

import json
import logging
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.api.settings import Settings
from core.generation import cancel_remote
from core.host.app import Reelvault
from core.testing.replicate_api import ReplicateServer
from tests import hosted_support
from tests.hosted_support import Hosted, jobs, key_leaks, show, write_config

KLING = "kwaivgi/kling-v2.1"
REP = Hosted(
    "replicate", KLING, "rep", "r8_Lq7Tz3Vw9Xc2Bn5Mk8Pj4Rh6Sd1Fg0", "LOCAL_REPLICATE_TOKEN"
)
KEY = REP.key
still_720p = hosted_support.still_720p
make = REP.make


@pytest.fixture
def api(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[ReplicateServer]:
    """Replicate on loopback, reached through a profile added with `providers add`."""
    with ReplicateServer(api_key=KEY) as server:
        write_config(home, "poll_timeout = 30\n")
        REP.connect(home, monkeypatch, server.base_url)
        yield server


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
    assert clip["id"] in outputs[3]
    leaks = key_leaks(home, db_url, outputs, caplog.text, [KEY, KEY[3:-3], KEY[-8:]])
    assert leaks == [], leaks


def _polled(api: ReplicateServer) -> bool:
    return api.count("GET", r"/predictions/") >= 3


@pytest.mark.slow
def test_a_kill_while_polling_then_resume_never_creates_twice(
    run, home: Path, api: ReplicateServer, still_720p: Path
):
    api.hold = True
    REP.signal_while_polling(home, still_720p, api, lambda: _polled(api), signal.SIGKILL)
    (job,) = jobs(run)
    assert job["status"] in ("queued", "in_progress") and job["remote_job_id"]
    api.release()
    assert f"{job['id']} completed" in run("resume").stdout
    assert len(api.creates) == 1


@pytest.mark.slow
def test_ctrl_c_with_cancel_remote_cancels_the_prediction_and_records_it(
    run, home: Path, api: ReplicateServer, still_720p: Path
):
    api.hold = True
    code, stderr = REP.signal_while_polling(
        home, still_720p, api, lambda: _polled(api), signal.SIGINT, "--cancel-remote"
    )
    (prediction,) = api.predictions.values()
    assert api.count("POST", rf"^/v1/predictions/{prediction.id}/cancel$") == 1
    assert api._state(prediction) == "canceled"  # no job is left running at Replicate
    last = stderr.strip().splitlines()[-1]
    assert code == 130 and last.startswith("interrupted: cancelled clip_"), stderr
    assert jobs(run) == []  # nothing left in flight for resume to pick up
    clip = show(run, re.findall(r"clip_[a-z0-9]+", last)[0])
    assert clip["status"] == "failed" and clip["error"]["code"] == "cancelled"
    assert f"{prediction.id}@rep" == clip["remote_job_id"]
    assert len(api.creates) == 1


@pytest.mark.slow
def test_ctrl_c_without_the_flag_leaves_the_prediction_running_and_resumable(
    run, home: Path, api: ReplicateServer, still_720p: Path
):
    api.hold = True
    code, stderr = REP.signal_while_polling(
        home, still_720p, api, lambda: _polled(api), signal.SIGINT
    )
    assert code == 130 and "the job was not cancelled" in stderr, stderr
    assert api.count("POST", r"/cancel$") == 0
    (job,) = jobs(run)
    api.release()
    assert f"{job['id']} completed" in run("resume").stdout


def test_cancel_stops_a_running_prediction_and_leaves_a_finished_one_for_resume(
    run, home: Path, api: ReplicateServer, still_720p: Path
):
    config = home / "config.toml"
    config.write_text(config.read_text().replace("poll_timeout = 30", "poll_timeout = 0.3"))
    api.hold = True
    make(run, still_720p, expect=1)
    (running,) = jobs(run)
    app = Reelvault(Settings.load(home=home))
    try:
        assert cancel_remote(app, running["id"]) == (
            f"cancelled {running['id']}: {running['remote_job_id']} was stopped at the provider"
        )
        (prediction,) = api.predictions.values()
        assert api._state(prediction) == "canceled"
        shown = show(run, running["id"])
        assert shown["error"]["code"] == "cancelled"
        assert "canceled at rep" in shown["error"]["message"]
        assert "had already ended (failed); nothing to cancel" in cancel_remote(app, running["id"])

        make(run, still_720p, expect=1)
        (finished,) = jobs(run)
        api.release()
        done = api.predictions[finished["remote_job_id"].removesuffix("@rep")]
        api.wait_for(lambda: api._state(done) == "succeeded")
        assert "had already completed at the provider; `reelvault resume` catalogs it" in (
            cancel_remote(app, finished["id"])
        )
    finally:
        app.close()
    assert f"{finished['id']} completed" in run("resume").stdout


def test_a_bad_webhook_url_is_one_line_and_nothing_is_sent(
    run, home: Path, api: ReplicateServer, still_720p: Path
):
    write_config(home, '[plugins.replicate]\nwebhook_url = "ftp://hooks.example"\n')
    line = make(run, still_720p, expect=1).output.strip().splitlines()[-1]
    assert line.endswith("[plugins.replicate] webhook_url: 'ftp://hooks.example' is not an "
                         "http(s) URL"), line  # fmt: skip
    assert api.files == {} and api.creates == []
