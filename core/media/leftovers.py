"""What a library holds that nothing needs: orphan files in the store and leftovers in
the work folder.

One scan serves every command that looks for them (``reelvault doctor`` reports them
and removes the safe ones; a garbage collector removes them too), so all of them agree on
what "unneeded" means. The scan knows no database: the caller says which stored files the
catalog references and which jobs are still running, and this module compares.

A file is a *leftover* only once it is older than a grace period: a process that is
writing it right now (a download into ``work/incoming``, a signer's copy) must not see
its file vanish under it.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Collection, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from core.media.store import ContentStore

LEFTOVER_GRACE_SECONDS = 3600.0
"""How old a work file must be before it counts as left over: far longer than any step
that writes one (a download, a signature) takes."""

JOB_FOLDERS = frozenset({"local"})
"""Work subfolders that hold one folder per backend job, named by the job id: kept while
that job is unfinished in the catalog, left over once it has ended or is unknown."""


NOTES_FOLDER = "requests"
"""The work subfolder of requests' notes (:mod:`core.library.notes`): never left over by
age, since each note is settled by what it says (removing one would keep the stills a
killed request cataloged)."""


@dataclass(frozen=True)
class Leftovers:
    """The result of one scan."""

    orphans: list[str] = field(default_factory=list)
    """Digests of stored files that no catalog row references."""
    work: list[Path] = field(default_factory=list)
    """Files and job folders in the work folder (and the store's temporary folder) that
    no running job needs."""

    def work_bytes(self) -> int:
        return sum(_size(path) for path in self.work)


def scan(
    store: ContentStore,
    work_dir: Path,
    referenced: Collection[str],
    running_jobs: Collection[str],
    *,
    grace_seconds: float = LEFTOVER_GRACE_SECONDS,
    now: float | None = None,
) -> Leftovers:
    """Orphan files of ``store`` (by digest, not in ``referenced``) and leftovers of
    ``work_dir`` (not needed by any of ``running_jobs``, older than the grace period)."""
    wanted = set(referenced)
    orphans = [digest for digest in store.digests() if digest not in wanted]
    work = work_leftovers(store, work_dir, running_jobs, grace_seconds=grace_seconds, now=now)
    return Leftovers(orphans=orphans, work=work)


def work_leftovers(
    store: ContentStore,
    work_dir: Path,
    running_jobs: Collection[str],
    *,
    grace_seconds: float = LEFTOVER_GRACE_SECONDS,
    now: float | None = None,
) -> list[Path]:
    """Only the work-folder half of :func:`scan`: cheap (no listing of a bucket), for
    ``reelvault resume`` to tidy up after the run it finishes."""
    cutoff = (time.time() if now is None else now) - grace_seconds
    work = [
        path for path in _work_entries(work_dir, set(running_jobs)) if _newest_change(path) < cutoff
    ]
    work += [path for path in store.temp_files() if _newest_change(path) < cutoff]
    return work


def remove(paths: Iterable[Path]) -> int:
    """Delete work leftovers (files or job folders); the number of bytes freed."""
    freed = 0
    for path in paths:
        size = _size(path)
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
        if not path.exists():
            freed += size
    return freed


def _work_entries(work_dir: Path, running_jobs: set[str]) -> Iterable[Path]:
    if not work_dir.is_dir():
        return
    for folder in sorted(work_dir.iterdir()):
        if not folder.is_dir() or folder.is_symlink():
            yield folder
        elif folder.name == NOTES_FOLDER:
            continue
        elif folder.name in JOB_FOLDERS:
            for job in sorted(folder.iterdir()):
                if job.name not in running_jobs:
                    yield job
        else:
            yield from sorted(folder.iterdir())


def _newest_change(path: Path) -> float:
    """The latest modification time of ``path`` or anything under it."""
    try:
        newest = path.lstat().st_mtime
    except FileNotFoundError:
        return float("inf")  # gone meanwhile: nothing to remove
    if path.is_dir() and not path.is_symlink():
        for child in path.rglob("*"):
            try:
                newest = max(newest, child.lstat().st_mtime)
            except FileNotFoundError:
                continue
    return newest


def _size(path: Path) -> int:
    try:
        if path.is_dir() and not path.is_symlink():
            return sum(p.lstat().st_size for p in path.rglob("*") if p.is_file())
        return path.lstat().st_size
    except FileNotFoundError:
        return 0
