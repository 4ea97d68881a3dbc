"""The content-addressed media store: every file is named by its SHA-256.

Two stores share one interface, :class:`ContentStore`: the local folder
(:class:`MediaStore`, the default) and S3-compatible object storage
(:class:`core.media.s3.S3Store`), chosen by :func:`core.media.stores.open_store` from the
``media`` setting.
Both name a file ``ab/abcdef…`` (the first two hex digits, then the digest), which is
what the catalog records as ``stored_path``: a row says *which* file, never *where*, so
every machine sharing a catalog reads it from the store it is configured with.

Writes go to a temporary file, are hashed while they stream, fsynced and only then
committed under their hash (renamed into place, or uploaded to the final key in one
atomic PUT or multipart completion), so a crash leaves either the whole file or nothing
under its final name, and a reader never sees a partial file. The same bytes are stored
once.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from core.api.errors import MissingMediaError
from core.api.files import disk_error

CHUNK = 1 << 20
HEX = frozenset("0123456789abcdef")


@dataclass(frozen=True)
class StoredFile:
    sha256: str
    size: int
    path: Path
    """Where this machine can read the file: in the store's folder, or its local cache."""

    @property
    def stored_path(self) -> str:
        """The catalog's record of the file: its key relative to the store."""
        return stored_path_for(self.sha256)


@dataclass(frozen=True)
class CheckedCopy:
    """A local copy of a stored file and what it hashes to *now* (see
    :meth:`ContentStore.checked_copy`)."""

    path: Path
    sha256: str
    size: int


class IncomingFile:
    """A write-only file object that hashes and counts what passes through it.

    ``stored`` is set once the bytes are committed to the store.
    """

    def __init__(self, fh: BinaryIO, where: str = "the media store") -> None:
        self._fh = fh
        self._where = where
        self._hash = hashlib.sha256()
        self.size = 0
        self.stored: StoredFile | None = None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        self._hash.update(data)
        self.size += len(data)
        try:
            return self._fh.write(data)
        except OSError as exc:
            raise disk_error(exc, self._where) from None

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        self._fh.flush()

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def stored_path_for(sha256: str) -> str:
    """The key of the file with this hash, relative to any store: ``ab/abcdef…``."""
    if len(sha256) != 64 or not HEX.issuperset(sha256):
        raise ValueError(f"not a SHA-256 hex digest: {sha256!r}")
    return f"{sha256[:2]}/{sha256}"


class ContentStore(ABC):
    """What every store offers. ``root`` is a local folder laid out by hash: the store
    itself for the local store, a bounded cache of the bucket for object storage."""

    root: Path

    def path_for(self, sha256: str) -> Path:
        """Where this machine keeps (or would keep) the file with this hash."""
        return self.root / stored_path_for(sha256)

    @property
    @abstractmethod
    def url(self) -> str:
        """The store as the user configures it: a folder, or ``s3://bucket/prefix``."""

    @abstractmethod
    def location(self, sha256: str) -> str:
        """Where the file lives, for people: a path, or an ``s3://`` URL."""

    @abstractmethod
    def has(self, sha256: str) -> bool:
        """Whether the store holds the file with this hash."""

    @abstractmethod
    def local_path(self, sha256: str) -> Path:
        """A local path to read the file from (fetched into the bounded cache if need be);
        :class:`~core.api.errors.MissingMediaError` when the store does not hold it."""

    @abstractmethod
    def checked_copy(self, sha256: str) -> contextlib.AbstractContextManager[CheckedCopy]:
        """Read the whole file once, hashing it as it streams, and hand over a local copy
        with what it hashes to now: the audit's check (an object's ETag is no hash)."""

    @abstractmethod
    def size_of(self, sha256: str) -> int:
        """The stored file's size in bytes (``MissingMediaError`` when absent)."""

    @abstractmethod
    def read_range(self, sha256: str, start: int, end: int) -> Iterator[bytes]:
        """Bytes ``start`` to ``end`` inclusive, in chunks (for HTTP Range requests)."""

    @abstractmethod
    def digests(self) -> Iterator[str]:
        """The hash of every file in the store (for migration)."""

    @abstractmethod
    def delete(self, sha256: str) -> None:
        """Remove the file with this hash (``reelvault gc``); absent already is fine."""

    @abstractmethod
    def modified_at(self, sha256: str) -> float | None:
        """When the file was stored (POSIX seconds), ``None`` when absent: ``gc`` leaves
        young files alone, since a file is stored a moment before its row is written."""

    def temp_files(self) -> Iterator[Path]:
        """Temporary files of writes in progress or interrupted (``incoming-…``)."""
        yield from (p for p in sorted(self._tmp_dir().iterdir()) if p.is_file())

    @abstractmethod
    def _commit(self, tmp: Path, sha256: str, size: int) -> StoredFile:
        """Make a complete, fsynced temporary file the stored file with this hash."""

    def _tmp_dir(self) -> Path:
        tmp_dir = self.root / "tmp"
        tmp_dir.mkdir(parents=True, exist_ok=True)
        return tmp_dir

    @contextlib.contextmanager
    def writer(self) -> Iterator[IncomingFile]:
        """Stream bytes in; on a clean exit they are committed under their hash.

        After the block, ``incoming.stored`` is the :class:`StoredFile`. On an exception
        the temporary file is removed and nothing is stored.
        """
        try:
            fd, tmp_name = tempfile.mkstemp(dir=self._tmp_dir(), prefix="incoming-")
        except OSError as exc:
            raise disk_error(exc, self.url) from None
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                incoming = IncomingFile(fh, self.url)
                yield incoming
                try:
                    fh.flush()
                    os.fsync(fh.fileno())
                except OSError as exc:
                    raise disk_error(exc, self.url) from None
            try:
                incoming.stored = self._commit(tmp, incoming.hexdigest(), incoming.size)
            except OSError as exc:
                raise disk_error(exc, self.url) from None
        finally:
            tmp.unlink(missing_ok=True)

    def put_stream(self, source: BinaryIO) -> StoredFile:
        with self.writer() as incoming:
            shutil.copyfileobj(source, incoming, CHUNK)
        assert incoming.stored is not None
        return incoming.stored

    def put_file(self, path: Path) -> StoredFile:
        with path.open("rb") as fh:
            return self.put_stream(fh)


