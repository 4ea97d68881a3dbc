"""Rendering: a motion plan drawn as a moving crop over a still, encoded to H.264 MP4.

Kept apart because it is the only part that needs the imaging libraries (Pillow, OpenCV,
PyAV), loaded when a clip is rendered rather than at start-up, and because everything
that decides the output bytes lives here: a change in this module is a change of
``RENDERER``.
"""

from __future__ import annotations

import contextlib
import math
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.api import Size

if TYPE_CHECKING:  # the imaging libraries load when a clip is rendered, not at start-up
    import numpy as np
    from PIL import Image

    from plugins.local_backend.motion import Camera, MotionPlan

FPS = 24

THUMBNAIL_MAX = 640

# x264 is deterministic for a fixed thread count; "auto" threads would make the bytes
# depend on the machine's core count, so the count is pinned (to two, the cores of a
# small machine; more cores are used anyway, as the frames are drawn on another thread).
ENCODER_THREADS = 2
X264_OPTIONS = {"preset": "veryfast", "crf": "20"}
# bitexact keeps library version strings out of the container; faststart puts the index
# first so players can start before the whole file arrives.
MUX_OPTIONS = {"movflags": "+faststart", "fflags": "+bitexact"}


@dataclass(frozen=True)
class _Framing:
    """Maps camera states to crop boxes in an image's pixels."""

    origin_x: float
    origin_y: float
    view_w: float
    view_h: float

    def box(self, camera: Camera, bounds: tuple[int, int]) -> tuple[float, float, float, float]:
        cx = self.origin_x + camera.x * self.view_w
        cy = self.origin_y + camera.y * self.view_h
        hw, hh = self.view_w / (2 * camera.zoom), self.view_h / (2 * camera.zoom)
        return _clamp((cx - hw, cy - hh, cx + hw, cy + hh), bounds)


def _clamp(
    box: tuple[float, float, float, float], bounds: tuple[int, int]
) -> tuple[float, float, float, float]:
    """Absorb float error only: the framing already keeps every view inside the image."""
    return (
        max(box[0], 0.0),
        max(box[1], 0.0),
        min(box[2], float(bounds[0])),
        min(box[3], float(bounds[1])),
    )


def _frame_path(
    plan: MotionPlan, still_size: tuple[int, int], out: Size
) -> tuple[_Framing, tuple[float, float, float, float]]:
    """Fit the whole camera path, centred, into the largest crop of the still it allows.

    This is the overscan: a static shot uses the full cover crop, while a pan or a
    pull-out starts from a tighter view so the move never runs off the picture. Returns
    the framing and the box (in still pixels) that every view stays inside.
    """
    aspect = out.width / out.height
    cams = list(plan.cameras())
    left = min(c.x - 0.5 / c.zoom for c in cams)
    right = max(c.x + 0.5 / c.zoom for c in cams)
    top = min(c.y - 0.5 / c.zoom for c in cams)
    bottom = max(c.y + 0.5 / c.zoom for c in cams)
    width, height = still_size
    view_w = min(width / (right - left), height * aspect / (bottom - top))
    view_h = view_w / aspect
    origin_x = width / 2 - (left + right) / 2 * view_w
    origin_y = height / 2 - (top + bottom) / 2 * view_h
    framing = _Framing(origin_x, origin_y, view_w, view_h)
    union = (
        origin_x + left * view_w,
        origin_y + top * view_h,
        origin_x + right * view_w,
        origin_y + bottom * view_h,
    )
    return framing, _clamp(union, still_size)


def _prepare(still: Image.Image, plan: MotionPlan, out: Size) -> tuple[np.ndarray, _Framing]:
    """Shrink a large still once, up front, to the detail the closest view needs, and hand
    it over as an array for the per-frame warps.

    Resampling a 24-megapixel photo for every frame would dominate the render time.
    """
    import numpy as np
    from PIL import Image

    framing, union = _frame_path(plan, still.size, out)
    max_zoom = max(c.zoom for c in plan.cameras())
    scale = out.width * max_zoom / framing.view_w
    if scale >= 1:
        return np.asarray(still), framing
    union_w, union_h = union[2] - union[0], union[3] - union[1]
    size = (math.ceil(union_w * scale), math.ceil(union_h * scale))
    work = still.resize(size, Image.Resampling.LANCZOS, box=union)
    sx, sy = size[0] / union_w, size[1] / union_h
    return np.asarray(work), _Framing(
        origin_x=(framing.origin_x - union[0]) * sx,
        origin_y=(framing.origin_y - union[1]) * sy,
        view_w=framing.view_w * sx,
        view_h=framing.view_h * sy,
    )


def _frame_count(seconds: float) -> int:
    return round(seconds * FPS)


