"""veo end to end: the CLI a user types, the catalog it writes, the loopback Gemini API."""

from __future__ import annotations

import base64
import json
import logging
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from core.testing.gemini_api import GeminiAPIServer, GoogleError
from tests import sora_support
from tests.conftest import REPO
from tests.sora_support import catalog_dump, write_config

KEY = "AIzaSyTest-Qm4v9Xc2Lp7Rt5Wn8Bk3Hd6Jf1"
"""Shaped like a Google key, and distinctive enough to hunt for."""
still_720p = sora_support.still_720p
VEO = ("--backend", "veo", "--model", "veo-3.0-generate-001", "--size", "1280x720")


@pytest.fixture
def api(monkeypatch: pytest.MonkeyPatch) -> Iterator[GeminiAPIServer]:
    """The Gemini API on loopback, with the built-in gemini profile pointed at it."""
    with GeminiAPIServer(api_key=KEY, render_seconds=0.15) as server:
        monkeypatch.setenv("GOOGLE_GEMINI_BASE_URL", server.base_url)
        monkeypatch.setenv("GEMINI_API_KEY", KEY)
        yield server


def make(run, image: Path, *extra: str, prompt: str = "a harbour at dawn", expect: int = 0):
    result = run("generate", image, "--prompt", prompt, *VEO, *extra, "--json", expect=expect)
    return json.loads(result.stdout) if expect == 0 else result


def test_generate_sends_the_still_inline_polls_and_downloads(
    run, api: GeminiAPIServer, still_720p: Path
):
    clip = make(run, still_720p, "--seconds", "6")
    assert clip["status"] == "completed" and clip["backend"] == "veo"
    model_op, provider = clip["remote_job_id"].split("@")
    assert provider == "gemini" and model_op.startswith("veo-3.0-generate-001/")
    (body,) = api.creates
    (instance,) = body["instances"]
    assert base64.b64decode(instance["image"]["bytesBase64Encoded"]) == still_720p.read_bytes()
    assert instance["image"]["mimeType"] == "image/png"
    assert body["parameters"] == {
        "durationSeconds": 6, "aspectRatio": "16:9", "resolution": "720p",
        "personGeneration": "allow_adult",
    }  # fmt: skip
    video = clip["video"]
    assert (video["mime"], video["width"], video["height"]) == ("video/mp4", 1280, 720)
    assert video["duration"] == pytest.approx(6.0, abs=0.3)
    assert api.count("GET", r"/operations/") >= 2  # polled until done, then once to download
    shown = run("show", clip["id"]).stdout
    assert "veo-3.0-generate-001 at gemini (127.0.0.1) as models/veo-3.0-generate-001" in shown


def test_what_a_model_does_not_take_is_refused_before_sending(
    run, api: GeminiAPIServer, still_720p: Path, tmp_path: Path
):
    long_only = run("generate", still_720p, "-p", "x", *VEO[:4], "--size", "1920x1080",
                    "--seconds", "4", "--fit", "cover", expect=2)  # fmt: skip
    assert "veo-3.0-generate-001 makes 1080p (1920x1080) at 8 seconds only, not 4" in (
        long_only.output
    )
    veo2 = run("generate", still_720p, "-p", "x", "-b", "veo", "-m", "veo-2.0-generate-001",
               "--size", "1920x1080", "--seconds", "8", expect=2)  # fmt: skip
    assert "does not allow size 1920x1080 (allowed: 1280x720, 720x1280)" in veo2.output
    seconds = run("generate", still_720p, "-p", "x", *VEO, "--seconds", "5", expect=2)
    assert "does not allow 5 seconds (allowed: 4, 6, 8)" in seconds.output
    assert api.creates == [] and api.count("POST", "") == 0

    clip = make(run, still_720p, "-m", "veo-2.0-generate-001", "--seconds", "5")
    assert "resolution" not in api.creates[-1]["parameters"]  # Veo 2 takes none at all
    assert clip["video"]["duration"] == pytest.approx(5.0, abs=0.3)


