"""Removing clips and assets (``rm``) and freeing the space nothing refers to (``gc``).

``rm`` deletes rows only, in one transaction, and records who removed what and when
(:mod:`catalog.removals`); the files go with the next ``gc``, which deletes every stored
file no row refers to, and the leftovers of interrupted work. Keeping the two apart
means a removal never leaves a row pointing at a deleted file, and ``gc`` can be run on
a shared store from any machine, since it asks the shared catalog what is in use.
"""

from __future__ import annotations

import getpass
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from catalog.health import running_job_ids
from catalog.models import Asset, Generation
from catalog.queries import ClipFilter, list_generations, resolve, stored_hashes
from catalog.removals import (
    RemovalPlan,
    plan_removal,
    remove,
)
from core.api.errors import MissingMediaError, RequestError
from core.host.app import Reelvault
from core.media import leftovers


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
            if isinstance(found, Generation):
                generations.append(found)
            else:
                assets.append(found)
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
    """Delete stored files no row refers to and the leftovers of interrupted work.

    What counts as unneeded is :func:`core.media.leftovers.scan`'s answer, the same one
    ``reelvault doctor`` reports; a stored file is also given the scan's grace period,
    since a ``generate`` in another process stores its file before it writes the row.
    """
    now = time.time() if now is None else now
    with app.session() as session:
        keep = set(stored_hashes(session))
        jobs_running = set(running_job_ids(session))
    found = leftovers.scan(app.store, app.settings.work_dir, keep, jobs_running, now=now)
    result = Collected()
    store = app.store
    for sha in found.orphans:
        stored = store.modified_at(sha)
        if stored is None or now - stored < leftovers.LEFTOVER_GRACE_SECONDS:
            continue
        try:
            size = store.size_of(sha)
        except MissingMediaError:
            continue
        result.files.append(store.location(sha))
        result.bytes += size
        if not dry_run:
            store.delete(sha)
    result.leftovers = [str(path) for path in found.work]
    result.bytes += found.work_bytes()
    if not dry_run:
        leftovers.remove(found.work)
    return result
