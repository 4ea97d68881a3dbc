"""sora end to end: the CLI a user types, the catalog it writes, the loopback Videos API."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import signal
import stat
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from sqlmodel import select

from catalog.models import Generation
from core.generation import generate
from core.host.app import Reelvault
from core.testing import VideosAPIServer
from tests import sora_support
from tests.conftest import REPO
from tests.sora_support import catalog_dump, write_config

KEY = sora_support.KEY
api = sora_support.api
still_720p = sora_support.still_720p
SORA = ("--model", "sora-2", "--size", "1280x720")


def make(run, image: Path, *extra: str, prompt: str = "a harbour at dawn", expect: int = 0):
    result = run("generate", image, "--prompt", prompt, *SORA, *extra, "--json", expect=expect)
    return json.loads(result.stdout) if expect == 0 else result


def derived(run, command: str, clip: str, *extra: str, prompt: str) -> dict:
    return json.loads(run(command, clip, "--prompt", prompt, *extra, "--json").stdout)


def media_files(home: Path) -> list[Path]:
    media = home / "media"
    return [p for p in media.rglob("*") if p.is_file()] if media.exists() else []


def test_generate_creates_polls_downloads_and_catalogs(run, api: VideosAPIServer, still_720p):
    clip = make(run, still_720p)
    assert clip["status"] == "completed" and clip["backend"] == "sora"
    video_id, provider = clip["remote_job_id"].split("@")
    assert provider == "openai" and api.video(video_id)["status"] == "completed"
    video, thumb, sprites = clip["video"], clip["thumbnail"], clip["spritesheet"]
    assert (video["mime"], video["width"], video["height"]) == ("video/mp4", 1280, 720)
    assert video["duration"] == pytest.approx(4.0, abs=0.3)
    assert (thumb["mime"], sprites["mime"]) == ("image/webp", "image/jpeg")
    assert clip["source"]["original_name"] == "harbour.png" and clip["input"] is None
    assert clip["details"]["video"]["id"] == video_id
    shown = run("show", clip["id"]).stdout
    assert "backend notes" in shown and f"sora-2 at openai (127.0.0.1) as {video_id}" in shown
    models = run("models").stdout
    assert "available via openai (127.0.0.1); retired at api.openai.com since 2026-09-24" in models


def test_the_job_id_is_on_record_before_the_first_poll(
    app: Reelvault, api: VideosAPIServer, still_720p: Path, monkeypatch: pytest.MonkeyPatch
):
    backend = app.backend("sora")
    real_poll = backend.poll
    seen: list[tuple[str | None, str]] = []

    def poll(job_id: str):
        if not seen:
            with app.session() as session:
                (row,) = session.exec(select(Generation)).all()
                seen.append((row.remote_job_id, row.status))
        return real_poll(job_id)

    monkeypatch.setattr(backend, "poll", poll)
    clip = generate(app, still_720p, "a harbour", model="sora-2", size="1280x720").generation
    assert clip.status == "completed"
    assert seen == [(clip.remote_job_id, "queued")]


def test_a_still_of_another_size_is_refused_unless_fitted(
    run, home: Path, db_url: str, api: VideosAPIServer, still: Path
):
    refused = make(run, still, expect=2)
    assert "Error: still.jpg is 960x540 but model sora-2 needs exactly 1280x720" in (refused.output)
    assert "--fit cover" in refused.output
    assert media_files(home) == [] and api.requests == []
    assert catalog_dump(db_url).get("generations", []) == []

    covered = make(run, still, "--fit", "cover")
    sent = covered["input"]
    assert covered["parameters"]["fit"] == "cover" and sent["id"] != covered["source"]["id"]
    assert (sent["mime"], sent["width"], sent["height"]) == ("image/png", 1280, 720)
    (upload,) = [r.uploads["input_reference"] for r in api.requests if r.uploads]
    assert hashlib.sha256(upload).hexdigest() == sent["sha256"]  # the exact bytes sent
    assert Path(sent["path"]).read_bytes() == upload

    contained = make(run, still, "--fit", "contain", "--size", "720x1280")
    pixels = np.asarray(Image.open(contained["input"]["path"]))
    assert pixels.shape == (1280, 720, 3) and pixels[0, 0].max() == 0 == pixels[-1, -1].max()
    lineage = json.loads(run("lineage", covered["source"]["id"], "--json").stdout)
    assert {c["input_asset_id"] for c in lineage["clips"]} == {sent["id"], contained["input"]["id"]}
    assert "sent fitted img_" in run("lineage", covered["id"]).stdout
    assert f"sent      {sent['id'][:16]}" in run("show", covered["id"]).stdout


def test_remix_edit_and_extend_record_their_relations(run, api: VideosAPIServer, still_720p):
    root = make(run, still_720p)
    remix = derived(run, "remix", root["id"], prompt="at dusk")
    edit = derived(run, "edit", remix["id"], prompt="make the boats red")
    extension = derived(run, "extend", root["id"], "--seconds", "8", prompt="the sun rises")
    assert (remix["relation"], edit["relation"], extension["relation"]) == (
        "remix_of", "edit_of", "extension_of",
    )  # fmt: skip
    root_video = root["remote_job_id"].split("@")[0]
    assert api.video(remix["remote_job_id"].split("@")[0])["remixed_from_video_id"] == root_video
    assert extension["details"]["video"]["seconds"] == "12"  # the stitched total
    assert extension["video"]["duration"] == pytest.approx(12, abs=0.3)
    tree = json.loads(run("lineage", edit["id"], "--json").stdout)
    (top,) = tree["clips"]
    assert top["id"] == root["id"]
    assert [(c["id"], c["relation"]) for c in top["children"]] == [(remix["id"], "remix_of")]
    assert top["children"][0]["children"][0]["id"] == edit["id"]
    whole = json.loads(run("lineage", root["id"], "--json").stdout)["clips"][0]["children"]
    assert {c["relation"] for c in whole} == {"remix_of", "extension_of"}


def test_a_remix_cannot_ask_for_what_the_service_ignores(run, api: VideosAPIServer, still_720p):
    """A sora remix takes a prompt only: another length or size would be ignored remotely
    and then recorded as if honoured, so it is refused, and nothing is sent."""
    root = make(run, still_720p, "--seconds", "8")
    refused = run("remix", root["id"], "-p", "at dusk", "--seconds", "4", expect=2)
    assert "keeps the parent's 8 seconds; --seconds cannot change it" in refused.output
    refused = run("remix", root["id"], "-p", "at dusk", "--size", "720x1280", expect=2)
    assert "keeps the parent's size 1280x720; --size cannot change it" in refused.output
    assert api.count("POST", "/videos/{id}/remix") == 0
    assert len(json.loads(run("list", "--json").stdout)) == 1  # nothing recorded either
    same = derived(run, "remix", root["id"], "--seconds", "8", "--size", "1280X720", prompt="p")
    assert (same["seconds"], same["size"]) == (8, "1280x720")
    assert (same["video"]["duration"], same["video"]["width"]) == (pytest.approx(8, abs=0.3), 1280)
    plain = derived(run, "remix", root["id"], prompt="at night")
    assert (plain["seconds"], plain["size"]) == (8, "1280x720")


def test_a_refusal_is_a_failure_and_a_policy_decision(run, api: VideosAPIServer, still_720p):
    api.fail_next("moderation_blocked", "Your request was blocked by our moderation system.")
    result = make(run, still_720p, expect=1)
    assert "failed: moderation_blocked: Your request was blocked" in result.output
    clip_id = json.loads(result.stdout)["id"]
    shown = json.loads(run("show", clip_id, "--json").stdout)
    assert shown["status"] == "failed" and shown["error"]["code"] == "moderation_blocked"
    assert {
        "plugin": "sora",
        "rule_id": "moderation_blocked",
        "outcome": "deny",
        "reason": "Your request was blocked by our moderation system.",
    } in shown["policy_decisions"]


def test_downloads_survive_a_500_and_a_connection_cut_mid_file(
    run, api: VideosAPIServer, still_720p
):
    api.inject("GET", "/videos/{id}/content", 500)
    api.inject("GET", "/videos/{id}/content", drop_after=1000)
    clip = make(run, still_720p)
    assert clip["status"] == "completed"
    assert api.count("GET", "/videos/{id}/content") == 3 + 2
    assert Path(clip["video"]["path"]).stat().st_size == clip["video"]["bytes"]
    assert not list((Path(clip["video"]["path"]).parents[1] / "tmp").iterdir())


def test_outputs_that_expired_before_download_are_reported_as_expired(
    run, home: Path, api: VideosAPIServer, still_720p
):
    write_config(home, "poll_timeout = 0.3\n")
    api.hold = True
    waiting = make(run, still_720p, expect=1)
    assert "`reelvault resume` picks it up later" in waiting.output
    (job,) = json.loads(run("jobs", "--json").stdout)
    video_id = job["remote_job_id"].split("@")[0]
    api.release()
    api.wait_for(lambda: api.video(video_id)["status"] == "completed")
    api.expire(video_id)
    resumed = run("resume", expect=1)
    assert "expired" in resumed.output
    shown = json.loads(run("show", job["id"], "--json").stdout)
    assert shown["status"] == "failed" and shown["error"]["code"] == "expired"
    assert "can no longer be fetched" in shown["error"]["message"]


def test_a_retired_endpoint_fails_with_the_alternatives(run, api: VideosAPIServer, still_720p):
    api.retired = True
    result = make(run, still_720p, expect=1)
    line = result.output.strip().splitlines()[-1]
    assert line.startswith("Error: the Videos API is retired at 127.0.0.1 (provider openai)")
    assert "reelvault providers add cometapi" in line and "--backend local" in line
    assert "Invalid URL" not in result.output


def test_provider_profiles_pick_where_a_job_runs(
    run, home: Path, api: VideosAPIServer, still_720p, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("COMETAPI_KEY", KEY)
    run("providers", "add", "cometapi", "--base-url", api.base_url, "--key-env", "COMETAPI_KEY")
    profiles = {p["name"]: p for p in json.loads(run("providers", "list", "--json").stdout)}
    assert profiles["cometapi"]["key"] == "$COMETAPI_KEY" and not profiles["cometapi"]["default"]
    clip = make(run, still_720p, "--provider", "cometapi")
    assert clip["remote_job_id"].endswith("@cometapi")
    assert clip["parameters"]["provider"] == "cometapi"
    remix = derived(run, "remix", clip["id"], prompt="again")  # stays with its provider
    assert remix["remote_job_id"].endswith("@cometapi")

    unknown = run("generate", still_720p, "-p", "x", *SORA, "--provider", "nope", expect=2)
    assert "no provider profile named 'nope' (known: openai, cometapi)" in unknown.output
    bare = run("generate", still_720p, "-p", "x", "--provider", "cometapi", expect=2)
    assert "give --model too" in bare.output
    run("providers", "default", "cometapi")
    assert 'default_provider = "cometapi"' in (home / "config.toml").read_text()
    run("providers", "remove", "cometapi")
    assert "cometapi" not in run("providers", "list").stdout
    assert "built in" in run("providers", "remove", "openai", expect=2).output


def test_keys_are_stored_for_the_user_alone(run, home: Path, monkeypatch: pytest.MonkeyPatch):
    from click.testing import CliRunner

    from core.cli import cli

    result = CliRunner().invoke(cli, ["keys", "set", "cometapi"], input=KEY + "\n")
    assert result.exit_code == 0, result.output
    keys = home / "keys.toml"
    assert stat.S_IMODE(keys.stat().st_mode) == 0o600
    assert json.loads(run("keys", "list", "--json").stdout) == {"cometapi": ["api_key"]}
    keys.chmod(0o644)
    assert "can be read by other users" in run("keys", "list", expect=1).output
    keys.chmod(0o600)
    run("keys", "remove", "cometapi")
    assert json.loads(run("keys", "list", "--json").stdout) == {}


def test_no_key_reaches_output_catalog_files_or_logs(
    run,
    home: Path,
    db_url: str,
    api: VideosAPIServer,
    still_720p,
    monkeypatch: pytest.MonkeyPatch,
    caplog,
):
    from click.testing import CliRunner

    from core.cli import cli

    caplog.set_level(logging.DEBUG)
    monkeypatch.delenv("OPENAI_API_KEY")  # the key comes from the keys file this time
    assert CliRunner().invoke(cli, ["keys", "set", "openai"], input=KEY + "\n").exit_code == 0
    outputs = []
    clip = make(run, still_720p)
    for args in (
        ("show", clip["id"], "--json"), ("list", "--json"), ("lineage", clip["id"], "--json"),
        ("jobs", "--json"), ("providers", "list", "--json"), ("keys", "list"), ("models",),
        ("remix", clip["id"], "-p", "again", "--json"),
    ):  # fmt: skip
        outputs.append(run(*args).output)
    monkeypatch.setenv("OPENAI_API_KEY", KEY[:-1] + "X")  # a wrong key: a 401 with an echo
    outputs.append(make(run, still_720p, expect=1).output)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    api.fail_next("moderation_blocked", f"blocked (echo {KEY})")  # even a service echoing it
    outputs.append(make(run, still_720p, expect=1).output)
    assert "did not accept the API key" in outputs[-2]

    hunted = [KEY, KEY[3:-3], KEY[-8:]]
    rows = catalog_dump(db_url)
    assert len(rows["generations"]) == 4 and rows["assets"]  # something to search in
    texts = {
        "output": "\n".join(outputs),
        "catalog": json.dumps(rows),
        "logs": caplog.text,
    }
    for path in home.rglob("*"):
        if path.is_file() and path.name != "keys.toml":
            texts[str(path)] = path.read_bytes().decode("latin-1")
    leaks = [(where, k) for where, text in texts.items() for k in hunted if k in text]
    assert leaks == [], leaks


@pytest.mark.slow
def test_a_kill_while_polling_then_resume_never_submits_twice(
    run, home: Path, api: VideosAPIServer, still_720p: Path
):
    api.hold = True
    env = {**os.environ, "REELVAULT_HOME": str(home)}
    child = subprocess.Popen(
        [sys.executable, "-m", "core", "generate", str(still_720p), "-p", "a harbour", *SORA],
        cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        api.wait_for(lambda: api.count("GET", "/videos/{id}") >= 3, timeout=60)
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
    assert child.returncode == -signal.SIGKILL
    (job,) = json.loads(run("jobs", "--json").stdout)
    assert job["status"] in ("queued", "in_progress") and job["remote_job_id"]
    video_id = job["remote_job_id"].split("@")[0]
    assert api.video_ids() == [video_id]

    api.release()
    resumed = run("resume")
    assert f"{job['id']} completed" in resumed.stdout
    assert api.count("POST", "/videos") == 1  # the create was never sent again
    shown = json.loads(run("show", job["id"], "--json").stdout)
    assert shown["status"] == "completed" and shown["video"]["width"] == 1280
    assert "nothing to resume" in run("resume").output


def test_edit_and_extend_copy_the_clip_they_make_out_with_dash_o(
    run, api: VideosAPIServer, still_720p: Path, tmp_path: Path
):
    """``-o`` as on ``generate`` and ``remix``: a folder gets a named file, a path is used
    as given, and a path that exists is refused before anything is sent."""
    root = make(run, still_720p)
    folder = tmp_path / "out"
    folder.mkdir()
    edit = derived(run, "edit", root["id"], "-o", folder, prompt="Make the boats red!")
    written = folder / f"{edit['id']}-make-the-boats-red.mp4"
    assert written.read_bytes() == Path(edit["video"]["path"]).read_bytes()
    target = tmp_path / "longer.mp4"
    extension = derived(run, "extend", root["id"], "--seconds", "8", "-o", target,
                        prompt="the sun rises")  # fmt: skip
    assert target.read_bytes() == Path(extension["video"]["path"]).read_bytes()
    sent = len(api.requests)
    refused = run("extend", root["id"], "--seconds", "8", "-p", "again", "-o", target, expect=2)
    assert "exists" in refused.output and len(api.requests) == sent
    assert target.read_bytes() == Path(extension["video"]["path"]).read_bytes()
    sprites = Path(run("get", edit["id"], "--variant", "spritesheet", "-o", folder).stdout.strip())
    assert sprites == folder / f"{edit['id']}-make-the-boats-red-spritesheet.jpg"
    assert sprites.read_bytes() == Path(edit["spritesheet"]["path"]).read_bytes()
