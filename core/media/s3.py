"""The media store in S3-compatible object storage (AWS S3, MinIO, R2, B2, SeaweedFS, Ceph).

The client is boto3: endpoint, region, credentials and profiles come from the standard
AWS environment variables and files (``AWS_ENDPOINT_URL``, ``AWS_ACCESS_KEY_ID``,
``AWS_SECRET_ACCESS_KEY``, ``AWS_PROFILE``, ``AWS_REGION`` or ``AWS_DEFAULT_REGION``),
and nothing reelvault writes ever holds them: the catalog records keys relative to the
store, and every error is re-worded here without the request that failed.

An upload is never visible half-done: the file is hashed first (while it is spooled, or
read from where it already is), then sent to its final key in one PUT or one multipart
upload, which S3 only makes an object when it is completed; a failure aborts the
multipart upload. ``If-None-Match: *`` makes the PUT conditional, so two machines
storing the same bytes at once never write the object twice.

Reads that need a file (signing, verifying, probing) go through a local cache bounded by
size, least recently used out first; every fetched copy is hashed as it streams and
kept only if it is the file its name says.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from core.api.errors import MissingMediaError, StorageError
from core.media.s3_client import client_from_environment
from core.media.store import (
    CHUNK,
    CheckedCopy,
    ContentStore,
    StoredFile,
    hash_file,
    stored_path_for,
)
from core.media.transfer import FilePart, fetch_ranges, upload_parts

PART_SIZE = 8 << 20
"""Multipart part (and ranged read) size: a download holds about one range per worker,
an upload reads each part from the file as it sends it (larger parts for a file past
S3's 10,000, see :func:`part_size_for`)."""
MAX_PARTS = 10_000
MULTIPART_THRESHOLD = 32 << 20
DEFAULT_CACHE_BYTES = 2 << 30
_AUTH_CODES = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "AccessDenied", "403", "InvalidToken"}
)
_MISSING_CODES = frozenset({"NoSuchKey", "404", "NotFound"})


def parse_s3_url(url: str) -> tuple[str, str]:
    """``s3://bucket/some/prefix`` as (bucket, prefix without slashes at either end)."""
    parts = urlsplit(url)
    bucket, prefix = parts.netloc, parts.path.strip("/")
    if parts.scheme != "s3" or not bucket or parts.query or parts.fragment:
        raise StorageError(f"{url!r} is not an S3 location: use s3://bucket/prefix")
    return bucket, prefix


