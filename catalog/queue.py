"""Leases on queued generations, so workers sharing a catalog never take the same job.

A worker *claims* a job by writing its name and a lease expiry into the row, in the
same transaction that found the job. On PostgreSQL the search locks the row with
``FOR UPDATE SKIP LOCKED`` so concurrent workers pass over each other's candidates; on
SQLite every write transaction is ``BEGIN IMMEDIATE`` (see :mod:`catalog.db`), so
claims are serialised by the database lock. A worker renews its leases while it works;
a lease that runs out means the worker died, and the job becomes claimable again.
"""

from __future__ import annotations

from collections.abc import Collection
from datetime import timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import Generation, utcnow

PENDING = "pending"
CLAIMED = "claimed"
"""Leased by a worker and not sent to a backend yet: safe to submit if the worker dies."""
RUNNING = (CLAIMED, "submitting", "queued", "in_progress")


def claim_next(session: Session, worker: str, lease: timedelta) -> Generation | None:
    """Take the oldest claimable job: a pending one, or one whose worker's lease ran out.

    Jobs started by a plain ``generate`` (no lease owner) are never taken: their own
    process is still running them, or ``reelvault resume`` will.
    """
    now = utcnow()
    abandoned = sa.and_(
        col(Generation.status).in_(RUNNING),
        col(Generation.lease_owner).is_not(None),
        col(Generation.lease_expires_at) < now,
    )
    stmt = (
        select(Generation)
        .where(sa.or_(Generation.status == PENDING, abandoned))
        .order_by(col(Generation.created_at), col(Generation.id))
        .limit(1)
    )
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update(skip_locked=True)
    job = session.exec(stmt).first()
    if job is None:
        return None
    if job.status == PENDING:
        job.status = CLAIMED
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
        .where(col(Generation.id).in_(ids), Generation.lease_owner == worker)
        .values(lease_expires_at=utcnow() + lease)
        .returning(col(Generation.id))
    )
    return set(session.execute(stmt).scalars())


def release(session: Session, worker: str, generation_id: str) -> None:
    """Give a job back once it reached an end (or the worker stops taking work)."""
    session.execute(
        sa.update(Generation)
        .where(Generation.id == generation_id, Generation.lease_owner == worker)
        .values(lease_owner=None, lease_expires_at=None)
    )