def test_a_provider_validation_error_names_its_field(run, api: GeminiAPIServer, still_720p):
    reply = GoogleError(400, "durationSeconds is out of bound", field="parameters.durationSeconds")
    api.inject_reply("POST", r":predictLongRunning$", reply.reply)
    result = make(run, still_720p, expect=1)
    assert (
        "Error: gemini refused the request: durationSeconds is out of bound "
        "(field parameters.durationSeconds)"
    ) in result.output


def test_a_safety_filtered_video_is_a_refusal_with_the_reasons(
    run, api: GeminiAPIServer, still_720p
):
    reason = "We encountered an issue with the audio for your prompt. You have not been charged."
    api.filter_next(reason)
    result = make(run, still_720p, expect=1)
    assert "safety_filtered" in result.output
    clip_id = json.loads(result.stdout)["id"]
    shown = json.loads(run("show", clip_id, "--json").stdout)
    assert shown["status"] == "failed" and shown["error"]["code"] == "safety_filtered"
    assert shown["error"]["message"] == reason
    assert {"plugin": "veo", "rule_id": "safety_filtered", "outcome": "deny", "reason": reason} in (
        shown["policy_decisions"]
    )

    api.fail_next(13, "Internal error while generating the video.")
    failed = json.loads(make(run, still_720p, expect=1).stdout)
    shown = json.loads(run("show", failed["id"], "--json").stdout)
    assert shown["error"]["code"] == "internal"
    assert all(d["plugin"] != "veo" for d in shown["policy_decisions"])  # a fault, no refusal


def test_a_429_storm_is_waited_out_and_a_long_one_reported(run, api: GeminiAPIServer, still_720p):
    api.rate_limit(3, retry_delay="0.05s")  # create refused three times, then accepted
    clip = make(run, still_720p)
    assert clip["status"] == "completed" and len(api.creates) == 1
    assert api.count("POST", r":predictLongRunning$") == 4

    api.rate_limit(1, retry_delay="600s", header=True)
    result = make(run, still_720p, expect=1)
    assert "gemini is rate limiting requests (HTTP 429)" in result.output
    assert "the service asks to wait 600 s; try again later" in result.output
    assert len(api.creates) == 1


