"""A file's type from its first bytes, without decoding it.

``verify`` needs a MIME type to hand the file to a verifier, and used to learn it by
decoding: the whole image through PIL, or the container through PyAV, which cost more
than the check itself on a large clip (and a start-up import of both). The signatures
below are the formats' own magic numbers; the ISO base media file format (MP4,
QuickTime, HEIF, AVIF) names its brand in the ``ftyp`` box at the start of the file.
"""

from __future__ import annotations

import mimetypes
from pathlib import Path

from core.api.errors import RequestError

__all__ = ["STILL_MIMES", "file_mime", "sniff_mime", "still_mime"]

HEAD = 32
"""Bytes read: enough for every signature below."""

_PREFIXES = (
    (b"\xff\xd8\xff", "image/jpeg"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"GIF87a", "image/gif"),
    (b"GIF89a", "image/gif"),
    (b"II*\x00", "image/tiff"),
    (b"MM\x00*", "image/tiff"),
    (b"BM", "image/bmp"),
)
_RIFF = {b"WEBP": "image/webp", b"WAVE": "audio/wav", b"AVI ": "video/x-msvideo"}
_BRANDS = {
    b"qt  ": "video/quicktime",
    b"heic": "image/heic",
    b"heix": "image/heic",
    b"mif1": "image/heif",
    b"msf1": "image/heif",
    b"avif": "image/avif",
    b"M4A ": "audio/mp4",
}


def sniff_mime(head: bytes) -> str | None:
    """The MIME type the leading bytes of a file announce, or ``None`` if none."""
    for prefix, mime in _PREFIXES:
        if head.startswith(prefix):
            return mime
    if head[:4] == b"RIFF" and head[8:12] in _RIFF:
        return _RIFF[head[8:12]]
    if head[4:8] == b"ftyp":
        return _BRANDS.get(head[8:12], "video/mp4")  # isom, mp41, mp42, avc1, dash, ...
    return None


def file_mime(path: Path) -> str | None:
    """What ``path`` holds, by its first bytes, else as its name suggests (a damaged,
    unusual or unreadable file still deserves a verdict from the verifier of that type)."""
    try:
        head = read_head(path)
    except OSError:
        head = b""  # the verifier will say what is wrong with it
    return sniff_mime(head) or mimetypes.guess_type(path.name)[0]


def read_head(path: Path) -> bytes:
    with path.open("rb") as fh:
        return fh.read(HEAD)


STILL_MIMES = ("image/jpeg", "image/png", "image/webp")
"""What every remote video API served today takes as a still."""


def still_mime(path: Path, service: str) -> str:
    """The MIME type of a still ``service`` is about to be sent, read from its first bytes
    (decoding a large image only to name its format would cost more than the request)."""
    try:
        mime = sniff_mime(read_head(path))
    except OSError as exc:
        raise RequestError(f"{path.name}: cannot be read ({exc.strerror or exc})") from None
    if mime is None or not mime.startswith("image/"):
        raise RequestError(f"{path.name}: not an image {service} can take")
    if mime not in STILL_MIMES:
        raise RequestError(
            f"{service} takes JPEG, PNG or WebP stills; convert the image, "
            "or pass --fit cover or --fit contain to have reelvault send a PNG"
        )
    return mime
