"""Reading what a media file is: its type, dimensions and, for video, timing.

Probing is also how reelvault decides that an input is usable: a file Pillow cannot
fully decode is refused before anything is stored or submitted.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
from PIL import Image, ImageOps, UnidentifiedImageError

from core.api.errors import RequestError
from core.api.types import FIT_MODES

IMAGE_MIMES = {
    "JPEG": "image/jpeg",
    "PNG": "image/png",
    "WEBP": "image/webp",
    "GIF": "image/gif",
    "TIFF": "image/tiff",
    "BMP": "image/bmp",
}
MAX_IMAGE_PIXELS = 100_000_000
ORIENTATION_TAG = 0x0112
SIDEWAYS = (5, 6, 7, 8)
"""EXIF orientations that turn the picture by 90 degrees."""


@dataclass(frozen=True)
class MediaInfo:
    mime: str
    width: int | None = None
    height: int | None = None
    duration: float | None = None
    fps: float | None = None
    frame_count: int | None = None


def probe_image(path: Path) -> MediaInfo:
    """Describe a still, refusing anything that is not a fully decodable image."""
    if not path.exists():
        raise RequestError(f"{path}: no such file")
    if not path.is_file():
        raise RequestError(f"{path}: not a file")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as im:
                if im.width * im.height > MAX_IMAGE_PIXELS:
                    raise RequestError(
                        f"{path}: {im.width}x{im.height} is over the limit of "
                        f"{MAX_IMAGE_PIXELS:,} pixels"
                    )
                im.load()  # decode fully: a truncated file fails here, not mid-render
                fmt = im.format or ""
                width, height = im.size
                if im.getexif().get(ORIENTATION_TAG) in SIDEWAYS:
                    # A phone photo stored sideways: report the size people see, the one
                    # every renderer and fit works with after applying the rotation.
                    width, height = height, width
    except UnidentifiedImageError:
        raise RequestError(f"{path}: not an image reelvault can read") from None
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError,
            Image.DecompressionBombWarning) as exc:  # fmt: skip
        raise RequestError(f"{path}: the image could not be decoded ({exc})") from None
    mime = IMAGE_MIMES.get(fmt)
    if mime is None:
        supported = ", ".join(sorted(IMAGE_MIMES))
        raise RequestError(f"{path}: {fmt or 'unknown'} images are not supported ({supported})")
    return MediaInfo(mime=mime, width=width, height=height)


def probe_video(path: Path) -> MediaInfo:
    """Describe a video by decoding its container headers with PyAV."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            rate = stream.average_rate or stream.base_rate
            fps = float(rate) if rate else None
            frames = stream.frames or None
            if stream.duration is not None and stream.time_base is not None:
                duration = float(stream.duration * Fraction(stream.time_base))
            elif container.duration is not None:
                duration = container.duration / av.time_base
            else:
                duration = None
            return MediaInfo(
                mime="video/mp4",
                width=stream.codec_context.width,
                height=stream.codec_context.height,
                duration=duration,
                fps=fps,
                frame_count=frames,
            )
    except (av.FFmpegError, IndexError) as exc:
        raise RequestError(f"{path}: not a video reelvault can read ({exc})") from None


def first_frame(video: Path) -> Image.Image:
    """The first decodable frame of a video, as an image at the video's own size."""
    try:
        with av.open(str(video)) as container:
            return next(container.decode(video=0)).to_image()
    except (av.FFmpegError, StopIteration, OSError) as exc:
        raise RequestError(f"no frame could be read from {video.name}: {exc}") from None


def first_frame_jpeg(path: Path, quality: int = 90) -> bytes:
    """The first frame as a JPEG at the video's own size: an imported clip's thumbnail,
    and what a backend that animates a still (the local one) starts from when it remixes
    a clip it did not make."""
    out = io.BytesIO()
    first_frame(path).convert("RGB").save(out, format="JPEG", quality=quality)
    return out.getvalue()


def video_thumbnail(video: Path, destination: Path, max_width: int = 480) -> None:
    """Write the first frame of ``video`` as a WebP still of at most ``max_width`` pixels
    across: the thumbnail made here when a provider's own could not be used."""
    image = first_frame(video)
    if image.width > max_width:
        image = image.resize((max_width, round(image.height * max_width / image.width)))
    image.save(destination, "WEBP")


def fit_image(path: Path, width: int, height: int, mode: str) -> bytes:
    """The still fitted to exactly ``width`` x ``height``, as PNG bytes.

    ``cover`` scales it to fill the frame and crops the overflow evenly; ``contain``
    scales it to fit inside and pads with black. The photo's EXIF orientation is applied
    first, so what is sent is what the user sees. PNG, because it is lossless and every
    backend that takes stills reads it.
    """
    if mode not in FIT_MODES:
        raise RequestError(f"fit must be one of {', '.join(FIT_MODES)}, not {mode!r}")
    with Image.open(path) as image:
        upright = ImageOps.exif_transpose(image).convert("RGB")
    if mode == "cover":
        fitted = ImageOps.fit(upright, (width, height), Image.Resampling.LANCZOS)
    else:
        fitted = ImageOps.pad(upright, (width, height), Image.Resampling.LANCZOS, color="black")
    out = io.BytesIO()
    fitted.save(out, "PNG")
    return out.getvalue()
