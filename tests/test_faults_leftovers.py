"""What an interrupted job leaves in the work folder and the catalog, and the command
that clears it (issue 10, case 10)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests import sora_support
from tests.fault_support import ctrl_c_while_cataloging, make_clip

api = sora_support.api


# -- (10) leftovers in the work folder ----------------------------------------------------


def _work_files(home: Path) -> list[Path]:
    work = home / "work"
    return sorted(p for p in work.rglob("*") if p.is_file()) if work.exists() else []


def test_a_finished_job_leaves_nothing_in_the_work_folder(home: Path, run, still: Path):
    run("signing", "init")  # the signer's copy passes through the work folder too
    make_clip(run, still)
    assert _work_files(home) == []


def test_ctrl_c_says_how_to_finish_and_resume_cleans_what_a_kill_left(
    home: Path, run, still: Path, monkeypatch
):
    with ctrl_c_while_cataloging("video", monkeypatch):
        result = run("generate", still, "-p", "pan right", expect=130)
    assert result.output.strip().splitlines()[-1] == (
        "interrupted: the job was not cancelled and nothing is lost; "
        "run `reelvault resume` to finish it"
    )
    killed = home / "work" / "incoming" / "clip_x-video-abcdef"  # what SIGKILL leaves
    killed.write_bytes(b"partial download")
    dead_job = home / "work" / "local" / "local_ffffffffffffffffffffffff"
    dead_job.mkdir()
    (dead_job / "video.mp4").write_bytes(b"unsigned")
    old = time.time() - 7200
    for path in (killed, dead_job / "video.mp4", dead_job):
        os.utime(path, (old, old))
    assert run("resume").output.strip().endswith("completed")
    assert _work_files(home) == []


def _generate_in_a_process(still: Path, patch: str) -> subprocess.CompletedProcess[str]:
    """``generate`` in a process of its own, after running ``patch`` (Python that may use
    ``os`` and ``request``, the module :mod:`core.generation.request`)."""
    script = (
        "import os, sys\n"
        "import core.generation.request as request\n"
        f"{patch}\n"
        "from core.cli import main\n"
        "sys.argv = ['reelvault', *sys.argv[1:]]\n"
        "main()\n"
    )
    return subprocess.run(
        [sys.executable, "-c", script, "generate", str(still), "-p", "pan right"],
        capture_output=True,
        text=True,
        timeout=120,
    )


def _killed_before_the_row(home: Path, still: Path) -> subprocess.CompletedProcess[str]:
    """A real ``generate`` process that dies (as by SIGKILL: no handler, no cleanup) right
    after its still is cataloged, at the moment it would write the clip's row."""
    return _generate_in_a_process(
        still, "request.add_generation = lambda *args, **kwargs: os._exit(137)"
    )


def _asset_ids(run) -> set[str]:
    return {row["id"] for row in json.loads(run("assets", "--json").stdout)}


def test_a_kill_before_the_clips_row_leaves_no_still_that_resume_does_not_clear(
    home: Path, run, still: Path
):
    """The still a killed request cataloged, with no clip made from it, is what ``resume``
    clears (recorded as a removal); a still that a clip uses by then is kept."""
    assert _killed_before_the_row(home, still).returncode == 137
    left = _asset_ids(run)
    assert len(left) == 1 and next(iter(left)).startswith("img_")
    assert json.loads(run("list", "--json").stdout) == []
    (note,) = (home / "work" / "requests").iterdir()

    result = run("resume")
    assert _asset_ids(run) == set()
    assert not note.exists()
    for asset in left:
        assert f"removed {asset}" in result.stderr
    assert json.loads(run("audit", "--json").stdout)["clean"]

    # Killed again, and meanwhile a clip is made from the same still: it stays.
    assert _killed_before_the_row(home, still).returncode == 137
    clip = make_clip(run, still)
    source = json.loads(run("show", clip, "--json").stdout)["source"]["id"]
    assert {source} == left
    result = run("resume")
    assert source in _asset_ids(run)
    assert "removed" not in result.stderr
    assert not list((home / "work" / "requests").iterdir())


def test_doctor_reports_a_killed_requests_stills_and_fix_removes_them(home: Path, run, still: Path):
    assert _killed_before_the_row(home, still).returncode == 137
    left = _asset_ids(run)
    report = json.loads(run("doctor", "--json", expect=1).stdout)
    assert sorted(report["abandoned"]) == sorted(left) and not report["healthy"]
    assert _asset_ids(run) == left  # reported only
    fixed = run("doctor", "--fix")
    assert "stills of killed requests: 1" in fixed.stdout and "removed" in fixed.stdout
    assert _asset_ids(run) == set()
    after = json.loads(run("doctor", "--json").stdout)  # healthy: exit 0
    assert after["abandoned"] == [] and after["orphans"] == []
    assert len(after["removed_files"]) == 1  # the still's file, for gc: not an orphan


def test_a_request_that_fails_before_its_row_removes_the_still_it_cataloged(
    home: Path, run, still: Path, monkeypatch: pytest.MonkeyPatch
):
    """Ctrl-C (or any error) after the still is cataloged but before the row: a still the
    request added goes again at once; one that was in the library before stays."""
    import core.generation.request as request_module

    def interrupted(*_args, **_kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(request_module, "run_checks", interrupted)
    run("generate", still, "-p", "pan right", expect=130)
    assert _asset_ids(run) == set()
    assert not list((home / "work" / "requests").iterdir())

    run("import", still)
    imported = _asset_ids(run)
    run("generate", still, "-p", "pan right", expect=130)
    assert _asset_ids(run) == imported  # there before the request: not the request's to remove


def test_a_failed_cleanup_keeps_the_note_and_reports_the_first_error(home: Path, run, still: Path):
    """Ctrl-C before the row while the catalog cannot take the removal either: the user
    sees the interruption, not the cleanup's error, and the note stays for `resume`."""
    patch = (
        "import core.library.notes as notes\n"
        "from core.api.errors import CatalogError\n"
        "def interrupted(*args, **kwargs): raise KeyboardInterrupt\n"
        "def unreachable(*args, **kwargs): raise CatalogError('the catalog cannot be reached')\n"
        "request.run_checks = interrupted\n"
        "notes.plan_removal = unreachable"
    )
    result = _generate_in_a_process(still, patch)
    assert result.returncode == 130 and "cannot be reached" not in result.stderr
    (note,) = (home / "work" / "requests").iterdir()
    assert len(_asset_ids(run)) == 1
    assert "removed img_" in run("resume").stderr
    assert _asset_ids(run) == set() and not note.exists()