class MediaStore(ContentStore):
    """The local folder store: the default, and every library's store before buckets."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @property
    def url(self) -> str:
        return str(self.root)

    def location(self, sha256: str) -> str:
        return str(self.path_for(sha256))

    def has(self, sha256: str) -> bool:
        return self.path_for(sha256).is_file()

    def local_path(self, sha256: str) -> Path:
        path = self.path_for(sha256)
        if not path.is_file():
            raise MissingMediaError(f"{path} is missing from the store (`reelvault audit`)")
        return path

    @contextlib.contextmanager
    def checked_copy(self, sha256: str) -> Iterator[CheckedCopy]:
        path = self.path_for(sha256)
        try:
            found, size = hash_file(path)
        except FileNotFoundError:
            raise MissingMediaError(f"{path} is gone from the store") from None
        except OSError as exc:
            raise MissingMediaError(f"{path} cannot be read: {exc.strerror}") from None
        yield CheckedCopy(path, found, size)

    def size_of(self, sha256: str) -> int:
        return self.local_path(sha256).stat().st_size

    def read_range(self, sha256: str, start: int, end: int) -> Iterator[bytes]:
        with self.local_path(sha256).open("rb") as fh:
            fh.seek(start)
            left = end - start + 1
            while left > 0 and (chunk := fh.read(min(CHUNK, left))):
                left -= len(chunk)
                yield chunk

    def digests(self) -> Iterator[str]:
        if not self.root.is_dir():
            return
        for folder in sorted(self.root.iterdir()):
            if len(folder.name) == 2 and HEX.issuperset(folder.name) and folder.is_dir():
                for path in sorted(folder.iterdir()):
                    name = path.name
                    if len(name) == 64 and HEX.issuperset(name) and name[:2] == folder.name:
                        yield name

    def delete(self, sha256: str) -> None:
        self.path_for(sha256).unlink(missing_ok=True)

    def modified_at(self, sha256: str) -> float | None:
        try:
            return self.path_for(sha256).stat().st_mtime
        except FileNotFoundError:
            return None

    def _commit(self, tmp: Path, sha256: str, size: int) -> StoredFile:
        final = self.path_for(sha256)
        if not final.exists():
            final.parent.mkdir(parents=True, exist_ok=True)
            os.chmod(tmp, 0o444)
            os.replace(tmp, final)
            fsync_dir(final.parent)
        return StoredFile(sha256, size, final)


def hash_file(path: Path) -> tuple[str, int]:
    """SHA-256 and size of a file, read in chunks so memory stays flat."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as fh:
        while chunk := fh.read(CHUNK):
            digest.update(chunk)
            size += len(chunk)
    return digest.hexdigest(), size


def fsync_dir(path: Path) -> None:
    """Make a rename in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
