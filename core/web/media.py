"""Serving a stored file over HTTP, from either store, with Range support.

A file in the local store is answered by Starlette's ``FileResponse`` (which answers
Range requests itself). An object in a bucket is streamed from the bucket: a Range
request becomes a ranged GET, so seeking in a long video fetches only what is watched
and this machine never spools the file. One range per request (what browsers send for
video); anything else gets the whole file, as RFC 9110 allows.

With ``media_presign_seconds`` set in config.toml, an object in a bucket is instead
answered with a redirect to a presigned URL valid that long, so the bytes go from the
bucket to the browser without passing through this machine; the bucket's server then
answers Range requests itself. The URL carries a signature, never the secret key.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

from starlette.responses import FileResponse, RedirectResponse, Response, StreamingResponse

from core.api.errors import MissingMediaError, NotFoundError
from core.media.s3 import S3Store
from core.media.store import ContentStore, MediaStore

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def media_response(
    store: ContentStore,
    sha256: str,
    mime: str,
    headers: dict[str, str],
    asset_id: str,
    range_header: str | None,
    presign_seconds: int = 0,
) -> Response:
    """The file with this hash: whole, or the one range a ``Range`` header asks for (or,
    from a bucket with ``presign_seconds``, a redirect to a presigned URL for it)."""
    if isinstance(store, MediaStore):
        path = store.path_for(sha256)
        if not path.is_file():
            raise NotFoundError(f"{asset_id} is cataloged but missing from the store")
        return FileResponse(path, media_type=mime, headers=headers)
    if presign_seconds and isinstance(store, S3Store):
        if not store.has(sha256):
            raise NotFoundError(f"{asset_id} is cataloged but missing from the store")
        url = _presigned_url(store, sha256, presign_seconds, mime, headers)
        # the URL expires: a browser must come back here, not reuse a stale redirect
        return RedirectResponse(url, status_code=307, headers={"cache-control": "no-store"})
    try:
        size = store.size_of(sha256)
    except MissingMediaError:
        raise NotFoundError(f"{asset_id} is cataloged but missing from the store") from None
    return _ranged(store, sha256, mime, headers, size, range_header)


def _ranged(
    store: ContentStore,
    sha256: str,
    mime: str,
    headers: dict[str, str],
    size: int,
    range_header: str | None,
) -> Response:
    base = {**headers, "accept-ranges": "bytes"}
    wanted = _parse_range(range_header, size) if range_header else None
    if isinstance(wanted, str):  # "unsatisfiable"
        return Response(status_code=416, headers={**base, "content-range": f"bytes */{size}"})
    if wanted is None or size == 0:
        return StreamingResponse(
            store.read_range(sha256, 0, size - 1) if size else iter(()),
            media_type=mime,
            headers={**base, "content-length": str(size)},
        )
    start, end = wanted
    return StreamingResponse(
        store.read_range(sha256, start, end),
        status_code=206,
        media_type=mime,
        headers={
            **base,
            "content-length": str(end - start + 1),
            "content-range": f"bytes {start}-{end}/{size}",
        },
    )


def _parse_range(header: str, size: int) -> tuple[int, int] | str | None:
    """One ``bytes=a-b`` range, clipped to the file; ``None`` to send it whole."""
    match = _RANGE.match(header.strip())
    if match is None:
        return None  # several ranges or another unit: the whole file is a valid answer
    first, last = match.groups()
    if not first and not last:
        return None
    if not first:  # the last N bytes
        start, end = max(size - int(last), 0), size - 1
    else:
        start = int(first)
        end = min(int(last), size - 1) if last else size - 1
    if start >= size or start > end:
        return "unsatisfiable"
    return start, end


def _presigned_url(
    store: S3Store, sha256: str, seconds: int, mime: str, headers: dict[str, str]
) -> str:
    """A GET of the object valid for ``seconds``, whose answer carries the type, the
    download name and the caching this app would have sent (S3's response overrides)."""
    params: dict[str, Any] = {
        "Bucket": store.bucket,
        "Key": store.key_for(sha256),
        "ResponseContentType": mime,
    }
    if "content-disposition" in headers:
        params["ResponseContentDisposition"] = headers["content-disposition"]
    if "cache-control" in headers:
        params["ResponseCacheControl"] = headers["cache-control"]
    url: str = store.client.generate_presigned_url("get_object", Params=params, ExpiresIn=seconds)
    return url


def presigned_origin(store: ContentStore, presign_seconds: int) -> str | None:
    """Where presigned URLs point (scheme, host and port), for the page's
    Content-Security-Policy to let videos and pictures load from there; ``None`` when
    files are served from this machine. Checks the bucket once, so ``serve`` refuses to
    start with a missing bucket or wrong credentials rather than failing per file."""
    if not presign_seconds or not isinstance(store, S3Store):
        return None
    store.check()
    parts = urlsplit(_presigned_url(store, "0" * 64, 60, "application/octet-stream", {}))
    return f"{parts.scheme}://{parts.netloc}"
