"""reelvault-fade: a complete third-party backend in one module, written to be read.

The backend "fade" has one model, "fade-1", that turns a still into a clip fading in
from black and then holding. It renders locally and synchronously, which keeps the
example free of network code while still following the job lifecycle the host expects:
everything a later process needs is on disk, so ``poll`` and ``download`` work for a
job submitted by a process that has since exited.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import BinaryIO

import av
import numpy as np
from PIL import Image, ImageOps

from core.api import (
    Backend,
    BackendError,
    DerivedRequest,
    GenerationRequest,
    JobState,
    JobStatus,
    ModelInfo,
    RequestError,
    Settings,
    Size,
    Variant,
    hookimpl,
)

FPS = 24
JOB_ID = re.compile(r"fade_[0-9a-f]{24}")
MODEL = ModelInfo(
    name="fade-1",
    seconds=tuple(range(2, 11)),
    sizes=("1280x720", "720x1280", "640x360"),  # canonical "WxH": the host compares strings
    default_seconds=4,
    default_size="1280x720",
    requires_input_image=True,
    fits_input_image=True,  # submit cover-crops the still to the size (ImageOps.fit)
    description="Fades the still in from black, then holds it.",
)


class FadeBackend:
    """Job ``<id>`` lives in ``work_dir/<id>/``; its ``job.json`` is written last, on success."""

    name = "fade"
    description = "Example backend: fade a still in from black (reelvault-fade)."

    def __init__(self, work_dir: Path) -> None:
        # Create nothing yet: backends are registered on every CLI run, even `--help`.
        self.work_dir = work_dir

    def models(self) -> Sequence[ModelInfo]:
        return [MODEL]

    def submit(self, request: GenerationRequest) -> JobStatus:
        """Render before returning; a job that is already terminal is a valid answer."""
        if request.input_image is None:  # the host checks this too, but don't rely on it
            raise RequestError("fade-1 needs an input image")
        fade = request.parameters.get("fade_seconds", 1)
        if not isinstance(fade, int | float) or not 0 < fade < request.seconds:
            raise RequestError(f"fade_seconds must be a number in (0, {request.seconds})")
        size = Size.parse(request.size)  # the user's "640X360" reaches us as typed
        still = _load_still(request.input_image, size)
        job_id = _job_id(request, size, still)
        job_dir = self.work_dir / job_id
        if not (job_dir / "job.json").exists():  # same inputs, same job: never redo work
            job_dir.mkdir(parents=True, exist_ok=True)
            _render(still, request.seconds * FPS, fade * FPS, job_dir / "video.mp4")
            details = {  # `reelvault show` prints "explanation" (a list of lines)
                "fade_seconds": fade,
                "explanation": [f"fade in from black over {fade:g}s", "then hold the still"],
            }
            tmp = job_dir / f"job.json.{os.getpid()}.tmp"
            tmp.write_text(json.dumps(details))
            os.replace(tmp, job_dir / "job.json")
        return self.poll(job_id)

    def poll(self, job_id: str) -> JobStatus:
        """Read the job back from disk, never from memory, so a fresh process can resume it."""
        job_dir = self._job_dir(job_id)
        if (job_dir / "job.json").exists():
            details = json.loads((job_dir / "job.json").read_text())
            return JobStatus(job_id, JobState.COMPLETED, progress=100, details=details)
        if job_dir.is_dir():  # a process died mid-render: that is a failure, not "unknown"
            message = "rendering was interrupted; submit the request again"
            return JobStatus(
                job_id, JobState.FAILED, error_code="interrupted", error_message=message
            )
        raise BackendError(f"fade has no job {job_id!r}", code="unknown_job")

    def download(self, job_id: str, variant: Variant, dest: BinaryIO) -> None:
        """Stream into ``dest`` (owned by the host, so not closed here)."""
        if variant is not Variant.VIDEO:
            raise BackendError(
                f"fade-1 offers only the video variant, not {variant}", code="unsupported_variant"
            )
        if self.poll(job_id).state is not JobState.COMPLETED:
            raise BackendError(f"fade job {job_id} has no video to download", code="not_ready")
        with (self._job_dir(job_id) / "video.mp4").open("rb") as src:
            shutil.copyfileobj(src, dest)  # chunked: a video never has to fit in memory

    def derive(self, request: DerivedRequest) -> JobStatus:
        raise BackendError("fade-1 does not support remix", code="unsupported_relation")

    def _job_dir(self, job_id: str) -> Path:
        """Job ids come back from the catalog; one must never name a path outside work_dir."""
        if not JOB_ID.fullmatch(job_id):
            raise BackendError(f"fade has no job {job_id!r}", code="unknown_job")
        return self.work_dir / job_id


@hookimpl
def register_backends(register: Callable[[Backend], None], settings: Settings) -> None:
    register(FadeBackend(settings.work_dir / FadeBackend.name))


def _load_still(path: Path, size: Size) -> Image.Image:
    """Cover-crop to ``size``; an unreadable image is the user's mistake, not a crash."""
    try:
        with Image.open(path) as img:  # exif_transpose keeps phone photos upright
            upright = ImageOps.exif_transpose(img).convert("RGB")
    except OSError as exc:  # includes missing files and PIL's UnidentifiedImageError
        raise RequestError(f"cannot read input image {path}: {exc}") from None
    return ImageOps.fit(upright, (size.width, size.height), Image.Resampling.LANCZOS)


def _job_id(request: GenerationRequest, size: Size, still: Image.Image) -> str:
    """Hash every input, so a retry of the same request finds the work already done."""
    inputs = [request.model, request.prompt, request.seconds, str(size)]
    key = json.dumps([*inputs, dict(request.parameters)], sort_keys=True, default=str)
    digest = hashlib.sha256(key.encode() + still.tobytes()).hexdigest()
    return f"fade_{digest[:24]}"


def _render(still: Image.Image, frames: int, fade_frames: float, dest: Path) -> None:
    """Encode to a temporary name and rename, so ``dest`` is whole or absent."""
    pixels = np.asarray(still, dtype=np.float32)
    tmp = dest.with_name(f"{dest.name}.{os.getpid()}.tmp")
    with av.open(str(tmp), mode="w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = still.width, still.height, "yuv420p"
        for index in range(frames):
            level = min(1.0, index / fade_frames)
            frame = av.VideoFrame.from_ndarray((pixels * level).astype(np.uint8), format="rgb24")
            container.mux(stream.encode(frame))
        container.mux(stream.encode())  # flush the frames the encoder still holds
    os.replace(tmp, dest)
