"""fal end to end: the CLI a user types, the catalog it writes, the loopback fal queue."""

from __future__ import annotations

import base64
import json
import logging
import re
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.testing.fal_api import FalQueueServer
from tests import hosted_support
from tests.hosted_support import Hosted, jobs, key_leaks, show, write_config

KEY = "fal-key-id-7Qx2:9Zt4Wm8Rk1Pv6Ls3Nb5Hc0Jd"
KLING = "fal-ai/kling-video/v2.1/standard/image-to-video"
FAL = Hosted("fal", KLING, "falqueue", KEY, "LOCAL_FAL_KEY")
still_720p = hosted_support.still_720p
make = FAL.make


@pytest.fixture
def api(home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FalQueueServer]:
    """fal's queue on loopback, reached through a fal profile added as a user would."""
    with FalQueueServer(api_key=KEY) as server:
        FAL.connect(home, monkeypatch, server.base_url, "\n[plugins.fal]\nmax_retry_wait = 5\n")
        yield server


def test_generate_maps_the_request_onto_the_apps_input(run, api: FalQueueServer, still_720p):
    clip = make(run, still_720p, "--seconds", "10")
    assert clip["status"] == "completed" and clip["backend"] == "fal"
    assert clip["remote_job_id"].startswith("fal-ai/kling-video:")
    assert clip["remote_job_id"].endswith("@falqueue")
    ((app, body),) = api.submits
    assert app == KLING and body["duration"] == "10" and body["prompt"] == "a harbour at dawn"
    header, data = body["image_url"].split(",", 1)
    assert header == "data:image/png;base64" and base64.b64decode(data) == still_720p.read_bytes()
    video = clip["video"]
    assert (video["width"], video["height"]) == (1280, 720)
    assert video["duration"] == pytest.approx(10, abs=0.3)

    wan = make(run, still_720p, "-m", "fal-ai/wan-i2v")
    assert api.submits[-1][1] | {"image_url": ""} == {
        "prompt": "a harbour at dawn", "num_frames": 81, "frames_per_second": 16,
        "resolution": "720p", "aspect_ratio": "16:9", "image_url": "",
    }  # fmt: skip
    assert wan["video"]["duration"] == pytest.approx(5, abs=0.3)
    refused = make(run, still_720p, "--seconds", "6", expect=2)
    assert "does not allow 6 seconds (allowed: 5, 10)" in refused.output
    assert len(api.submits) == 2


def test_a_user_adds_an_app_in_config_toml(run, home: Path, api: FalQueueServer, still_720p):
    app = "fal-ai/wan/v2.2-5b/image-to-video"
    write_config(
        home,
        f'[plugins.fal.models."{app}"]\nimage_field = "image_url"\ndescription = "Wan 2.2 5B"\n'
        f'fixed = {{ resolution = "720p" }}\n[plugins.fal.models."{app}".seconds]\n'
        "5 = { num_frames = 81, frames_per_second = 16 }\n"
        f'[plugins.fal.models."{app}".sizes]\n1280x720 = {{ aspect_ratio = "16:9" }}\n',
    )
    models = {r["model"]: r for r in json.loads(run("models", "--json").stdout)}
    assert models[app]["seconds"] == [5] and models[app]["sizes"] == ["1280x720"]
    clip = make(run, still_720p, "-m", app)
    assert clip["status"] == "completed"
    assert api.submits[-1][0] == app and api.submits[-1][1]["aspect_ratio"] == "16:9"


def test_a_content_policy_refusal_is_recorded_with_fals_words(run, api: FalQueueServer, still_720p):
    api.refuse_next("The content could not be processed because it contained material "
                    "flagged by a content checker.")  # fmt: skip
    result = make(run, still_720p, expect=1)
    clip_id = json.loads(result.stdout)["id"]
    shown = json.loads(run("show", clip_id, "--json").stdout)
    assert shown["status"] == "failed" and shown["error"]["code"] == "content_policy_violation"
    assert "flagged by a content checker" in shown["error"]["message"]
    (deny,) = [d for d in shown["policy_decisions"] if d["plugin"] == "fal"]
    assert deny["outcome"] == "deny" and "flagged" in deny["reason"]


def test_a_validation_error_names_the_field(run, home: Path, api: FalQueueServer, still_720p):
    write_config(
        home,
        f'[plugins.fal.models."{KLING}"]\nimage_field = "image_url"\n'
        f'[plugins.fal.models."{KLING}".seconds]\n'
        f'5 = {{ duration = "7" }}\n[plugins.fal.models."{KLING}".sizes]\n1280x720 = {{}}\n',
    )
    result = make(run, still_720p, expect=1)
    assert "falqueue refused the request: Input should be '5', '10' (field duration)" in (
        result.output
    )


