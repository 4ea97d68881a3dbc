"""The stand-in's outputs: a real H.264 MP4, a WebP thumbnail and a JPEG spritesheet."""

from __future__ import annotations

import hashlib
import io
from collections.abc import Iterator

import av
import numpy as np
from PIL import Image

from core.testing.videos_api.state import FPS, Video


def render_outputs(video: Video, first_frame: bytes | None) -> dict[str, bytes]:
    """A real MP4 of the job's size and length, its WebP thumbnail and JPEG spritesheet.

    The first frame is the input still when there is one; the picture then drifts
    sideways, so frames differ and every job's bytes are its own.
    """
    width, height = (int(n) for n in video.size.split("x"))
    base = _first_frame(first_frame, width, height, video.id)
    frames = list(_frames(base, int(video.seconds) * FPS))
    return {
        "video": _encode_mp4(frames, width, height),
        "thumbnail": _image_bytes(Image.fromarray(frames[0]).reduce(4), "WEBP"),
        "spritesheet": _spritesheet(frames),
    }


def _first_frame(still: bytes | None, width: int, height: int, seed: str) -> np.ndarray:
    if still is not None:
        with Image.open(io.BytesIO(still)) as image:
            return np.asarray(image.convert("RGB").resize((width, height)))
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
    coarse = rng.integers(0, 256, (height // 64 + 1, width // 64 + 1, 3), dtype=np.uint8)
    noise = Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(noise)


def _frames(base: np.ndarray, count: int) -> Iterator[np.ndarray]:
    step = max(1, base.shape[1] // (count * 4 or 1))
    for index in range(count):
        yield np.roll(base, index * step, axis=1)


def _encode_mp4(frames: list[np.ndarray], width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "35"}
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def _spritesheet(frames: list[np.ndarray], columns: int = 4, tiles: int = 8) -> bytes:
    picks = frames[:: max(1, len(frames) // tiles)][:tiles]
    thumbs = [Image.fromarray(f).reduce(8) for f in picks]
    w, h = thumbs[0].size
    rows = (len(thumbs) + columns - 1) // columns
    sheet = Image.new("RGB", (w * columns, h * rows))
    for i, thumb in enumerate(thumbs):
        sheet.paste(thumb, ((i % columns) * w, (i // columns) * h))
    return _image_bytes(sheet, "JPEG")


def _image_bytes(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, quality=80)
    return out.getvalue()
