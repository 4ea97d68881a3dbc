"""Unit tests of the example third-party plugin in docs/examples/reelvault-fade.

They call the plugin directly, as docs/plugins.md tells plugin authors to, so they pin
both the example's behaviour and the advice. The plugin is imported from its source
folder rather than installed, which is also how an author tests before packaging.
"""

from __future__ import annotations

import dataclasses
import importlib
import io
import itertools
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

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
    Relation,
    Variant,
)

EXAMPLE_DIR = Path(__file__).resolve().parents[1] / "docs" / "examples" / "reelvault-fade"
SIZE = "640x360"  # the smallest size fade-1 allows keeps every render well under a second
SECONDS = 2


@pytest.fixture(scope="module")
def fade() -> Iterator[ModuleType]:
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(EXAMPLE_DIR))
        yield importlib.import_module("reelvault_fade")


def make_backend(fade: ModuleType, home: Path) -> Backend:
    """A brand-new backend, as a fresh process would get it from the host."""
    registered: list[Backend] = []
    fade.register_backends(register=registered.append, settings=Settings.load(home=home))
    assert len(registered) == 1
    return registered[0]


def make_photo(path: Path, width: int = 320, height: int = 240) -> Path:
    """A bright gradient, so "faded in" and "still black" are easy to tell apart."""
    ramp = np.linspace(150, 250, width, dtype=np.uint8)
    pixels = np.stack([np.tile(ramp, (height, 1))] * 3, axis=-1)
    Image.fromarray(pixels, "RGB").save(path)
    return path


def request(photo: Path | None, **changes: object) -> GenerationRequest:
    base = GenerationRequest(
        model="fade-1", prompt="a slow reveal", seconds=SECONDS, size=SIZE, input_image=photo
    )
    return dataclasses.replace(base, **changes)


def decode(data: bytes) -> tuple[av.video.stream.VideoStream, list[np.ndarray]]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        frames = [frame.to_ndarray(format="rgb24") for frame in container.decode(stream)]
    return stream, frames


