"""`reelvault sync`: the account's videos the catalog lacks come in, with remix lineage."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

import core.remote.sync
from catalog.queries import decisions_for
from core.api.settings import Settings
from core.api.types import GenerationRequest, JobStatus
from core.generation import generate
from core.host.app import Reelvault
from core.remote.sync import SyncReport, sync
from core.testing import VideosAPIServer
from tests import sora_support
from tests.sora_support import write_config

KEY = sora_support.KEY
api = sora_support.api
still_720p = sora_support.still_720p


def made_elsewhere(server: VideosAPIServer, prompt: str, remix_of: str | None = None) -> str:
    """A video created straight through the API, as another tool would."""
    with httpx.Client(
        base_url=server.base_url + "/", headers={"Authorization": f"Bearer {KEY}"}
    ) as c:
        if remix_of:
            response = c.post(f"videos/{remix_of}/remix", json={"prompt": prompt})
        else:
            fields = {"prompt": prompt, "model": "sora-2-pro", "size": "1792x1024", "seconds": "8"}
            response = c.post("videos", files={k: (None, v) for k, v in fields.items()})
        response.raise_for_status()
        return str(response.json()["id"])


def settle(server: VideosAPIServer, *video_ids: str) -> None:
    server.wait_for(lambda: all(server.video(v)["status"] != "queued" for v in video_ids))
    time.sleep(server.render_seconds)


def test_sync_imports_what_the_catalog_lacks_with_lineage(run, home: Path, api: VideosAPIServer):
    write_config(home, "[plugins.sora]\npage_size = 2\n")  # several pages
    parent = made_elsewhere(api, "a lighthouse")
    settle(api, parent)
    remix = made_elsewhere(api, "a lighthouse in fog", remix_of=parent)
    api.fail_next("moderation_blocked", "Blocked by moderation.")
    failed = made_elsewhere(api, "something refused")
    settle(api, remix, failed)
    api.hold = True
    running = made_elsewhere(api, "still rendering")

    report = json.loads(run("sync", "--json").stdout)
    assert report["listed"] == 4 and report["downloaded"] == [] and report["problems"] == []
    by_video = {i["job"].split("@")[0]: i for i in report["imported"]}
    assert by_video[parent]["status"] == by_video[remix]["status"] == "remote"
    assert by_video[failed]["status"] == "failed" and by_video[running]["status"] == "in_progress"

    child = json.loads(run("show", by_video[remix]["id"], "--json").stdout)
    assert child["parent_id"] == by_video[parent]["id"] and child["relation"] == "remix_of"
    assert (child["model"], child["seconds"], child["size"]) == ("sora-2-pro", 8, "1792x1024")
    assert child["video"] is None and child["details"]["imported"] is True
    refused = json.loads(run("show", by_video[failed]["id"], "--json").stdout)
    assert refused["error"] == {"code": "moderation_blocked", "message": "Blocked by moderation."}
    (in_flight,) = json.loads(run("jobs", "--json").stdout)
    assert in_flight["remote_job_id"] == by_video[running]["job"]

    again = json.loads(run("sync", "--json").stdout)
    assert again["listed"] == 4 and again["imported"] == []  # nothing twice


def test_sync_download_fetches_finished_videos_and_reports_expired_ones(run, api: VideosAPIServer):
    kept, lost = made_elsewhere(api, "kept"), made_elsewhere(api, "lost")
    settle(api, kept, lost)
    first = json.loads(run("sync", "--json").stdout)
    api.expire(lost)
    result = run("sync", "--download", "--json", expect=1)
    report = json.loads(result.stdout)
    assert report["imported"] == [] and len(report["downloaded"]) == 1
    assert "1 videos could not be downloaded" in result.output
    (problem,) = report["problems"]
    assert lost in problem and "expired" in problem
    ids = {i["job"].split("@")[0]: i["id"] for i in first["imported"]}
    done = json.loads(run("show", ids[kept], "--json").stdout)
    assert done["status"] == "completed" and done["video"]["width"] == 1792
    gone = json.loads(run("show", ids[lost], "--json").stdout)
    assert gone["status"] == "failed" and gone["error"]["code"] == "expired"


@pytest.mark.parametrize(
    "fault",
    [{"status": 500, "when": "after"}, {"drop_after": 10}],
    ids=["a 5xx after the job was made", "the answer cut off on the wire"],
)
def test_a_create_whose_answer_was_lost_is_found_in_the_list_not_sent_twice(
    run, api: VideosAPIServer, still_720p: Path, fault: dict
):
    args = ("generate", still_720p, "-p", "a harbour", "-m", "sora-2", "--size", "1280x720")
    made = json.loads(run(*args, "--json").stdout)
    api.inject("POST", "/videos", **fault)
    # the same prompt again: the first clip's job matches too, but it is that clip's
    again = json.loads(run(*args, "--json").stdout)
    assert api.count("POST", "/videos") == 2  # the lost create was not sent again
    assert again["status"] == "completed" and again["remote_job_id"] != made["remote_job_id"]
    assert {made["remote_job_id"], again["remote_job_id"]} == {
        f"{video}@openai" for video in api.video_ids()
    }
    report = json.loads(run("sync", "--json").stdout)
    assert report["listed"] == 2 and report["imported"] == []  # no orphan left to import


def test_sync_needs_a_backend_that_can_list(run):
    result = run("sync", "--backend", "local", expect=2)
    assert "backend local cannot list its jobs" in result.output


@pytest.mark.parametrize("provider", ["nope"])
def test_sync_names_unknown_providers(run, api: VideosAPIServer, provider: str):
    result = run("sync", "--provider", provider, expect=2)
    assert f"no provider profile named '{provider}'" in result.output


def count_rows(app: Reelvault, sql: str) -> list[tuple]:
    with app.engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(sql))]


def test_two_syncs_at_once_import_a_video_once(
    home: Path, api: VideosAPIServer, monkeypatch: pytest.MonkeyPatch
):
    made = made_elsewhere(api, "made in the playground")
    settle(api, made)
    real_lookup = core.remote.sync.generations_by_job_ids
    both_looked = threading.Barrier(2, timeout=1.5)  # SQLite serialises: they never meet

    def lookup_then_wait(session: object, ids: list[str]) -> dict:
        found = real_lookup(session, ids)
        if len(ids) > 1 or made in str(ids):
            with contextlib.suppress(threading.BrokenBarrierError):
                both_looked.wait()  # each sync saw the catalog without the video
        return found

    monkeypatch.setattr(core.remote.sync, "generations_by_job_ids", lookup_then_wait)
    apps = [Reelvault(Settings.load(home=home)) for _ in range(2)]
    for each in apps:
        _ = each.engine
    reports: list[SyncReport] = []
    threads = [threading.Thread(target=lambda a=a: reports.append(sync(a))) for a in apps]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(len(r.imported) for r in reports) == [0, 1]
    assert count_rows(apps[0], "SELECT remote_job_id FROM generations") == [(f"{made}@openai",)]
    for each in apps:
        each.close()


def test_a_sync_during_a_create_leaves_one_clip_for_the_job(
    app: Reelvault, api: VideosAPIServer, still_720p: Path
):
    """The create returned, and before its id was recorded a sync listed the new video:
    the sync adopts the job into the generation's ``submitting`` row instead of importing
    a second clip, so the catalog has one clip for the job."""
    sora = app.backend("sora")
    real_submit = sora.submit
    imported: list[str] = []
    adopted: list[str] = []

    def submit_then_sync(request: GenerationRequest) -> JobStatus:
        status = real_submit(request)
        report = sync(app)
        imported.extend(g.id for g in report.imported)
        adopted.extend(g.id for g in report.adopted)
        return status

    sora.submit = submit_then_sync  # type: ignore[method-assign]
    made = generate(app, still_720p, "a harbour", model="sora-2", size="1280x720").generation
    assert imported == [] and adopted == [made.id]
    assert made.status == "completed"
    rows = count_rows(app, "SELECT id, remote_job_id, source_asset_id FROM generations")
    assert rows == [(made.id, made.remote_job_id, made.source_asset_id)]
    assert sync(app).imported == []  # nothing new
    with app.session() as session:
        assert [d.generation_id for d in decisions_for(session, made.id)] != []
