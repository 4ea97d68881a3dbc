"""The local backend end to end: real renders, decoded and measured.

Motion is checked on the pixels, not on the plan: phase correlation between the first
and last frames gives the content's shift, and a centre-crop search gives its scale.
"""

from __future__ import annotations

import hashlib
import io
import itertools
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import av
import numpy as np
import pluggy
import pytest
from PIL import Image

from core.api import hookspecs
from core.api.errors import BackendError, RequestError
from core.api.settings import Settings
from core.api.types import (
    Backend,
    DerivedRequest,
    GenerationRequest,
    JobState,
    JobStatus,
    Relation,
    Size,
    Variant,
)
from plugins import local_backend
from plugins.local_backend import (
    FPS,
    MODEL,
    PAN_DISTANCE,
    RENDERER,
    ZOOM_FACTOR,
    LocalBackend,
    load_still,
    parse_motion,
    render_clip,
)
from plugins.local_backend import jobs as local_jobs
from tests.conftest import REPO

SMALL = "640x360"


# --- helpers ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def still_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 4:3 still full of blobs and hard-edged squares, so motion is measurable."""
    rng = np.random.default_rng(7)
    coarse = Image.fromarray((rng.random((18, 24, 3)) * 255).astype(np.uint8))
    image = np.asarray(coarse.resize((960, 720), Image.Resampling.BICUBIC)).copy()
    for _ in range(60):
        x, y = rng.integers(0, 930), rng.integers(0, 690)
        s = rng.integers(8, 30)
        image[y : y + s, x : x + s] = rng.integers(0, 256, 3)
    path = tmp_path_factory.mktemp("still") / "still.png"
    Image.fromarray(image).save(path)
    return path


@pytest.fixture
def backend(tmp_path: Path) -> LocalBackend:
    return LocalBackend(tmp_path / "work" / "local")


def request(still: Path | None, prompt: str = "pan right", seconds: int = 1) -> GenerationRequest:
    return GenerationRequest(
        model=MODEL.name, prompt=prompt, seconds=seconds, size=SMALL, input_image=still
    )


def wait(backend: LocalBackend, job_id: str, timeout: float = 30.0) -> JobStatus:
    deadline = time.monotonic() + timeout
    while True:
        status = backend.poll(job_id)
        if status.state.is_terminal:
            return status
        assert time.monotonic() < deadline, f"{job_id} still {status.state}"
        time.sleep(status.poll_after or 0.05)


def download(backend: LocalBackend, job_id: str, variant: Variant) -> bytes:
    dest = io.BytesIO()
    backend.download(job_id, variant, dest)
    return dest.getvalue()


def gray_frames(video: bytes | Path) -> tuple[list[np.ndarray], av.VideoStream]:
    source = io.BytesIO(video) if isinstance(video, bytes) else str(video)
    with av.open(source) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="gray").astype(float) for f in container.decode(stream)]
    return frames, stream


