"""Removing clips and assets (``rm``) and freeing the space nothing refers to (``gc``).

``rm`` deletes rows only, in one transaction, and records who removed what and when
(:mod:`catalog.removals`); the files go with the next ``gc``, which deletes every stored
file no row refers to, and the leftovers of interrupted work. Keeping the two apart
means a removal never leaves a row pointing at a deleted file, and ``gc`` can be run on
a shared store from any machine, since it asks the shared catalog what is in use.
"""

from __future__ import annotations

import getpass
import shutil
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from catalog.models import Asset, Generation
from catalog.queries import ClipFilter, list_generations, resolve
from catalog.removals import (
    RemovalPlan,
    job_ids_in_use,
    plan_removal,
    referenced_digests,
    remove,
)
from core.api.errors import MissingMediaError, RequestError
from core.host.app import Reelvault

GRACE_SECONDS = 3600
"""Files and work folders younger than this are never collected: a file is stored a
moment before the row that refers to it is written, by another process perhaps."""


def who() -> str:
    """The person removing, as the catalog records it: ``user@host``."""
    try:
        user = getpass.getuser()
    except (KeyError, OSError):
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


@dataclass(frozen=True)
class Removed:
    """What one ``rm`` removed."""

    clips: list[str]
    assets: list[str]
    bytes: int


def remove_items(
    app: Reelvault,
    identifiers: Sequence[str],
    *,
    status: str | None = None,
    before: datetime | None = None,
    with_descendants: bool = False,
    dry_run: bool = False,
) -> Removed:
    """Remove these clips and assets (ids or prefixes), and every clip with ``status``
    created before ``before``, in one transaction; nothing is removed if any one of them
    cannot be."""
    if not identifiers and status is None and before is None:
        raise RequestError("name the clips or assets to remove, or give --status/--before")
    if before is not None and status is None:  # a date alone would take finished clips too
        raise RequestError("--before needs --status (e.g. --status failed --before 7d)")
    with app.session() as session:
        generations: list[Generation] = []
        assets: list[Asset] = []
        for identifier in identifiers:
            found = resolve(session, identifier)
            (generations if isinstance(found, Generation) else assets).append(found)  # type: ignore[arg-type]
        if status is not None or before is not None:
            generations += list_generations(
                session, ClipFilter(status=status, until=before, limit=None)
            )
        plan = plan_removal(session, generations, assets, with_descendants)
        if plan.blocked:
            raise RequestError(_blocked_message(plan))
        if not dry_run:
            remove(session, plan, who(), datetime.now(UTC))
    return Removed(sorted(plan.generations), sorted(plan.assets), plan.bytes)


def _blocked_message(plan: RemovalPlan) -> str:
    item, clips = next(iter(plan.blocked.items()))
    more = f" and {len(clips) - 1} more" if len(clips) > 1 else ""
    return (
        f"{item} cannot be removed: clip {clips[0]}{more} derives from it "
        "(remove those too with --with-descendants); nothing was removed"
    )


@dataclass
class Collected:
    """What ``gc`` deleted (or would delete, with ``dry_run``)."""

    files: list[str] = field(default_factory=list)
    leftovers: list[str] = field(default_factory=list)
    bytes: int = 0


def collect_garbage(
    app: Reelvault, *, dry_run: bool = False, now: float | None = None
) -> Collected:
    """Delete stored files no row refers to and the leftovers of interrupted work."""
    now = time.time() if now is None else now
    with app.session() as session:
        keep = referenced_digests(session)
        jobs_running = job_ids_in_use(session)
    result = Collected()
    store = app.store
    for sha in list(store.digests()):
        if sha in keep:
            continue
        stored = store.modified_at(sha)
        if stored is None or now - stored < GRACE_SECONDS:
            continue
        try:
            size = store.size_of(sha)
        except MissingMediaError:
            continue
        result.files.append(store.location(sha))
        result.bytes += size
        if not dry_run:
            store.delete(sha)
    for path in _leftovers(app, jobs_running, now):
        result.leftovers.append(str(path))
        result.bytes += _size(path)
        if not dry_run:
            shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)
    return result


def _leftovers(app: Reelvault, jobs_running: set[str], now: float) -> list[Path]:
    """Temporary files of interrupted writes, and the local backend's job folders of
    clips that ended (their files are in the store) or are gone, older than the grace."""
    candidates = list(app.store.temp_files())
    incoming = app.settings.work_dir / "incoming"
    if incoming.is_dir():
        candidates += sorted(incoming.iterdir())
    local_jobs = app.settings.work_dir / "local"
    if local_jobs.is_dir():
        candidates += [p for p in sorted(local_jobs.iterdir()) if p.name not in jobs_running]
    return [p for p in candidates if _age(p, now) >= GRACE_SECONDS]


def _age(path: Path, now: float) -> float:
    try:
        return now - path.stat().st_mtime
    except FileNotFoundError:
        return 0.0


def _size(path: Path) -> int:
    if path.is_dir():
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0