def test_a_bad_key_is_one_clear_line_and_not_retried(
    run, api: GeminiAPIServer, still_720p, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("GEMINI_API_KEY", KEY[:-1] + "X")
    result = make(run, still_720p, expect=1)
    line = result.output.strip().splitlines()[-1]
    assert line == (
        "Error: provider gemini did not accept the API key from $GEMINI_API_KEY (HTTP 400); "
        "set a valid one with `reelvault keys set gemini`"
    )
    assert api.count("POST", "") == 1
    monkeypatch.delenv("GEMINI_API_KEY")
    missing = make(run, still_720p, expect=1)
    assert "no API key for provider gemini: missing (set $GEMINI_API_KEY or" in missing.output


def test_a_model_the_endpoint_retired_names_the_alternatives(run, api: GeminiAPIServer, still_720p):
    api.retired["veo-3.0-generate-001"] = "Use a newer model."
    result = make(run, still_720p, expect=1)
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: model veo-3.0-generate-001 is retired at gemini (127.0.0.1)")
    assert 'record it with [lifecycle."veo:veo-3.0-generate-001"]' in line

    write_config(
        Path(os.environ["REELVAULT_HOME"]),
        '[lifecycle."veo:veo-3.0-generate-001"]\nstatus = "retired"\nsince = 2026-11-30\n'
        'alternatives = ["veo:veo-2.0-generate-001"]\n',
    )
    refused = make(run, still_720p, expect=2)
    assert refused.output.strip().splitlines()[-1] == (
        "Error: model veo-3.0-generate-001 (veo) is retired since 2026-11-30; use instead: "
        "--backend veo -m veo-2.0-generate-001"
    )
    assert api.count("POST", "") == 1  # the second request was never sent


def test_expired_output_is_reported_as_expired(run, home: Path, api: GeminiAPIServer, still_720p):
    write_config(home, "poll_timeout = 0.3\n")
    api.hold = True
    waiting = make(run, still_720p, expect=1)
    assert "`reelvault resume` picks it up later" in waiting.output
    (job,) = json.loads(run("jobs", "--json").stdout)
    api.release()
    api.expire(api.operation_ids()[0])
    resumed = run("resume", expect=1)
    assert "expired" in resumed.output
    shown = json.loads(run("show", job["id"], "--json").stdout)
    assert shown["status"] == "failed" and shown["error"]["code"] == "expired"
    assert "can no longer be downloaded" in shown["error"]["message"]
    assert len(api.creates) == 1


def test_a_veo_provider_profile_is_added_and_used(
    run, home: Path, api: GeminiAPIServer, still_720p, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("MY_GEMINI_KEY", KEY)
    monkeypatch.delenv("GEMINI_API_KEY")
    added = run("providers", "add", "google2", "--kind", "veo", "--base-url", api.base_url,
                "--key-env", "MY_GEMINI_KEY")  # fmt: skip
    assert f"veo provider google2 added: {api.base_url}/v1beta" in added.output
    assert 'kind = "veo"' in (home / "config.toml").read_text()
    profiles = {p["name"]: p for p in json.loads(run("providers", "list", "--json").stdout)}
    assert profiles["google2"]["kind"] == "veo" and profiles["gemini"]["builtin"]
    clip = make(run, still_720p, "--provider", "google2")
    assert clip["remote_job_id"].endswith("@google2")
    wrong = make(run, still_720p, "--provider", "openai", expect=2)
    assert "provider 'openai' is a sora provider, not veo" in wrong.output
    azure = run("providers", "add", "g3", "--kind", "veo", "--base-url", api.base_url, "--azure",
                expect=2)  # fmt: skip
    assert "--azure and --api-version apply to sora profiles only" in azure.output


def test_no_key_reaches_output_catalog_files_or_logs(
    run, home: Path, db_url: str, api: GeminiAPIServer, still_720p, monkeypatch, caplog
):
    caplog.set_level(logging.DEBUG)
    outputs = []
    clip = make(run, still_720p)
    for args in (("show", clip["id"], "--json"), ("list", "--json"), ("jobs", "--json"),
                 ("providers", "list", "--json"), ("models",), ("export",),
                 ("export", "--format", "csv"), ("export", "--format", "prov-json")):  # fmt: skip
        outputs.append(run(*args).output)
    api.fail_next(3, f"bad request (echo {KEY})")  # even a service echoing it
    outputs.append(make(run, still_720p, expect=1).output)
    monkeypatch.setenv("GEMINI_API_KEY", KEY[:-1] + "X")
    outputs.append(make(run, still_720p, expect=1).output)
    hunted = [KEY, KEY[4:-4], KEY[-8:]]
    rows = catalog_dump(db_url)
    assert len(rows["generations"]) == 3 and rows["assets"]
    assert clip["id"] in outputs[5] and "veo-3.0-generate-001" in outputs[7]  # real exports
    texts = {"output": "\n".join(outputs), "catalog": json.dumps(rows), "logs": caplog.text}
    for path in home.rglob("*"):
        if path.is_file():
            texts[str(path)] = path.read_bytes().decode("latin-1")
    leaks = [(where, k) for where, text in texts.items() for k in hunted if k in text]
    assert leaks == [], leaks


@pytest.mark.slow
def test_a_kill_while_polling_then_resume_never_submits_twice(
    run, home: Path, api: GeminiAPIServer, still_720p: Path
):
    api.hold = True
    env = {**os.environ, "REELVAULT_HOME": str(home)}
    child = subprocess.Popen(
        [sys.executable, "-m", "core", "generate", str(still_720p), "-p", "a harbour", *VEO],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        api.wait_for(lambda: api.count("GET", r"/operations/") >= 3, timeout=60)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    (job,) = json.loads(run("jobs", "--json").stdout)
    assert job["status"] in ("queued", "in_progress") and job["remote_job_id"]
    assert len(api.operation_ids()) == 1
    api.release()
    resumed = run("resume")
    assert f"{job['id']} completed" in resumed.stdout
    assert len(api.creates) == 1  # the create was never sent again
    shown = json.loads(run("show", job["id"], "--json").stdout)
    assert shown["status"] == "completed" and shown["video"]["width"] == 1280
