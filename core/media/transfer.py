"""Moving a large object in parts, a few at once, with memory bounded by parts in flight.

One S3 connection moves a few tens of MiB/s; several in parallel fill the link, as
every S3 client's transfer manager does. Here at most ``workers`` parts are held at a
time (``workers x part_size`` bytes, 32 MiB by default), and parts are handed back in
order, so a download can still be hashed as it streams.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import BinaryIO

WORKERS = 4


def upload_parts(
    send: Callable[[int, bytes], str],
    source: BinaryIO,
    part_size: int,
    *,
    workers: int = WORKERS,
    on_part: Callable[[int], None] | None = None,
) -> list[dict[str, object]]:
    """Read ``source`` part by part and ``send(number, data)`` each (returning its ETag);
    the parts list ``CompleteMultipartUpload`` wants. The first failure is raised once
    the parts in flight have settled, so the caller can abort the upload cleanly."""
    parts: list[dict[str, object]] = []
    pending: deque[tuple[int, Future[str]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-part") as pool:
        try:
            number = 0
            while data := source.read(part_size):
                number += 1
                if on_part is not None:
                    on_part(number)
                if len(pending) >= workers:
                    done, future = pending.popleft()
                    parts.append({"ETag": future.result(), "PartNumber": done})
                pending.append((number, pool.submit(send, number, data)))
                del data
            while pending:
                done, future = pending.popleft()
                parts.append({"ETag": future.result(), "PartNumber": done})
        finally:
            for _, future in pending:
                future.cancel()
    return parts


def fetch_ranges(
    fetch: Callable[[int, int], bytes], size: int, part_size: int, *, workers: int = WORKERS
) -> Iterator[bytes]:
    """Bytes ``0..size-1`` as ``fetch(start, end)`` ranges fetched ``workers`` at a
    time, yielded in order."""
    starts = iter(range(0, size, part_size))
    pending: deque[Future[bytes]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-range") as pool:
        try:
            for start in starts:
                pending.append(pool.submit(fetch, start, min(start + part_size, size) - 1))
                if len(pending) >= workers:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()
        finally:
            for future in pending:
                future.cancel()
