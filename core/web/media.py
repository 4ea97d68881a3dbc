"""Serving a stored file over HTTP, from either store, with Range support.

A file in the local store is answered by Starlette's ``FileResponse`` (which answers
Range requests itself). An object in a bucket is streamed from the bucket: a Range
request becomes a ranged GET, so seeking in a long video fetches only what is watched
and this machine never spools the file. One range per request (what browsers send for
video); anything else gets the whole file, as RFC 9110 allows.
"""

from __future__ import annotations

import re

from starlette.responses import FileResponse, Response, StreamingResponse

from core.api.errors import MissingMediaError, NotFoundError
from core.media.store import ContentStore, MediaStore

_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


def media_response(
    store: ContentStore,
    sha256: str,
    mime: str,
    headers: dict[str, str],
    asset_id: str,
    range_header: str | None,
) -> Response:
    """The file with this hash: whole, or the one range a ``Range`` header asks for."""
    if isinstance(store, MediaStore):
        path = store.path_for(sha256)
        if not path.is_file():
            raise NotFoundError(f"{asset_id} is cataloged but missing from the store")
        return FileResponse(path, media_type=mime, headers=headers)
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
