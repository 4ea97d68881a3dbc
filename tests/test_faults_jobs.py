"""A job that meets a fault on its way (issue 10, cases 1, 2 and 4): damaged or missing
extras, a full disk, a kill between writing its row and recording its remote job id. Each
ends in one clear line and a state that ``resume`` finishes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from core.host.app import Reelvault
from core.library.doctor import doctor
from tests import sora_support
from tests.fault_support import ctrl_c_while_cataloging, make_clip

api = sora_support.api
still_720p = sora_support.still_720p

SORA_ARGS = ("--model", "sora-2", "--size", "1280x720")


# -- (1) a provider's damaged thumbnail or spritesheet ----------------------------------


def test_damaged_extras_become_warnings_and_the_clip_completes(home: Path, run, api, still_720p):
    api.truncated_variants.update({"thumbnail": 100, "spritesheet": 300})
    result = run("generate", still_720p, "-p", "a harbour", *SORA_ARGS, "--json")
    clip = json.loads(result.stdout)
    assert clip["status"] == "completed" and clip["video"]["mime"] == "video/mp4"
    warnings = clip["details"]["warnings"]
    assert len(warnings) == 2
    assert "thumbnail" in warnings[0] and "made from the video" in warnings[0]
    assert "spritesheet" in warnings[1] and "has no spritesheet" in warnings[1]
    assert clip["thumbnail"]["mime"] == "image/webp" and clip["thumbnail"]["width"] == 480
    assert clip["spritesheet"] is None
    assert "downloaded" not in clip["details"]
    shown = run("show", clip["id"]).output
    assert shown.count("warning   the provider's") == 2
    assert "warning: the provider's thumbnail" in result.stderr


def test_extras_that_fail_to_download_become_warnings_and_the_clip_completes(
    home: Path, run, api, still_720p
):
    api.failing_variants.update({"thumbnail": 404, "spritesheet": 404})
    result = run("generate", still_720p, "-p", "a harbour", *SORA_ARGS, "--json")
    clip = json.loads(result.stdout)
    assert clip["status"] == "completed" and clip["video"]["mime"] == "video/mp4"
    warnings = clip["details"]["warnings"]
    assert len(warnings) == 2 and all("HTTP 404" in w for w in warnings), warnings
    assert "thumbnail" in warnings[0] and "made from the video" in warnings[0]
    assert "spritesheet" in warnings[1]
    assert clip["thumbnail"]["mime"] == "image/webp" and clip["spritesheet"] is None
    assert json.loads(run("jobs", "--json").stdout) == []
    assert run("show", clip["id"]).output.count("warning   the provider's") == 2


def test_resume_never_downloads_again_what_the_store_holds(
    home: Path, run, api, still_720p, monkeypatch
):
    with ctrl_c_while_cataloging("thumbnail", monkeypatch):
        run("generate", still_720p, "-p", "a harbour", *SORA_ARGS, expect=130)
    (job,) = json.loads(run("jobs", "--json").stdout)
    assert "completed" in run("resume").output
    shown = json.loads(run("show", job["id"], "--json").stdout)
    assert shown["status"] == "completed" and shown["thumbnail"] and shown["spritesheet"]
    videos = [
        r for r in api.requests
        if r.route == "/videos/{id}/content" and r.query.get("variant", "video") == "video"
    ]  # fmt: skip
    assert len(videos) == 1


def test_resume_catalogs_the_video_a_kill_left_stored_but_uncataloged(
    home: Path, run, still: Path, app: Reelvault, monkeypatch
):
    """A kill after the signed video is in the store but before the catalog knows it:
    the resumed finish catalogs that very file (a second signature would give other
    bytes and leave the first file orphaned)."""
    import core.generation.finish as finish_module

    real_ingest = finish_module.ingest
    stored: list[str] = []

    def killed_after_the_store_put(app_, path, kind, **options):
        if kind == "video" and not stored:
            stored.append(app_.store.put_file(path).sha256)
            raise KeyboardInterrupt  # no row for the file, as SIGKILL would leave it
        return real_ingest(app_, path, kind, **options)

    run("signing", "init")  # each signing gives other bytes
    monkeypatch.setattr(finish_module, "ingest", killed_after_the_store_put)
    run("generate", still, "-p", "pan right", expect=130)
    (job,) = json.loads(run("jobs", "--json").stdout)
    assert doctor(app).orphans == stored  # the window this test is about

    assert run("resume").output.strip().endswith("completed")
    clip = json.loads(run("show", job["id"], "--json").stdout)
    assert clip["status"] == "completed"
    assert "storing" not in clip["details"] and "downloaded" not in clip["details"]
    assert clip["video"]["sha256"] == stored[0]  # the same bytes, not a second signing
    assert doctor(app).orphans == []
    videos = [d for d in app.store.digests() if _is_video(app, d)]
    assert videos == stored  # one stored video: the first signing's


def _is_video(app: Reelvault, digest: str) -> bool:
    return app.store.local_path(digest).read_bytes()[4:8] == b"ftyp"


# -- (4) a full disk under the media store ----------------------------------------------


def test_full_disk_is_one_line_and_resume_goes_on_with_the_other_jobs(
    home: Path, run, still: Path, monkeypatch
):
    import errno

    from core.media.store import MediaStore

    make_clip(run, still)  # the still is stored; every new file fails from here on
    real_commit = MediaStore._commit
    failures = {"left": 1_000}

    def full_disk(self, tmp, sha256, size):
        if not self.path_for(sha256).exists() and failures["left"] > 0:
            failures["left"] -= 1
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_commit(self, tmp, sha256, size)

    monkeypatch.setattr(MediaStore, "_commit", full_disk)
    for prompt in ("zoom in", "pan left"):
        result = run("generate", still, "-p", prompt, expect=1)
        lines = result.output.strip().splitlines()
        assert lines == [
            f"Error: no space left on the device holding {home / 'media'}; free some space "
            "or fix the folder, then `reelvault resume`"
        ], result.output
    jobs = json.loads(run("jobs", "--json").stdout)
    assert len(jobs) == 2 and all(job["remote_job_id"] for job in jobs)

    failures["left"] = 1  # still full for the first job resumed, then space is freed
    resumed = run("resume", expect=1).output.strip().splitlines()
    assert "no space left on the device holding" in resumed[0]
    assert resumed[1].endswith("completed")
    assert "1 of 2 jobs did not complete" in resumed[-1]
    assert run("resume").output.strip().endswith("completed")
    assert json.loads(run("jobs", "--json").stdout) == []


def _generate_out_of_space(run, still: Path, monkeypatch, module: object, name: str) -> list[str]:
    """The output lines of a generate during which ``module.name`` finds its disk full;
    the catalog is made first, so the lines are the fault's alone."""
    import errno

    def no_space(*_args, **_kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    run("jobs")
    with monkeypatch.context() as patched:
        patched.setattr(module, name, no_space)
        result = run("generate", still, "-p", "pan right", expect=1)
    return result.output.strip().splitlines()


def test_a_full_work_folder_at_submit_is_one_line_and_retry_sends_it(
    home: Path, run, still: Path, monkeypatch
):
    """The local backend copies the still into its job folder before rendering: a full
    disk there is one line, and the row is failed as never sent, for `resume --retry`."""
    import plugins.local_backend as local_backend

    assert _generate_out_of_space(run, still, monkeypatch, local_backend, "write_atomic") == [
        f"Error: no space left on the device holding {home / 'work' / 'local'}; free some "
        "space or fix the folder, then `reelvault resume --retry`"
    ]
    (row,) = json.loads(run("list", "--json").stdout)
    assert row["status"] == "failed"
    assert not list((home / "work" / "local").iterdir())  # no half-made job folder
    assert "completed" in run("resume", "--retry").output
    assert json.loads(run("show", row["id"], "--json").stdout)["status"] == "completed"


def test_a_full_work_folder_while_rendering_leaves_the_job_resumable(
    home: Path, run, still: Path, monkeypatch
):
    """A render that cannot write its video fails the render, not the job: one line, the
    clip stays in flight, and `resume` renders it again once there is room."""
    import plugins.local_backend.jobs as local_jobs

    real_render = local_jobs.render_clip
    assert _generate_out_of_space(run, still, monkeypatch, local_jobs, "render_clip") == [
        f"Error: no space left on the device holding {home / 'work' / 'local'}; free some "
        "space or fix the folder, then `reelvault resume`"
    ]
    (job,) = json.loads(run("jobs", "--json").stdout)
    assert job["status"] == "in_progress" and job["remote_job_id"]
    assert local_jobs.render_clip is real_render
    assert run("resume").output.strip().endswith("completed")
    assert json.loads(run("show", job["id"], "--json").stdout)["status"] == "completed"


# -- (2) killed between writing the row and recording the job id --------------------------


def _generate_killed_at(run, monkeypatch, image: Path, target: object, name: str) -> dict:
    """The job a sora generate leaves in flight when it is interrupted (Ctrl-C, as a kill
    would stop it) on calling ``target.name``."""

    def killed(*_args, **_kwargs):
        raise KeyboardInterrupt

    with monkeypatch.context() as patched:
        patched.setattr(target, name, killed)
        run("generate", image, "-p", "a harbour", *SORA_ARGS, expect=130)
    (job,) = json.loads(run("jobs", "--json").stdout)
    return job


def _killed_after_the_create(run, monkeypatch, image: Path) -> str:
    """A generate whose create reached the provider but whose job id was never recorded."""
    import core.generation.run as run_module

    job = _generate_killed_at(run, monkeypatch, image, run_module, "_record_sent")
    assert job["status"] == "submitting" and job["remote_job_id"] is None
    return job["id"]


def test_resume_adopts_the_remote_job_a_kill_did_not_record(
    home, run, api, still_720p, monkeypatch
):
    clip = _killed_after_the_create(run, monkeypatch, still_720p)
    assert "completed" in run("resume").output
    assert api.count("POST", "/videos") == 1  # never created twice
    shown = json.loads(run("show", clip, "--json").stdout)
    assert shown["status"] == "completed" and shown["remote_job_id"]
    assert len(json.loads(run("list", "--json").stdout)) == 1


def test_resume_adopts_only_the_remote_job_that_matches_the_row(
    home, run, api, still_720p, monkeypatch, app
):
    """A listed job with another prompt (or made outside the window) is someone else's:
    never adopted, and the row is failed once the window has passed."""
    from datetime import timedelta

    from catalog.queries import get_generation

    clip = _killed_after_the_create(run, monkeypatch, still_720p)

    def change_row(**values: object) -> None:
        with app.session() as session:
            row = get_generation(session, clip)
            for name, value in values.items():
                setattr(row, name, value)
            session.add(row)

    with app.session() as session:
        created = get_generation(session, clip).created_at
    change_row(prompt="a harbour at night")
    assert "again later" in run("resume", expect=1).output  # not adopted: another prompt
    change_row(prompt="a harbour", created_at=created - timedelta(hours=1))
    assert "interrupted before submission" in run("resume", expect=1).output  # not in window
    assert api.count("POST", "/videos") == 1
    assert json.loads(run("show", clip, "--json").stdout)["remote_job_id"] is None


def test_sync_adopts_into_the_submitting_row_instead_of_importing_a_duplicate(
    home, run, api, still_720p, monkeypatch
):
    clip = _killed_after_the_create(run, monkeypatch, still_720p)
    synced = json.loads(run("sync", "--json").stdout)
    assert synced["imported"] == [] and [a["id"] for a in synced["adopted"]] == [clip]
    assert "completed" in run("resume").output
    assert len(json.loads(run("list", "--json").stdout)) == 1
    assert api.count("POST", "/videos") == 1


def test_a_create_that_never_left_fails_once_the_window_passes_and_retry_sends_it(
    home, run, api, still_720p, monkeypatch, app
):
    from datetime import timedelta

    from plugins.sora_backend import SoraBackend

    job = _generate_killed_at(run, monkeypatch, still_720p, SoraBackend, "submit")
    assert "again later" in run("resume", expect=1).output  # within the window: wait
    with app.session() as session:
        from catalog.queries import get_generation

        row = get_generation(session, job["id"])
        row.created_at = row.created_at - timedelta(hours=1)
        session.add(row)
    failed = run("resume", expect=1).output
    assert "interrupted before submission" in failed and "--retry" in failed
    assert json.loads(run("jobs", "--json").stdout) == []  # nothing left stuck
    assert api.count("POST", "/videos") == 0
    assert "completed" in run("resume", "--retry").output
    assert api.count("POST", "/videos") == 1
    assert json.loads(run("show", job["id"], "--json").stdout)["status"] == "completed"


def test_a_claim_is_given_up_only_for_a_holder_process_that_is_gone():
    import socket

    from core.generation.claim import holder_gone, holder_name

    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    assert holder_gone(f"finishing:{socket.gethostname()}:{ended.pid}:abc123")
    assert not holder_gone(holder_name("finishing"))  # this very process
    assert not holder_gone(f"finishing:another-host:{ended.pid}:abc123")  # cannot be checked
    assert not holder_gone("not a holder name") and not holder_gone(None)
