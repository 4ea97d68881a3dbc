"""``reelvault doctor``: check a library for what a crash, a full disk or a kill can
leave behind, and fix what is safe to fix.

It looks at five things: the catalog file's integrity, rows stuck in a running state,
stored files no row references (orphans), leftovers in the work folder, and stills a
killed request cataloged before its clip's row (:mod:`core.library.notes`). With ``fix``
it removes only the last two, which nothing needs by construction (see
:mod:`core.media.leftovers`); stuck rows are for ``reelvault resume`` (which may have to
ask a backend), and orphan files are kept: they may be the only copy of a clip whose row
was lost, and ``reelvault import`` catalogs them again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from catalog.health import integrity_problems, running_job_ids, stuck_generations
from catalog.queries import stored_hashes
from catalog.removals import removals_of
from core.host.app import Reelvault
from core.library.notes import settle_abandoned
from core.media import leftovers

STUCK_AFTER = timedelta(hours=1)
"""A running row untouched this long, with no live lease, is taken as abandoned."""


@dataclass
class DoctorReport:
    integrity: list[str] = field(default_factory=list)
    """What the integrity check found (empty: the catalog file is sound)."""
    stuck: list[str] = field(default_factory=list)
    """Ids of rows left running by a process that is gone."""
    orphans: list[str] = field(default_factory=list)
    """Digests of stored files no row references, and whose removal was never recorded."""
    removed_files: list[str] = field(default_factory=list)
    """Digests of the files of removed items (``rm``), which ``reelvault gc`` deletes."""
    leftovers: list[str] = field(default_factory=list)
    """Work-folder leftovers, as paths."""
    abandoned: list[str] = field(default_factory=list)
    """Ids of stills a request killed before its clip's row cataloged (see
    :mod:`core.library.notes`): removed by ``--fix``, as ``resume`` does."""
    leftover_bytes: int = 0
    removed_bytes: int = 0
    """Bytes freed by ``--fix``."""
    fixed: bool = False

    @property
    def healthy(self) -> bool:
        """Nothing that needs a person: leftovers removed by ``--fix`` do not count."""
        left_by_kills = self.leftovers or self.abandoned
        return not (
            self.integrity or self.stuck or self.orphans or (left_by_kills and not self.fixed)
        )


def remove_work_leftovers(app: Reelvault) -> int:
    """Remove what killed runs left in the work folder (see :mod:`core.media.leftovers`);
    the bytes freed. ``reelvault resume`` calls this after finishing the jobs."""
    with app.session() as session:
        running = set(running_job_ids(session))
    return leftovers.remove(leftovers.work_leftovers(app.store, app.settings.work_dir, running))


def doctor(app: Reelvault, *, fix: bool = False, now: datetime | None = None) -> DoctorReport:
    """Examine the library of ``app``; with ``fix``, remove work-folder leftovers."""
    report = DoctorReport(fixed=fix)
    report.integrity = integrity_problems(app.engine)
    if report.integrity:
        return report  # the rows cannot be trusted: restore a backup first
    moment = now or datetime.now(UTC)
    report.abandoned = settle_abandoned(app, dry_run=not fix)
    with app.session() as session:
        report.stuck = [g.id for g in stuck_generations(session, moment, STUCK_AFTER)]
        referenced = set(stored_hashes(session))
        running = set(running_job_ids(session))
    # The scan lists the whole store (a bucket, maybe): never inside a session, which
    # on SQLite holds the catalog's write lock.
    found = leftovers.scan(app.store, app.settings.work_dir, referenced, running)
    with app.session() as session:
        removed = removals_of(session, found.orphans)
    report.orphans = [digest for digest in found.orphans if digest not in removed]
    report.removed_files = [digest for digest in found.orphans if digest in removed]
    report.leftovers = [str(path) for path in found.work]
    report.leftover_bytes = found.work_bytes()
    if fix:
        report.removed_bytes = leftovers.remove(found.work)
    return report