def content_shift(before: np.ndarray, after: np.ndarray) -> tuple[float, float]:
    """(dx, dy) by which the picture content moved from ``before`` to ``after``."""
    window = np.outer(np.hanning(before.shape[0]), np.hanning(before.shape[1]))
    a = np.fft.fft2((before - before.mean()) * window)
    b = np.fft.fft2((after - after.mean()) * window)
    cross = b * np.conj(a)
    peak = np.fft.ifft2(cross / (np.abs(cross) + 1e-9)).real
    dy, dx = np.unravel_index(np.argmax(peak), peak.shape)
    h, w = peak.shape
    return float(dx - w if dx > w // 2 else dx), float(dy - h if dy > h // 2 else dy)


def best_scale(wide: np.ndarray, close: np.ndarray) -> float:
    """The magnification that best turns ``wide`` into ``close`` (centre crop + resize)."""
    h, w = wide.shape
    image = Image.fromarray(wide.astype(np.uint8))
    scores = {}
    for scale in np.arange(1.0, 1.61, 0.025):
        cw, ch = w / scale, h / scale
        box = ((w - cw) / 2, (h - ch) / 2, (w + cw) / 2, (h + ch) / 2)
        crop = np.asarray(image.resize((w, h), Image.Resampling.BICUBIC, box=box), float)
        scores[scale] = np.corrcoef(crop.ravel(), close.ravel())[0, 1]
    return float(max(scores, key=scores.__getitem__))


def render(still_path: Path, prompt: str, tmp_path: Path, seconds: int = 1) -> list[np.ndarray]:
    video, thumb = tmp_path / "clip.mp4", tmp_path / "thumb.jpg"
    plan = parse_motion(prompt, seconds)
    render_clip(load_still(still_path), plan, Size.parse(SMALL), video, thumb)
    return gray_frames(video)[0]


# --- registration and model -------------------------------------------------------------


def test_hook_registers_a_local_backend_in_the_work_dir(tmp_path: Path) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(local_backend)
    registered: list[Backend] = []
    settings = Settings(home=tmp_path, db_url="sqlite://")
    pm.hook.register_backends(register=registered.append, settings=settings)
    [backend] = registered
    assert isinstance(backend, LocalBackend) and isinstance(backend, Backend)
    assert backend.name == "local" and backend.description
    assert backend.work_dir == settings.work_dir / "local"


def test_model_offers_what_the_host_validates_against() -> None:
    [model] = LocalBackend(Path("unused")).models()
    assert model.name == "local-motion"
    assert model.seconds == tuple(range(1, 21))
    assert {"1280x720", "720x1280", "1920x1080", "1080x1080", "640x360"} <= set(model.sizes)
    assert (model.default_seconds, model.default_size) == (4, "1280x720")
    assert model.requires_input_image and model.supports_remix
    assert model.variants == (Variant.VIDEO, Variant.THUMBNAIL)
    model.validate(model.default_seconds, model.default_size)
    with pytest.raises(RequestError):
        model.validate(21, "1280x720")


# --- the rendered clip ------------------------------------------------------------------


def test_clip_is_h264_yuv420p_at_the_requested_size_and_frame_count(
    backend: LocalBackend, still_path: Path
) -> None:
    submitted = backend.submit(request(still_path, "pan left", seconds=2))
    assert submitted.state in (JobState.QUEUED, JobState.IN_PROGRESS)
    status = wait(backend, submitted.job_id)
    assert status.state == JobState.COMPLETED and status.progress == 100
    frames, stream = gray_frames(download(backend, status.job_id, Variant.VIDEO))
    assert stream.codec_context.name == "h264"
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert (stream.codec_context.width, stream.codec_context.height) == (640, 360)
    assert stream.average_rate == FPS
    assert len(frames) == 2 * FPS
    assert frames[0].shape == (360, 640)


def test_thumbnail_is_a_jpeg_of_the_clip(backend: LocalBackend, still_path: Path) -> None:
    job_id = backend.submit(request(still_path, "hold")).job_id
    wait(backend, job_id)
    data = download(backend, job_id, Variant.THUMBNAIL)
    with Image.open(io.BytesIO(data)) as thumb:
        assert thumb.format == "JPEG"
        assert thumb.size == (640, 360)
        pixels = np.asarray(thumb.convert("L"), float)
    # A static clip: the thumbnail is the same picture as any video frame.
    frames, _ = gray_frames(download(backend, job_id, Variant.VIDEO))
    assert np.corrcoef(pixels.ravel(), frames[0].ravel())[0, 1] > 0.95


def test_pan_right_moves_content_left(still_path: Path, tmp_path: Path) -> None:
    frames = render(still_path, "pan right", tmp_path)
    dx, dy = content_shift(frames[0], frames[-1])
    assert dx == pytest.approx(-PAN_DISTANCE * 640, abs=3)
    assert abs(dy) <= 1


def test_pan_left_moves_content_right(still_path: Path, tmp_path: Path) -> None:
    frames = render(still_path, "truck left", tmp_path)
    dx, _ = content_shift(frames[0], frames[-1])
    assert dx == pytest.approx(PAN_DISTANCE * 640, abs=3)


def test_tilt_up_moves_content_down(still_path: Path, tmp_path: Path) -> None:
    frames = render(still_path, "tilt up", tmp_path)
    dx, dy = content_shift(frames[0], frames[-1])
    assert dy == pytest.approx(PAN_DISTANCE * 360, abs=3)
    assert abs(dx) <= 1


def test_motion_is_smooth_and_eased(still_path: Path, tmp_path: Path) -> None:
    frames = render(still_path, "pan right", tmp_path)
    travelled = [-content_shift(frames[0], frame)[0] for frame in frames]
    assert all(b >= a - 1 for a, b in itertools.pairwise(travelled))
    total = PAN_DISTANCE * 640
    # Smoothstep easing: 16% of the way at a quarter, half at half, 84% at three quarters
    # (a linear pan would be at 25% and 75%).
    last = len(frames) - 1
    for fraction, expected in ((0.25, 0.156), (0.5, 0.5), (0.75, 0.844)):
        assert travelled[round(last * fraction)] == pytest.approx(expected * total, abs=3)


def test_push_in_magnifies_the_centre(still_path: Path, tmp_path: Path) -> None:
    frames = render(still_path, "push in", tmp_path)
    assert best_scale(frames[0], frames[-1]) == pytest.approx(ZOOM_FACTOR, abs=0.03)


def test_pull_out_shrinks_the_picture(still_path: Path, tmp_path: Path) -> None:
    frames = render(still_path, "pull back", tmp_path)
    # Reversed: the first frame is the last one magnified.
    assert best_scale(frames[-1], frames[0]) == pytest.approx(ZOOM_FACTOR, abs=0.03)


def test_same_inputs_give_byte_identical_files(still_path: Path, tmp_path: Path) -> None:
    req = request(still_path, "push in, then pan left")
    first, second = LocalBackend(tmp_path / "a"), LocalBackend(tmp_path / "b")
    job_a, job_b = first.submit(req).job_id, second.submit(req).job_id
    assert job_a == job_b and job_a.startswith("local_")
    wait(first, job_a)
    wait(second, job_b)
    for variant in (Variant.VIDEO, Variant.THUMBNAIL):
        assert download(first, job_a, variant) == download(second, job_b, variant)
    with av.open(io.BytesIO(download(first, job_a, Variant.VIDEO))) as container:
        assert "creation_time" not in container.metadata


def test_job_id_depends_on_every_input(backend: LocalBackend, still_path: Path) -> None:
    base = request(still_path)
    variants = [
        base,
        request(still_path, "pan left"),
        request(still_path, seconds=2),
        GenerationRequest(MODEL.name, "pan right", 1, "360x640", still_path),
        GenerationRequest(MODEL.name, "pan right", 1, SMALL, still_path, {"seed": 1}),
    ]
    ids = [backend.submit(r).job_id for r in variants]
    assert len(set(ids)) == len(ids)
    assert backend.submit(base).job_id == ids[0]
    for job_id in ids:
        wait(backend, job_id)


# --- lifecycle --------------------------------------------------------------------------


def test_status_carries_plan_explanation_and_renderer(
    backend: LocalBackend, still_path: Path
) -> None:
    status = wait(backend, backend.submit(request(still_path, "2s push-in", seconds=3)).job_id)
    assert status.details["renderer"] == RENDERER
    assert [s["moves"] for s in status.details["motion_plan"]] == [["push_in"], ["hold"]]
    explanation = status.details["explanation"]
    assert explanation[0].startswith("0.0–2.0s push in ×1.25 (ease in-out)")
    assert any("holding" in line for line in explanation)


def test_poll_reports_real_progress(backend: LocalBackend, still_path: Path) -> None:
    job_id = backend.submit(request(still_path, "pan right", seconds=6)).job_id
    seen = []
    while (status := backend.poll(job_id)).state != JobState.COMPLETED:
        assert status.state == JobState.IN_PROGRESS and status.poll_after == pytest.approx(0.1)
        seen.append(status.progress)
        time.sleep(0.005)
    assert seen == sorted(seen)
    assert any(0 < p < 100 for p in seen)


def test_fresh_instance_resumes_an_interrupted_job(still_path: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    first = LocalBackend(work)
    job_id = first.submit(request(still_path, "tilt down")).job_id
    wait(first, job_id)
    original = download(first, job_id, Variant.VIDEO)
    # Simulate a crash mid-render: outputs never renamed into place, a temp file left.
    for name in ("video.mp4", "thumbnail.jpg"):
        (work / job_id / name).unlink()
    (work / job_id / ".video.mp4.999-1.partial").write_bytes(original[:1000])

    resumed = LocalBackend(work)  # as a new process would construct it
    status = resumed.poll(job_id)
    assert status.state == JobState.IN_PROGRESS
    with pytest.raises(BackendError):
        download(resumed, job_id, Variant.VIDEO)
    assert wait(resumed, job_id).state == JobState.COMPLETED
    assert download(LocalBackend(work), job_id, Variant.VIDEO) == original


def test_render_failure_is_reported_and_remembered(backend: LocalBackend, still_path: Path) -> None:
    job_id = backend.submit(request(still_path, "hold")).job_id
    wait(backend, job_id)
    job_dir = backend.work_dir / job_id
    for name in ("video.mp4", "thumbnail.jpg"):
        (job_dir / name).unlink()
    next(job_dir.glob("input.*")).write_bytes(b"not an image any more")

    status = wait(LocalBackend(backend.work_dir), job_id)
    assert status.state == JobState.FAILED
    assert status.error_code == "render_failed" and status.error_message
    later = LocalBackend(backend.work_dir).poll(job_id)  # failure survives a restart
    assert (later.state, later.error_code) == (JobState.FAILED, "render_failed")
    with pytest.raises(BackendError):
        download(backend, job_id, Variant.VIDEO)
    assert not list(job_dir.glob("*.mp4")) and not list(job_dir.glob(".*.partial"))


@pytest.mark.parametrize("job_id", ["local_" + "0" * 24, "../../etc", "local_XYZ"])
def test_unknown_job_ids_are_backend_errors(backend: LocalBackend, job_id: str) -> None:
    with pytest.raises(BackendError):
        backend.poll(job_id)
    with pytest.raises(BackendError):
        download(backend, job_id, Variant.VIDEO)


def test_unsupported_variant_is_a_backend_error(backend: LocalBackend, still_path: Path) -> None:
    job_id = backend.submit(request(still_path, "hold")).job_id
    wait(backend, job_id)
    with pytest.raises(BackendError, match="spritesheet"):
        download(backend, job_id, Variant.SPRITESHEET)


def test_bad_requests_are_refused_before_any_job_exists(
    backend: LocalBackend, still_path: Path, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8 definitely not a jpeg")
    bad = [
        request(None),
        request(broken),
        request(tmp_path / "missing.png"),
        GenerationRequest("sora-2", "pan right", 1, SMALL, still_path),
        GenerationRequest(MODEL.name, "pan right", 1, "800x600", still_path),
        GenerationRequest(MODEL.name, "pan right", 30, SMALL, still_path),
    ]
    for req in bad:
        with pytest.raises(RequestError):
            backend.submit(req)
    assert not backend.work_dir.exists()


# --- remix ------------------------------------------------------------------------------


def remix(
    parent: str, still: Path | None, relation: Relation = Relation.REMIX_OF
) -> DerivedRequest:
    return DerivedRequest(
        relation=relation,
        parent_job_id=parent,
        prompt="tilt up",
        model=MODEL.name,
        seconds=1,
        size=SMALL,
        parent_input_image=still,
    )


def test_remix_rerenders_the_source_with_the_new_prompt(
    backend: LocalBackend, still_path: Path
) -> None:
    parent = backend.submit(request(still_path, "pan right")).job_id
    wait(backend, parent)
    child = backend.derive(remix(parent, still_path))
    status = wait(backend, child.job_id)
    assert child.job_id != parent and status.state == JobState.COMPLETED
    assert status.details["parent_job_id"] == parent
    assert status.details["relation"] == "remix_of"
    assert [s["moves"] for s in status.details["motion_plan"]] == [["tilt_up"]]
    frames, _ = gray_frames(download(backend, child.job_id, Variant.VIDEO))
    dx, dy = content_shift(frames[0], frames[-1])
    assert dy > 40 and abs(dx) <= 1  # the remix tilts; the parent panned
    # The parent's record is untouched by its child.
    assert "parent_job_id" not in backend.poll(parent).details


@pytest.mark.parametrize("relation", [Relation.EDIT_OF, Relation.EXTENSION_OF])
def test_only_remix_is_supported(
    backend: LocalBackend, still_path: Path, relation: Relation
) -> None:
    with pytest.raises(BackendError, match="only remix"):
        backend.derive(remix("local_" + "1" * 24, still_path, relation))


def test_remix_without_the_source_still_is_a_backend_error(backend: LocalBackend) -> None:
    with pytest.raises(BackendError, match="source still"):
        backend.derive(remix("local_" + "1" * 24, None))


def test_large_stills_render_at_the_requested_size(tmp_path: Path) -> None:
    """A big still is shrunk once up front; frames still come out at the output size."""
    big = tmp_path / "big.jpg"
    gradient = np.linspace(0, 255, 3000, dtype=np.uint8)
    Image.fromarray(np.tile(gradient, (2000, 1))).convert("RGB").save(big)
    digest = hashlib.sha256(big.read_bytes()).hexdigest()
    frames = render(big, "pull out", tmp_path)
    assert frames[0].shape == (360, 640)
    assert hashlib.sha256(big.read_bytes()).hexdigest() == digest  # input left untouched


WRITER = """
import sys, time
from pathlib import Path
from plugins.local_backend.jobs import _partial
partial = _partial(Path(sys.argv[1]) / "thumbnail.jpg")
partial.write_bytes(b"half a render")
print(partial, flush=True)
time.sleep(float(sys.argv[2]))
"""


def partial_from_process(job_dir: Path, lives_for: float) -> tuple[subprocess.Popen, Path]:
    """A render's temporary file written by another process, which then lives on (or not)."""
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(job_dir), str(lives_for)],
        cwd=REPO, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    assert writer.stdout is not None
    return writer, Path(writer.stdout.readline().strip())


def test_cleanup_removes_partials_of_dead_writers_only_however_old(tmp_path: Path) -> None:
    """Another process's live render wrote its thumbnail at mid-clip long ago; a render of
    the same job starting now must not delete it (the old one would fail at the end)."""
    job_dir = tmp_path / "local_job"
    job_dir.mkdir()
    live, live_partial = partial_from_process(job_dir, lives_for=60)
    dead, dead_partial = partial_from_process(job_dir, lives_for=0)
    dead.wait(30)
    finished_thread: list[Path] = []
    name_it = local_jobs._partial  # named by whichever thread calls it
    helper = threading.Thread(target=lambda: finished_thread.append(name_it(job_dir / "v.mp4")))
    helper.start()
    helper.join()
    finished_thread[0].write_bytes(b"left by a thread that is gone")
    ours = local_jobs._partial(job_dir / "video.mp4")
    ours.write_bytes(b"this thread's own work")
    foreign = job_dir / ".video.mp4.otherhost-1-2.partial"  # another machine's: unknowable
    foreign.write_bytes(b"?")
    an_hour_ago = time.time() - 3600
    for path in (live_partial, dead_partial, finished_thread[0], ours, foreign):
        os.utime(path, (an_hour_ago, an_hour_ago))
    try:
        local_jobs._remove_stale_partials(job_dir)
        assert live_partial.exists() and ours.exists() and foreign.exists()
        assert not dead_partial.exists() and not finished_thread[0].exists()
    finally:
        live.kill()
        live.wait(30)
    local_jobs._remove_stale_partials(job_dir)
    assert not live_partial.exists()  # its writer is gone now