class S3Store(ContentStore):
    def __init__(
        self,
        client: Any | None,
        bucket: str,
        prefix: str = "",
        *,
        cache_dir: Path,
        cache_bytes: int = DEFAULT_CACHE_BYTES,
        on_part: Callable[[int], None] | None = None,
    ) -> None:
        self._client = client
        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.root = cache_dir
        self.cache_bytes = cache_bytes
        self.on_part = on_part
        """Called with each part number as it is sent (for progress and fault tests)."""
        self._checked = False
        self._cached_bytes: int | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_url(cls, url: str, *, cache_dir: Path, cache_bytes: int) -> S3Store:
        """The store at ``s3://bucket/prefix``; its client is made on first use, so a
        command that reads no file never imports boto3."""
        bucket, prefix = parse_s3_url(url)
        return cls(None, bucket, prefix, cache_dir=cache_dir, cache_bytes=cache_bytes)

    @property
    def client(self) -> Any:
        with self._lock:
            if self._client is None:
                try:
                    self._client = client_from_environment()
                except StorageError as exc:
                    raise StorageError(f"{self.url}: {exc}") from None
            return self._client

    # -- naming ---------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    def key_for(self, sha256: str) -> str:
        relative = stored_path_for(sha256)
        return f"{self.prefix}/{relative}" if self.prefix else relative

    def location(self, sha256: str) -> str:
        return f"s3://{self.bucket}/{self.key_for(sha256)}"

    @property
    def endpoint(self) -> str:
        """The server, for messages: scheme, host and port only (never any user part)."""
        parts = urlsplit(getattr(self.client.meta, "endpoint_url", "") or "")
        host = parts.hostname or "AWS S3"
        return f"{parts.scheme}://{host}:{parts.port}" if parts.port else host

    # -- errors ---------------------------------------------------------------------

    @contextlib.contextmanager
    def _errors(self, doing: str, sha256: str | None = None) -> Iterator[None]:
        """Turn the client's exceptions into one line naming the bucket, never a secret."""
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            EndpointConnectionError,
            NoCredentialsError,
        )

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", "")) or str(
                exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", "")
            )
            raise self._client_error(doing, code, sha256) from None
        except NoCredentialsError:
            raise StorageError(
                f"{self.url}: no credentials found (set AWS_ACCESS_KEY_ID and "
                "AWS_SECRET_ACCESS_KEY, or AWS_PROFILE)"
            ) from None
        except EndpointConnectionError:
            raise StorageError(
                f"{self.url}: cannot reach the storage server at {self.endpoint}",
                transient=True,
            ) from None
        except BotoCoreError as exc:  # dropped connections, timeouts
            raise StorageError(
                f"{self.url}: {doing} failed talking to {self.endpoint}: {type(exc).__name__}",
                transient=True,
            ) from None

    def _client_error(self, doing: str, code: str, sha256: str | None) -> StorageError:
        if code in _AUTH_CODES:
            return StorageError(
                f"{self.url}: the storage server at {self.endpoint} refused the credentials "
                f"({code}); check AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY or AWS_PROFILE"
            )
        if code == "NoSuchBucket":
            return self._no_bucket()
        if code in _MISSING_CODES and sha256 is not None:
            return MissingMediaError(f"{self.location(sha256)} is missing from the bucket")
        transient = code.startswith("5") or code in {"InternalError", "SlowDown"}
        return StorageError(f"{self.url}: {doing} failed ({code})", transient=transient)

    def _no_bucket(self) -> StorageError:
        return StorageError(f"bucket {self.bucket!r} does not exist at {self.endpoint}")

    def check(self) -> None:
        """Once per store: the bucket exists and the credentials open it. Some servers
        answer a write to a missing bucket with a retried internal error, so this is
        asked first, with a question that has a clear answer."""
        if self._checked:
            return
        from botocore.exceptions import ClientError

        with self._errors("opening the bucket"):
            try:
                self.client.head_bucket(Bucket=self.bucket)
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                code = str(exc.response.get("Error", {}).get("Code", ""))
                if status == 404 or code in {"NoSuchBucket", "404"}:
                    raise self._no_bucket() from None
                raise
        self._checked = True

    # -- reading --------------------------------------------------------------------

    def _head(self, sha256: str) -> dict[str, Any] | None:
        from botocore.exceptions import ClientError

        self.check()
        with self._errors("looking up an object", sha256):
            try:
                return self.client.head_object(Bucket=self.bucket, Key=self.key_for(sha256))
            except ClientError as exc:
                status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
                if status == 404:
                    return None
                raise

    def has(self, sha256: str) -> bool:
        return self._head(sha256) is not None

    def size_of(self, sha256: str) -> int:
        head = self._head(sha256)
        if head is None:
            raise MissingMediaError(f"{self.location(sha256)} is missing from the bucket")
        return int(head["ContentLength"])

    def _body(self, sha256: str, byte_range: str | None = None) -> Any:
        self.check()
        extra = {"Range": byte_range} if byte_range else {}
        with self._errors("reading an object", sha256):
            response = self.client.get_object(Bucket=self.bucket, Key=self.key_for(sha256), **extra)
        return response["Body"]

    def read_range(self, sha256: str, start: int, end: int) -> Iterator[bytes]:
        body = self._body(sha256, f"bytes={start}-{end}")
        try:
            with self._errors("reading an object", sha256):
                yield from body.iter_chunks(CHUNK)
        finally:
            body.close()

    def _download(self, sha256: str, dest: Path) -> tuple[str, int]:
        """Fetch the object into ``dest``, hashing it in order as its ranges arrive
        (:func:`~core.media.transfer.fetch_ranges`): (its SHA-256, its size)."""
        size = self.size_of(sha256)
        key = self.key_for(sha256)

        def fetch(start: int, end: int) -> bytes:
            response = self.client.get_object(
                Bucket=self.bucket, Key=key, Range=f"bytes={start}-{end}"
            )
            with contextlib.closing(response["Body"]) as body:
                return body.read()

        digest = hashlib.sha256()
        got = 0
        with self._errors("reading an object", sha256), dest.open("wb") as fh:
            for chunk in fetch_ranges(fetch, size, PART_SIZE) if size else ():
                digest.update(chunk)
                got += len(chunk)
                fh.write(chunk)
            fh.flush()
            os.fsync(fh.fileno())
        return digest.hexdigest(), got

    @contextlib.contextmanager
    def checked_copy(self, sha256: str) -> Iterator[CheckedCopy]:
        cached = self.path_for(sha256)
        fd, tmp_name = tempfile.mkstemp(dir=self._tmp_dir(), prefix="fetch-")
        os.close(fd)
        tmp = Path(tmp_name)
        try:
            found, size = self._download(sha256, tmp)
            if found == sha256:
                self._keep(tmp, cached)
                yield CheckedCopy(cached, found, size)
            else:  # someone else's bytes under this name: never into the cache
                yield CheckedCopy(tmp, found, size)
        finally:
            tmp.unlink(missing_ok=True)

    def local_path(self, sha256: str) -> Path:
        cached = self.path_for(sha256)
        if cached.is_file():
            os.utime(cached)  # recently used: the last to be evicted
            return cached
        with self.checked_copy(sha256) as copy:
            if copy.sha256 != sha256:
                raise StorageError(
                    f"{self.location(sha256)} no longer has the content its name says "
                    f"(SHA-256 {copy.sha256[:12]}…; `reelvault audit`)"
                )
        return cached

    def digests(self) -> Iterator[str]:
        self.check()
        start = f"{self.prefix}/" if self.prefix else ""
        paginator = self.client.get_paginator("list_objects_v2")
        with self._errors("listing the bucket"):
            for page in paginator.paginate(Bucket=self.bucket, Prefix=start):
                for item in page.get("Contents", []):
                    name = item["Key"][len(start) :]
                    folder, _, sha = name.partition("/")
                    if len(sha) == 64 and folder == sha[:2]:
                        yield sha

    def modified_at(self, sha256: str) -> float | None:
        head = self._head(sha256)
        return head["LastModified"].timestamp() if head else None

    # -- writing --------------------------------------------------------------------

    def delete(self, sha256: str) -> None:
        self.check()
        with self._errors("deleting an object", sha256):
            self.client.delete_object(Bucket=self.bucket, Key=self.key_for(sha256))
        self.path_for(sha256).unlink(missing_ok=True)  # and its cached copy

    def _commit(self, tmp: Path, sha256: str, size: int) -> StoredFile:
        self.upload(tmp, sha256, size)
        cached = self.path_for(sha256)
        self._keep(tmp, cached)
        return StoredFile(sha256, size, cached)

    def put_file(self, path: Path) -> StoredFile:
        """Hash the file where it is, then send it (no spooled copy of a large file). A
        small file is cached as well: it is about to be read (a still to send, a clip to
        show)."""
        sha256, size = hash_file(path)
        self.upload(path, sha256, size)
        cached = self.path_for(sha256)
        if size <= self.cache_bytes // 8 and not cached.is_file():
            fd, tmp_name = tempfile.mkstemp(dir=self._tmp_dir(), prefix="copy-")
            tmp = Path(tmp_name)
            try:
                with os.fdopen(fd, "wb") as out, path.open("rb") as src:
                    shutil.copyfileobj(src, out, CHUNK)
                    out.flush()
                    os.fsync(out.fileno())
                self._keep(tmp, cached)
            finally:
                tmp.unlink(missing_ok=True)
        return StoredFile(sha256, size, cached)

    def upload(self, path: Path, sha256: str, size: int) -> bool:
        """Send a file already known to hash to ``sha256`` to its final key, unless the
        bucket has it. True when it was sent.

        A small file goes straight up as a conditional PUT (the server's "already
        there" is the existence check, one round trip); a large one is looked up first,
        so bytes already stored are never sent again.
        """
        self.check()
        if size > MULTIPART_THRESHOLD and self.has(sha256):
            return False
        key = self.key_for(sha256)
        with self._errors("uploading", sha256):
            if size <= MULTIPART_THRESHOLD:
                with path.open("rb") as fh:
                    return self._put(key, fh)
            return self._multipart(key, path, size)

    def _put(self, key: str, data: Any) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.put_object(Bucket=self.bucket, Key=key, Body=data, IfNoneMatch="*")
        except ClientError as exc:
            if _already_there(exc):
                return False
            raise
        return True

    def _multipart(self, key: str, path: Path, size: int) -> bool:
        """Parts of :data:`PART_SIZE`, a few in flight, each read from the file as it is
        sent (:mod:`core.media.transfer`); aborted on any failure, so no object appears
        and no parts linger."""
        from botocore.exceptions import ClientError

        upload_id = self.client.create_multipart_upload(Bucket=self.bucket, Key=key)["UploadId"]

        def send(number: int, part: FilePart) -> str:
            return self.client.upload_part(
                Bucket=self.bucket, Key=key, UploadId=upload_id, PartNumber=number, Body=part
            )["ETag"]

        try:
            parts = upload_parts(send, path, size, part_size_for(size), on_part=self.on_part)
            self.client.complete_multipart_upload(
                Bucket=self.bucket,
                Key=key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except BaseException as exc:
            with contextlib.suppress(Exception):
                self.client.abort_multipart_upload(Bucket=self.bucket, Key=key, UploadId=upload_id)
            if isinstance(exc, ClientError) and _already_there(exc):
                return False
            raise
        return True

    # -- the cache ------------------------------------------------------------------

    def _keep(self, tmp: Path, cached: Path) -> None:
        """Move a verified, fsynced copy into the cache, then trim the cache to its bound.

        The folder is not fsynced: a rename lost in a power cut only loses a cached copy,
        while the file's own fsync (before the rename) means a name in the cache is
        never left over torn content."""
        cached.parent.mkdir(parents=True, exist_ok=True)
        os.replace(tmp, cached)
        self._trim(keep=cached)

    def _trim(self, keep: Path) -> None:
        """Evict the least recently used copies until the cache fits its bound (the copy
        just fetched stays, whatever its size: a reader is about to open it).

        The running total is counted once per store and then kept up to date, so the
        folder is walked again only when the bound is passed (other processes sharing
        the cache are counted then too).
        """
        added = _stat(keep)
        with self._lock:
            if self._cached_bytes is None:
                self._cached_bytes = sum(size for _, size, _ in self._cache_entries())
            elif added is not None:
                self._cached_bytes += added.st_size
            if self._cached_bytes <= self.cache_bytes:
                return
            entries = self._cache_entries()
            total = sum(size for _, size, _ in entries)
            for _, size, entry in sorted(entries, key=lambda e: e[0]):
                if total <= self.cache_bytes:
                    break
                if entry != keep:
                    entry.unlink(missing_ok=True)
                    total -= size
            self._cached_bytes = total

    def _cache_entries(self) -> list[tuple[float, int, Path]]:
        return [
            (stat.st_mtime, stat.st_size, entry)
            for folder in self.root.iterdir()
            if folder.is_dir() and folder.name != "tmp"
            for entry in folder.iterdir()
            if (stat := _stat(entry)) is not None
        ]


def part_size_for(size: int) -> int:
    """:data:`PART_SIZE`, or more for a file that would otherwise need more parts than
    S3 allows."""
    return max(PART_SIZE, -(-size // (MAX_PARTS - 1)))


def _already_there(exc: Any) -> bool:
    """A conditional write refused because the object exists: another writer stored the
    same bytes first, which for content-addressed keys is success."""
    status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
    code = str(exc.response.get("Error", {}).get("Code", ""))
    return status == 412 or code in {"PreconditionFailed", "ConditionalRequestConflict"}


def _stat(path: Path) -> os.stat_result | None:
    """A cached copy's facts, or ``None`` when another process evicted it meanwhile."""
    try:
        return path.stat()
    except FileNotFoundError:
        return None
