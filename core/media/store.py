"""The content-addressed media store: every file is named by its SHA-256.

Writes go to a temporary file in the store's own folder, are hashed while they stream,
fsynced and then renamed into place, so a crash leaves either the whole file or
nothing under its final name, and a reader never sees a partial file. The same bytes
are stored once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

CHUNK = 1 << 20


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    path: Path


class IncomingFile:
    """A write-only file object that hashes and counts what passes through it.

    ``stored`` is set once the bytes are committed to the store.
    """

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._hash = hashlib.sha256()
        self.size = 0
        self.stored: StoredFile | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        self.size += len(data)
        return self._fh.write(data)

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self._fh.flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


class MediaStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path_for(self, sha256: str) -> Path:
        """Where the file with this hash lives (whether or not it is there yet)."""
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
        return self.root / sha256[:2] / sha256

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    @contextlib.contextmanager
    def writer(self) -> Iterator[IncomingFile]:
        """Stream bytes in; on a clean exit they are committed under their hash.

        After the block, ``incoming.stored`` is the :class:`StoredFile`. On an exception
        the temporary file is removed and nothing is stored.
        """
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=tmp_dir, prefix="incoming-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                incoming = IncomingFile(fh)
                yield incoming
                fh.flush()
                os.fsync(fh.fileno())
            incoming.stored = self._commit(tmp, incoming.hexdigest(), incoming.size)
        finally:
            tmp.unlink(missing_ok=True)

    def _commit(self, tmp: Path, sha256: str, size: int) -> StoredFile:
        final = self.path_for(sha256)
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
            _fsync_dir(final.parent)
        return StoredFile(sha256, size, final)

    def put_stream(self, source: BinaryIO) -> StoredFile:
        with self.writer() as incoming:
            shutil.copyfileobj(source, incoming, CHUNK)
        assert incoming.stored is not None
        return incoming.stored

    def put_file(self, path: Path) -> StoredFile:
        with path.open("rb") as fh:
            return self.put_stream(fh)


def hash_file(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
