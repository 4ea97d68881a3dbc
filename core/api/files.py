"""Writing files so that readers only ever see the old content or the new, never a part.

The one atomic-write helper of the project (the host and plugins alike): a keys file, a
private key, a job's spec are replaced whole or not at all, and a file meant to be private
is never readable by others, not even for the moment between creating and writing it.
Portable: ``os.chmod`` and ``os.replace`` exist everywhere (``os.fchmod`` does not exist
on Windows, where ``mode`` can only make a file read-only).
"""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

from core.api.errors import StorageError

__all__ = ["DISK_ERRNOS", "disk_error", "write_atomic"]

DISK_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM})
"""The errors of a folder that cannot take a write (full, over quota, read-only, not
ours): a fault of the machine, which the job survives, not of the job."""

DEFAULT_MODE = 0o644
"""The mode of a new file when none is asked for: what most umasks give."""


def disk_error(
    exc: OSError, where: str | Path, *, then: str = "`reelvault resume`"
) -> StorageError:
    """The one line a failed write to a folder is reported with: a full disk, a read-only
    folder, a quota. ``where`` is the folder (or store) written to, as people know it;
    ``then`` is the command that finishes the job once there is room (a job that failed
    before it was sent needs ``reelvault resume --retry``).

    Raised instead of the ``OSError`` so that the command ends in one line and the job it
    was doing stays resumable (a resume goes on with the other jobs).
    """
    reasons = {
        errno.ENOSPC: f"no space left on the device holding {where}",
        errno.EDQUOT: f"the disk quota is used up on the device holding {where}",
        errno.EROFS: f"{where} is on a read-only file system",
        errno.EACCES: f"{where} cannot be written: permission denied",
        errno.EPERM: f"{where} cannot be written: operation not permitted",
    }
    reason = reasons.get(exc.errno or 0, f"{where} cannot be written: {exc.strerror or exc}")
    return StorageError(f"{reason}; free some space or fix the folder, then {then}")


def write_atomic(path: str | Path, data: bytes | str, *, mode: int | None = None) -> None:
    """Replace ``path`` with ``data`` (``str`` is written as UTF-8), all or nothing.

    The content goes to a temporary file in the same folder, which gets ``mode`` before any
    byte is written, is flushed to disk, and is then renamed over ``path``; a failure
    removes it and leaves ``path`` as it was. Without ``mode`` an existing file keeps its
    mode and a new one gets 0644. Missing parent folders are created.
    """
    target = Path(path)
    if mode is None:
        try:
            mode = stat.S_IMODE(target.stat().st_mode)
        except FileNotFoundError:
            mode = DEFAULT_MODE
    content = data.encode() if isinstance(data, str) else data
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}-", suffix=".tmp")
    temporary = Path(name)
    try:
        with os.fdopen(fd, "wb") as fh:
            os.chmod(temporary, mode)  # before the content: private from the first byte
            fh.write(content)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