@pytest.fixture(scope="module")
def rendered(fade: ModuleType, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """One render shared by the read-only tests: (home, job id)."""
    home = tmp_path_factory.mktemp("home")
    status = make_backend(fade, home).submit(request(make_photo(home / "photo.png")))
    assert status.state is JobState.COMPLETED
    return home, status.job_id


def test_registers_one_backend_describing_fade_1(fade: ModuleType, tmp_path: Path) -> None:
    backend = make_backend(fade, tmp_path)
    assert isinstance(backend, Backend)
    assert backend.name == "fade"
    (model,) = backend.models()
    assert model.name == "fade-1"
    assert model.requires_input_image and not model.supports_remix
    assert model.variants == (Variant.VIDEO,)
    assert model.default_seconds in model.seconds and model.default_size in model.sizes
    model.validate(3, "640x360")
    with pytest.raises(RequestError, match="allowed"):
        model.validate(1, "640x360")
    with pytest.raises(RequestError, match="allowed"):
        model.validate(3, "100x100")
    assert not (tmp_path / "work").exists(), "registering must not touch the disk"


def test_hookimpl_matches_the_hookspec(fade: ModuleType, tmp_path: Path) -> None:
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(fade, name="fade")  # raises if the signature does not fit the spec
    registered: list[Backend] = []
    pm.hook.register_backends(register=registered.append, settings=Settings.load(home=tmp_path))
    assert [backend.name for backend in registered] == ["fade"]


def test_submit_renders_a_real_fade(fade: ModuleType, rendered: tuple[Path, str]) -> None:
    home, job_id = rendered
    backend = make_backend(fade, home)
    status = backend.poll(job_id)
    assert status.state is JobState.COMPLETED and status.progress == 100
    assert status.job_id.startswith("fade_")
    assert status.details["fade_seconds"] == 1
    assert all(isinstance(line, str) for line in status.details["explanation"])

    out = io.BytesIO()
    backend.download(job_id, Variant.VIDEO, out)
    stream, frames = decode(out.getvalue())
    assert stream.codec_context.name == "h264"
    assert stream.codec_context.pix_fmt == "yuv420p"
    assert (stream.width, stream.height) == (640, 360)
    assert stream.average_rate == 24
    assert len(frames) == SECONDS * 24

    brightness = [float(frame.mean()) for frame in frames]
    assert brightness[0] < 5, "the clip starts black"
    assert brightness[-1] > 180, "and ends on the (bright) still"
    fade_in = brightness[:24]
    assert all(a <= b + 1 for a, b in itertools.pairwise(fade_in))
    assert abs(brightness[24] - brightness[-1]) < 2, "after the fade it holds"


def test_job_folder_holds_only_finished_files(rendered: tuple[Path, str]) -> None:
    home, job_id = rendered
    files = sorted(p.name for p in (home / "work" / "fade" / job_id).iterdir())
    assert files == ["job.json", "video.mp4"], "temporary files must be renamed, not left"


def test_a_new_backend_instance_can_poll_and_download(fade: ModuleType, tmp_path: Path) -> None:
    first = make_backend(fade, tmp_path)
    job_id = first.submit(request(make_photo(tmp_path / "photo.png"))).job_id
    del first  # nothing may survive in memory: the host resumes jobs in a new process

    second = make_backend(fade, tmp_path)
    assert second.poll(job_id).state is JobState.COMPLETED
    with (tmp_path / "clip.mp4").open("wb") as dest:
        second.download(job_id, Variant.VIDEO, dest)
    assert len(decode((tmp_path / "clip.mp4").read_bytes())[1]) == SECONDS * 24


def test_same_inputs_same_job_and_different_inputs_new_job(
    fade: ModuleType, rendered: tuple[Path, str]
) -> None:
    home, job_id = rendered
    backend = make_backend(fade, home)
    video = home / "work" / "fade" / job_id / "video.mp4"
    before = video.stat().st_mtime_ns
    assert backend.submit(request(home / "photo.png")).job_id == job_id
    assert video.stat().st_mtime_ns == before, "a repeated request reuses the finished job"
    other = backend.submit(request(home / "photo.png", prompt="another prompt"))
    assert other.job_id != job_id
    assert backend.submit(request(home / "photo.png", size="640X360")).job_id == job_id


def test_cover_crop_fills_the_frame(fade: ModuleType, tmp_path: Path) -> None:
    # A square photo with a blue band along its top: filling 16:9 crops top and bottom.
    pixels = np.full((200, 200, 3), 240, dtype=np.uint8)
    pixels[:30] = (0, 0, 255)
    Image.fromarray(pixels, "RGB").save(tmp_path / "square.png")
    backend = make_backend(fade, tmp_path)
    job_id = backend.submit(request(tmp_path / "square.png")).job_id
    out = io.BytesIO()
    backend.download(job_id, Variant.VIDEO, out)
    last = decode(out.getvalue())[1][-1]
    assert last.shape == (360, 640, 3)
    assert last[:, :, 0].min() > 180, "no blue band and no letterbox bars survive"


def test_interrupted_job_is_failed_then_resubmittable(fade: ModuleType, tmp_path: Path) -> None:
    backend = make_backend(fade, tmp_path)
    req = request(make_photo(tmp_path / "photo.png"))
    job_id = backend.submit(req).job_id
    (tmp_path / "work" / "fade" / job_id / "job.json").unlink()  # as if killed mid-render

    status = make_backend(fade, tmp_path).poll(job_id)
    assert status.state is JobState.FAILED and status.error_code == "interrupted"
    assert backend.submit(req).state is JobState.COMPLETED


@pytest.mark.parametrize("job_id", ["fade_" + "0" * 24, "nope", "../../etc/passwd"])
def test_unknown_job_raises_backend_error(
    fade: ModuleType, rendered: tuple[Path, str], job_id: str
) -> None:
    backend = make_backend(fade, rendered[0])
    with pytest.raises(BackendError) as info:
        backend.poll(job_id)
    assert info.value.code == "unknown_job"
    with pytest.raises(BackendError):
        backend.download(job_id, Variant.VIDEO, io.BytesIO())


@pytest.mark.parametrize("variant", [Variant.THUMBNAIL, Variant.SPRITESHEET])
def test_only_the_video_variant_downloads(
    fade: ModuleType, rendered: tuple[Path, str], variant: Variant
) -> None:
    home, job_id = rendered
    with pytest.raises(BackendError, match="only the video"):
        make_backend(fade, home).download(job_id, variant, io.BytesIO())


def test_derive_is_refused(fade: ModuleType, rendered: tuple[Path, str]) -> None:
    home, job_id = rendered
    derived = DerivedRequest(
        relation=Relation.REMIX_OF,
        parent_job_id=job_id,
        prompt="brighter",
        model="fade-1",
        seconds=SECONDS,
        size=SIZE,
    )
    with pytest.raises(BackendError, match="fade-1 does not support remix"):
        make_backend(fade, home).derive(derived)


@pytest.mark.parametrize(
    ("photo", "overrides", "message"),
    [
        (None, {}, "needs an input image"),
        ("missing.png", {}, "cannot read input image"),
        ("not-an-image.png", {}, "cannot read input image"),
        ("photo.png", {"parameters": {"fade_seconds": SECONDS}}, "fade_seconds"),
        ("photo.png", {"parameters": {"fade_seconds": "slow"}}, "fade_seconds"),
    ],
)
def test_bad_requests_are_request_errors(
    fade: ModuleType,
    tmp_path: Path,
    photo: str | None,
    overrides: dict[str, object],
    message: str,
) -> None:
    make_photo(tmp_path / "photo.png")
    (tmp_path / "not-an-image.png").write_text("hello")
    backend = make_backend(fade, tmp_path)
    with pytest.raises(RequestError, match=message):
        backend.submit(request(tmp_path / photo if photo else None, **overrides))
    assert not (tmp_path / "work").exists(), "a refused request leaves nothing behind"


def test_fade_seconds_parameter_changes_the_fade(fade: ModuleType, tmp_path: Path) -> None:
    backend = make_backend(fade, tmp_path)
    req = request(make_photo(tmp_path / "photo.png"), parameters={"fade_seconds": 0.5})
    status = backend.submit(req)
    assert status.details["fade_seconds"] == 0.5
    out = io.BytesIO()
    backend.download(status.job_id, Variant.VIDEO, out)
    brightness = [float(frame.mean()) for frame in decode(out.getvalue())[1]]
    assert brightness[0] < 5
    assert abs(brightness[12] - brightness[-1]) < 2, "a half-second fade is done by frame 12"
