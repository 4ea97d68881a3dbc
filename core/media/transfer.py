"""Moving a large object in parts, a few at once, with memory bounded by parts in flight.

One S3 connection moves a few tens of MiB/s; several in parallel fill the link, as
every S3 client's transfer manager does. An upload sends each part straight from the
file (a :class:`FilePart` window the client reads, signs and sends in small blocks), so
no part is ever held in memory: a 2 GiB file costs what a 50 MiB one does. A download
holds at most ``workers`` ranges at a time (``workers x part_size`` bytes, 32 MiB by
default) and hands them back in order, so it can still be hashed as it streams.
"""

from __future__ import annotations

import io
import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from _typeshed import WriteableBuffer

WORKERS = 4


class FilePart(io.RawIOBase):
    """Bytes ``start`` to ``start + length`` of a file as a seekable stream of their own:
    a part's body read from disk as it is sent. The client reads it once to sign it and
    again to send it (seeking back between, and for a retry), a block at a time."""

    def __init__(self, path: Path, start: int, length: int) -> None:
        super().__init__()
        self._file = path.open("rb")
        self._start, self._length, self._position = start, length, 0
        self._file.seek(start)

    def __len__(self) -> int:
        return self._length

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def read(self, size: int | None = -1) -> bytes:
        left = self._length - self._position
        data = self._file.read(left if size is None or size < 0 else min(size, left))
        self._position += len(data)
        return data

    def readinto(self, buffer: WriteableBuffer) -> int:
        view = memoryview(buffer).cast("B")
        data = self.read(len(view))
        view[: len(data)] = data
        return len(data)

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._position, os.SEEK_END: self._length}
        self._position = min(max(base[whence] + offset, 0), self._length)
        self._file.seek(self._start + self._position)
        return self._position

    def tell(self) -> int:
        return self._position

    def close(self) -> None:
        self._file.close()
        super().close()


def upload_parts(
    send: Callable[[int, FilePart], str],
    path: Path,
    size: int,
    part_size: int,
    *,
    workers: int = WORKERS,
    on_part: Callable[[int], None] | None = None,
) -> list[dict[str, object]]:
    """``send(number, part)`` each ``part_size`` window of the file at ``path`` (returning
    its ETag), ``workers`` at a time; the parts list ``CompleteMultipartUpload`` wants.
    The first failure is raised once the parts in flight have settled, so the caller can
    abort the upload cleanly."""

    def send_part(number: int, start: int) -> str:
        with FilePart(path, start, min(part_size, size - start)) as part:
            return send(number, part)

    parts: list[dict[str, object]] = []
    pending: deque[tuple[int, Future[str]]] = deque()
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="s3-part") as pool:
        try:
            for number, start in enumerate(range(0, size, part_size), 1):
                if on_part is not None:
                    on_part(number)
                if len(pending) >= workers:
                    done, future = pending.popleft()
                    parts.append({"ETag": future.result(), "PartNumber": done})
                pending.append((number, pool.submit(send_part, number, start)))
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
