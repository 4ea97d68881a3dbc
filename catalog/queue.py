"""Leases on generations, so workers sharing a catalog never take the same job.

A worker *claims* a job by writing its name and a lease expiry into the row, in the
same transaction that found the job. On PostgreSQL the search locks the row with
``FOR UPDATE SKIP LOCKED`` so concurrent workers pass over each other's candidates; on
SQLite every transaction is ``BEGIN IMMEDIATE`` (see :mod:`catalog.db`), so claims are
serialised by the database lock. A worker renews its leases while it works; a lease
that runs out means the worker died, and the job becomes claimable again.

Every expiry is written and compared in the *database's* time, never a machine's own:
workers on several machines share one catalog, and a machine whose clock runs a minute
fast would otherwise take over every live lease as soon as it looked.

The same columns hold the *finishing claim* (:func:`claim_finish`): whoever downloads
and catalogs a finished job holds the row for that long, so two finishers (a poll and a
webhook, a worker that lost its lease and its successor) never both do the work.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import Generation
from catalog.statuses import ENDED, RUNNING
from core.api.types import GenerationStatus

__all__ = [
    "begin_submit",
    "claim_finish",
    "claim_next",
    "database_now",
    "hand_back",
    "release",
    "renew",
]

_GIVEN_UP = timedelta(seconds=1)
"""How far in the past a handed-back lease is set, so the next claimer sees it run out."""


def database_now(session: Session) -> datetime:
    """The database server's current time, in UTC, for every lease decision.

    SQLite's ``CURRENT_TIMESTAMP`` has whole seconds and a text form unlike the one the
    catalog stores, so the time is read (with milliseconds) and then compared and written
    through the column type like any other value, the same way on both databases.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        text = session.execute(sa.select(sa.func.strftime("%Y-%m-%d %H:%M:%f", "now"))).scalar()
        return datetime.fromisoformat(str(text)).replace(tzinfo=UTC)
    now = sa.func.clock_timestamp() if dialect == "postgresql" else sa.func.current_timestamp()
    value = session.execute(sa.select(now)).scalar_one()
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _expired(now: datetime) -> sa.ColumnElement[bool]:
    return sa.and_(col(Generation.lease_owner).is_not(None), col(Generation.lease_expires_at) < now)


def claim_next(session: Session, worker: str, lease: timedelta) -> Generation | None:
    """Take the oldest claimable job: a pending one, or one whose worker's lease ran out.

    Jobs started by a plain ``generate`` (no lease owner) are never taken: their own
    process is still running them, or ``reelvault resume`` will.
    """
    now = database_now(session)
    abandoned = sa.and_(col(Generation.status).in_(RUNNING), _expired(now))
    stmt = (
        select(Generation)
        .where(sa.or_(col(Generation.status) == GenerationStatus.PENDING, abandoned))
        .order_by(col(Generation.created_at), col(Generation.id))
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    job = session.exec(stmt).first()
    if job is None:
        return None
    if job.status == GenerationStatus.PENDING:
        job.status = GenerationStatus.CLAIMED
    elif job.status == GenerationStatus.FINISHING:
        job.status = GenerationStatus.IN_PROGRESS  # its finisher died; finishing starts over
    job.lease_owner = worker
    job.lease_expires_at = now + lease
    job.attempts += 1
    session.add(job)
    session.flush()
    return job


def renew(session: Session, worker: str, ids: Collection[str], lease: timedelta) -> set[str]:
    """Extend this worker's leases; returns the ids it still holds (others were lost)."""
    if not ids:
        return set()
    stmt = (
        sa.update(Generation)
        .where(col(Generation.id).in_(ids), col(Generation.lease_owner) == worker)
        .values(lease_expires_at=database_now(session) + lease)
        .returning(col(Generation.id))
    )
    return set(session.execute(stmt).scalars())


def begin_submit(session: Session, worker: str, generation_id: str, lease: timedelta) -> bool:
    """Write ahead that a claimed job is about to be sent, if the lease is still ours.

    The lease is checked and renewed in the same statement, right before the backend is
    called: a worker that lost its job to another one must not send it as well.
    """
    now = database_now(session)
    stmt = (
        sa.update(Generation)
        .where(
            col(Generation.id) == generation_id,
            col(Generation.lease_owner) == worker,
            col(Generation.status) == GenerationStatus.CLAIMED,
            col(Generation.lease_expires_at) > now,
        )
        .values(status=GenerationStatus.SUBMITTING, lease_expires_at=now + lease, updated_at=now)
        .returning(col(Generation.id))
    )
    return session.execute(stmt).first() is not None


def release(session: Session, worker: str, generation_id: str) -> None:
    """Give up a job that reached an end; nobody needs to take it over."""
    session.execute(
        sa.update(Generation)
        .where(col(Generation.id) == generation_id, col(Generation.lease_owner) == worker)
        .values(lease_owner=None, lease_expires_at=None)
    )


def hand_back(session: Session, worker: str, generation_id: str) -> None:
    """Give an unfinished job back at once (the worker is stopping).

    A job never sent goes back to ``pending``; one in flight keeps its owner with a lease
    that has already run out, which is exactly what :func:`claim_next` takes over.
    """
    mine = sa.and_(col(Generation.id) == generation_id, col(Generation.lease_owner) == worker)
    session.execute(
        sa.update(Generation)
        .where(mine, col(Generation.status) == GenerationStatus.CLAIMED)
        .values(status=GenerationStatus.PENDING, lease_owner=None, lease_expires_at=None)
    )
    session.execute(
        sa.update(Generation).where(mine).values(lease_expires_at=database_now(session) - _GIVEN_UP)
    )


def claim_finish(session: Session, row: Generation, owner: str, lease: timedelta) -> bool:
    """Take the right to download and catalog a finished job; ``row`` is locked.

    Granted when nobody holds the row, when ``owner`` already does (a worker finishing
    its own job), or when the holder's lease ran out (it died); never while someone is
    finishing it, even under the same name (two threads of one worker, the second one
    started after the first lost and regained the job). The row then says
    ``finishing`` until the finisher completes it or gives it back.
    """
    if row.status in ENDED:
        return False
    now = database_now(session)
    live = row.lease_expires_at is not None and row.lease_expires_at >= now
    if live and (row.status == GenerationStatus.FINISHING or row.lease_owner not in (None, owner)):
        return False
    row.status = GenerationStatus.FINISHING
    row.lease_owner = owner
    row.lease_expires_at = now + lease
    row.updated_at = now
    session.add(row)
    session.flush()
    return True
