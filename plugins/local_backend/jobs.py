"""Job folders: the files a job keeps on disk and the background render that fills them.

Each job lives in ``work_dir/<job_id>/``: ``spec.json`` (everything needed to render), a
copy of the input still, and the outputs once complete, written under temporary names
and renamed into place. Kept apart from the backend so the on-disk contract (file names,
partial outputs, stale-writer detection) is in one place any process can rely on.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from core.api import (
    DISK_ERRNOS,
    BackendError,
    Size,
    StorageError,
    Variant,
    disk_error,
    process_ended,
    write_atomic,
)
from plugins.local_backend.motion import parse_motion
from plugins.local_backend.render import _frame_count, load_still, render_clip

SPEC = "spec.json"
ERROR = "error.json"
OUTPUTS = {Variant.VIDEO: "video.mp4", Variant.THUMBNAIL: "thumbnail.jpg"}
_JOB_ID = re.compile(r"local_[0-9a-f]{24}")


class _Render:
    """One background render of a job, counting frames so poll can report progress."""

    def __init__(self, job_dir: Path, spec: Mapping[str, Any]) -> None:
        self.total = _frame_count(spec["seconds"])
        self.done = 0
        self.disk_fault: StorageError | None = None
        """Set when the work folder could not take the render's files (disk full)."""
        # A daemon thread lets an interrupted CLI exit at once; the job resumes on the
        # next poll because its outputs never appeared.
        self._thread = threading.Thread(
            target=self._run, args=(job_dir, spec), name=job_dir.name, daemon=True
        )
        self._thread.start()

    @property
    def running(self) -> bool:
        return self._thread.is_alive()

    @property
    def progress(self) -> int:
        return min(99, 100 * self.done // self.total)

    def _run(self, job_dir: Path, spec: Mapping[str, Any]) -> None:
        """Render under temporary names, then rename: a job is done once both are in place."""
        video = _partial(job_dir / OUTPUTS[Variant.VIDEO])
        thumb = _partial(job_dir / OUTPUTS[Variant.THUMBNAIL])
        try:
            _remove_stale_partials(job_dir)
            plan = parse_motion(spec["prompt"], spec["seconds"])
            still = load_still(job_dir / spec["input"])
            render_clip(still, plan, Size.parse(spec["size"]), video, thumb, self._count)
            os.replace(thumb, job_dir / OUTPUTS[Variant.THUMBNAIL])
            os.replace(video, job_dir / OUTPUTS[Variant.VIDEO])
        except Exception as exc:  # a thread has no caller to raise to: record it for poll
            video.unlink(missing_ok=True)
            thumb.unlink(missing_ok=True)
            if isinstance(exc, OSError) and exc.errno in DISK_ERRNOS:
                # A full or read-only work folder fails this render, not the job: kept in
                # memory (there may be no room for an error file) for poll to report.
                self.disk_fault = disk_error(exc, job_dir.parent)
                return
            error = {"code": "render_failed", "message": f"{type(exc).__name__}: {exc}"}
            write_atomic(job_dir / ERROR, json.dumps(error).encode())

    def _count(self, done: int, _total: int) -> None:
        self.done = done


def _details(spec: Mapping[str, Any]) -> dict[str, Any]:
    plan = parse_motion(spec["prompt"], spec["seconds"])
    details: dict[str, Any] = {
        "motion_plan": plan.to_json(),
        "explanation": plan.explain(),
        "renderer": spec["renderer"],
    }
    if "parent_job_id" in spec:
        details["relation"] = spec["relation"]
        details["parent_job_id"] = spec["parent_job_id"]
    return details


def _is_complete(job_dir: Path) -> bool:
    return all((job_dir / name).is_file() for name in OUTPUTS.values())


def _read_spec(job_dir: Path) -> dict[str, Any]:
    try:
        return json.loads((job_dir / SPEC).read_text())
    except (OSError, ValueError) as exc:
        raise BackendError(f"job {job_dir.name} has an unreadable spec: {exc}") from None


def _read_error(job_dir: Path) -> tuple[str, str] | None:
    try:
        error = json.loads((job_dir / ERROR).read_text())
    except FileNotFoundError:
        return None
    return error["code"], error["message"]


_HOST = socket.gethostname().replace(".", "_")


def _partial(path: Path) -> Path:
    """A temporary name unique to this thread, so concurrent renders never share a file.

    The name says who writes it (host, process, thread), which is how a later render
    tells a crashed writer's leftovers from a live one's work in progress.
    """
    writer = f"{_HOST}-{os.getpid()}-{threading.get_ident()}"
    return path.with_name(f".{path.name}.{writer}.partial")


def _remove_stale_partials(job_dir: Path) -> None:
    """Drop temporaries whose writer is gone (a crashed render), never a live one's.

    Age says nothing: a render writes its thumbnail once, at mid-clip, and then leaves
    it untouched for as long as the rest of a long clip takes to encode.
    """
    for path in job_dir.glob(".*.partial"):
        if _writer_gone(path.name):
            with contextlib.suppress(FileNotFoundError):  # another render may clean up too
                path.unlink()


def _writer_gone(name: str) -> bool:
    """Whether the process (or, in this one, the thread) that names ``name`` has ended.

    A partial from another machine sharing the folder, or named some other way, is kept:
    nothing here can tell whether its writer still runs.
    """
    parts = name.removesuffix(".partial").rsplit(".", 1)[-1].rsplit("-", 2)
    if len(parts) != 3:
        return False
    host, pid_text, thread_text = parts
    if host != _HOST or not pid_text.isdigit() or not thread_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return int(thread_text) not in {t.ident for t in threading.enumerate()}
    return process_ended(pid)