def _frames(still: Image.Image, plan: MotionPlan, out: Size) -> Iterator[np.ndarray]:
    """Yield RGB frames one at a time so a long clip never sits in memory.

    Frame ``i`` shows time ``seconds * i / (n - 1)``: the last frame lands exactly on the
    plan's final framing instead of one frame short of it. Each frame is one affine warp
    of the prepared still (OpenCV, bilinear: the still was shrunk to about the output's
    scale already, so the views never minify much): the crop box scaled onto the output, pixel
    centres mapped onto pixel centres, as a crop-and-resize would but without one.
    """
    import cv2
    import numpy as np

    work, framing = _prepare(still, plan, out)
    bounds = (work.shape[1], work.shape[0])
    n = _frame_count(plan.seconds)
    for i in range(n):
        camera = plan.camera_at(plan.seconds * i / (n - 1))
        x0, y0, x1, y1 = framing.box(camera, bounds)
        sx, sy = (x1 - x0) / out.width, (y1 - y0) / out.height
        to_source = np.array([[sx, 0.0, x0 + 0.5 * sx - 0.5], [0.0, sy, y0 + 0.5 * sy - 0.5]])
        yield cv2.warpAffine(
            work,
            to_source,
            (out.width, out.height),
            flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
            borderMode=cv2.BORDER_REFLECT_101,
        )


def render_clip(
    still: Image.Image,
    plan: MotionPlan,
    size: Size,
    video_path: Path,
    thumbnail_path: Path,
    on_frame: Callable[[int, int], None] | None = None,
) -> None:
    """Render ``plan`` over ``still`` into an MP4 and a JPEG of the middle frame.

    ``on_frame(done, total)`` is called after each encoded frame, for progress. One
    reformatter converts every frame to BT.709 YUV (making one per frame was a quarter of
    the time), and the next frames are drawn on another thread while x264 encodes.
    """
    import av
    from av.video.reformatter import (
        ColorPrimaries,
        ColorRange,
        Colorspace,
        ColorTrc,
        VideoReformatter,
    )

    total = _frame_count(plan.seconds)
    to_yuv = VideoReformatter()
    with (
        av.open(str(video_path), "w", format="mp4", options=MUX_OPTIONS) as container,
        _drawn_ahead(_frames(still, plan, size)) as frames,
    ):
        stream = container.add_stream("libx264", rate=FPS, options=X264_OPTIONS)
        ctx = stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = size.width, size.height, "yuv420p"
        ctx.thread_count, ctx.thread_type = ENCODER_THREADS, "FRAME"
        ctx.gop_size = 2 * FPS  # a keyframe every 2 s keeps long clips seekable
        # Tag what the conversion below produces, so players do not guess BT.601.
        ctx.colorspace, ctx.color_range = Colorspace.ITU709, ColorRange.MPEG
        ctx.color_primaries, ctx.color_trc = ColorPrimaries.BT709, ColorTrc.BT709
        for i, pixels in enumerate(frames):
            if i == total // 2:
                _save_thumbnail(pixels, thumbnail_path)
            frame = to_yuv.reformat(
                av.VideoFrame.from_ndarray(pixels, format="rgb24"),
                format="yuv420p",
                dst_colorspace=Colorspace.ITU709,
                threads=1,  # deterministic, and the other core is drawing the next frame
            )
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(stream.encode(frame))
            if on_frame:
                on_frame(i + 1, total)
        container.mux(stream.encode())


DRAWN_AHEAD = 4
"""Frames drawn before the encoder asks for them (each 2.7 MB at 1280x720)."""


@contextlib.contextmanager
def _drawn_ahead(frames: Iterator[np.ndarray]) -> Iterator[Iterator[np.ndarray]]:
    """``frames``, produced on a thread of their own a few frames ahead of the consumer.

    OpenCV and x264 both release the GIL, so drawing and encoding overlap on two cores.
    An error while drawing is raised to the consumer; leaving early stops the thread.
    """
    import queue

    done = object()
    ready: queue.Queue[Any] = queue.Queue(maxsize=DRAWN_AHEAD)
    stop = threading.Event()

    def draw() -> None:
        try:
            for frame in frames:
                while not stop.is_set():
                    with contextlib.suppress(queue.Full):
                        ready.put(frame, timeout=0.1)
                        break
                if stop.is_set():
                    return
            ready.put(done)
        except BaseException as exc:  # handed to the consumer, which re-raises it
            ready.put(exc)

    def consume() -> Iterator[np.ndarray]:
        while (item := ready.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item

    thread = threading.Thread(target=draw, name="draw-frames", daemon=True)
    thread.start()
    try:
        yield consume()
    finally:
        stop.set()
        with contextlib.suppress(queue.Empty):
            while True:  # let a drawer blocked on a full queue see the stop
                ready.get_nowait()
        thread.join()


def _save_thumbnail(pixels: np.ndarray, path: Path) -> None:
    from PIL import Image

    thumb = Image.fromarray(pixels)
    thumb.thumbnail((THUMBNAIL_MAX, THUMBNAIL_MAX), Image.Resampling.LANCZOS)
    thumb.save(path, format="JPEG", quality=88)


def load_still(path: Path) -> Image.Image:
    """Upright RGB: phone photos store rotation in EXIF, and alpha would tint the edges."""
    from PIL import Image, ImageOps

    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image)
        if "A" in upright.getbands() or "transparency" in upright.info:
            rgba = upright.convert("RGBA")
            matte = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
            return Image.alpha_composite(matte, rgba).convert("RGB")
        return upright.convert("RGB")
