"""Which store a library's files are in: the one place that knows every kind of store.

:mod:`core.media.store` defines the interface and the local folder, :mod:`core.media.s3`
the bucket; choosing between them lives apart from both, so neither imports the other
and the S3 client is loaded only for a library that lives in a bucket.
"""

from __future__ import annotations

from pathlib import Path

from core.api.errors import RequestError
from core.media.store import ContentStore, MediaStore


def open_store(media: str, home: Path, cache_bytes: int) -> ContentStore:
    """The store the ``media`` setting names: ``s3://bucket[/prefix]``, or a folder
    (relative to the home; ``file://`` allowed). The S3 client is imported only here."""
    if media.startswith("s3://"):
        from core.media.s3 import S3Store

        return S3Store.from_url(media, cache_dir=home / "cache" / "media", cache_bytes=cache_bytes)
    if "://" in media and not media.startswith("file://"):
        raise RequestError(f"media store {media!r}: use a folder or s3://bucket/prefix")
    folder = Path(media.removeprefix("file://")).expanduser()
    return MediaStore(folder if folder.is_absolute() else home / folder)