def test_a_429_storm_is_waited_out_and_a_bad_key_is_one_line(
    run, api: FalQueueServer, still_720p, monkeypatch: pytest.MonkeyPatch
):
    api.inject("POST", r"^/fal-ai/", 429, times=3, body={"detail": "Rate limit exceeded"},
               headers={"Retry-After": "0.05"})  # fmt: skip
    api.inject("GET", r"/status$", 429, times=2, body={"detail": "Rate limit exceeded"},
               headers={"Retry-After": "0.05"})  # fmt: skip
    clip = make(run, still_720p)
    assert clip["status"] == "completed" and len(api.submits) == 1
    assert api.count("POST", r"^/fal-ai/") == 4

    monkeypatch.setenv("LOCAL_FAL_KEY", KEY + "x")
    line = make(run, still_720p, expect=1).output.strip().splitlines()[-1]
    assert line == (
        "Error: provider falqueue did not accept the API key from $LOCAL_FAL_KEY (HTTP 401); "
        "set a valid one with `reelvault keys set falqueue`"
    )


def test_expired_results_are_reported_as_expired_and_resume_never_resubmits(
    run, home: Path, api: FalQueueServer, still_720p
):
    config = home / "config.toml"  # a top-level key, so before the fixture's tables
    config.write_text("poll_timeout = 0.3\n" + config.read_text())
    api.hold = True
    make(run, still_720p, expect=1)
    make(run, still_720p, expect=1)
    first, second = sorted(json.loads(run("jobs", "--json").stdout), key=lambda j: j["id"])
    api.release()
    expired = next(j for j in api.jobs.values() if j.id in first["remote_job_id"])
    api.expire(expired.id)
    resumed = run("resume", expect=1)
    assert "expired" in resumed.output
    shown = {j: json.loads(run("show", j, "--json").stdout) for j in (first["id"], second["id"])}
    assert shown[first["id"]]["error"]["code"] == "expired"
    assert shown[second["id"]]["status"] == "completed"
    assert len(api.submits) == 2  # nothing was submitted again


def test_no_key_reaches_output_catalog_files_or_logs(
    run, home: Path, db_url: str, api: FalQueueServer, still_720p, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    clip = make(run, still_720p)
    outputs = [run(*args).output for args in (
        ("show", clip["id"], "--json"), ("jobs", "--json"), ("providers", "list", "--json"),
        ("export",), ("export", "--format", "prov-json"),
    )]  # fmt: skip
    api.refuse_next(f"echo {KEY}")
    outputs.append(make(run, still_720p, expect=1).output)
    assert clip["id"] in outputs[3]
    leaks = key_leaks(home, db_url, outputs, caplog.text, [KEY, KEY[8:-4], KEY[-8:]])
    assert leaks == [], leaks


def _polled(api: FalQueueServer) -> bool:
    return api.count("GET", r"/status$") >= 3


@pytest.mark.slow
def test_a_kill_while_polling_then_resume_never_submits_twice(
    run, home: Path, api: FalQueueServer, still_720p: Path
):
    api.hold = True
    FAL.signal_while_polling(home, still_720p, api, lambda: _polled(api), signal.SIGKILL)
    (job,) = jobs(run)
    assert job["status"] in ("queued", "in_progress") and job["remote_job_id"]
    api.release()
    assert f"{job['id']} completed" in run("resume").stdout
    assert len(api.submits) == 1


@pytest.mark.slow
def test_ctrl_c_with_cancel_remote_cancels_the_request_at_fal(
    run, home: Path, api: FalQueueServer, still_720p: Path
):
    api.hold = True
    code, stderr = FAL.signal_while_polling(
        home, still_720p, api, lambda: _polled(api), signal.SIGINT, "--cancel-remote"
    )
    (job,) = api.jobs.values()
    assert api.count("PUT", rf"^/fal-ai/kling-video/requests/{job.id}/cancel$") == 1
    assert job.cancelled
    last = stderr.strip().splitlines()[-1]
    assert code == 130 and last.startswith("interrupted: cancelled clip_"), stderr
    assert jobs(run) == []
    clip = show(run, re.findall(r"clip_[a-z0-9]+", last)[0])
    assert clip["status"] == "failed" and clip["error"]["code"] == "cancelled"
    api.release()  # a cancelled request never renders, whatever happens later
    assert run("resume").output.count("completed") == 0 and len(api.submits) == 1
