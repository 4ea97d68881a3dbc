"""The catalog's own health: an integrity check, a consistent backup copy, stuck rows.

``reelvault doctor`` and ``reelvault backup`` call these; the queries stay here with the
rest of the SQL.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Sequence
from datetime import datetime, timedelta
from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.db import damage_error, sqlite_file
from catalog.models import Generation
from catalog.statuses import RUNNING, UNFINISHED
from core.api.errors import RequestError

INTEGRITY_LIMIT = 20
"""How many problems ``PRAGMA integrity_check`` lists at most: enough to judge by."""


def integrity_problems(engine: sa.Engine) -> list[str]:
    """What SQLite's ``integrity_check`` finds wrong with the file (empty when sound).

    PostgreSQL checks its own pages; there is nothing to ask it here.
    """
    if engine.dialect.name != "sqlite":
        return []
    try:
        with engine.connect() as conn:
            rows = conn.exec_driver_sql(f"PRAGMA integrity_check({INTEGRITY_LIMIT})").fetchall()
    except sa.exc.DBAPIError as exc:
        damaged = damage_error(engine, exc)
        if damaged is None:
            raise
        return [str(getattr(exc, "orig", exc))]
    found = [str(row[0]) for row in rows]
    return [] if found == ["ok"] else found


def backup(engine: sa.Engine, destination: Path) -> int:
    """Copy a SQLite catalog to ``destination`` with SQLite's online backup API: a
    consistent snapshot even while other processes write, which copying the file (and
    its WAL) is not. Written beside the destination first and renamed into place, so a
    failed backup leaves no half-written file. Returns the copy's size in bytes.
    """
    source = sqlite_file(engine.url)
    if source is None:
        raise RequestError(
            "this catalog is on PostgreSQL: back it up with pg_dump "
            "(e.g. pg_dump --format=custom --file=catalog.dump DBNAME)"
        )
    if destination.exists():
        raise RequestError(f"{destination} already exists: choose a new file for the backup")
    if not destination.parent.is_dir():
        raise RequestError(f"{destination.parent} is not a folder")
    partial = destination.with_name(destination.name + ".partial")
    try:
        raw = engine.raw_connection()
        try:
            target = sqlite3.connect(partial)
            try:
                driver = raw.driver_connection
                assert isinstance(driver, sqlite3.Connection)
                driver.backup(target)
            finally:
                target.close()
        finally:
            raw.close()
        os.replace(partial, destination)
    except (sqlite3.Error, OSError) as exc:
        with contextlib.suppress(OSError):
            partial.unlink()
        damaged = damage_error(engine, exc)
        if damaged is not None:
            raise damaged from None
        raise RequestError(f"cannot write the backup {destination}: {exc}") from None
    return destination.stat().st_size


def stuck_generations(session: Session, now: datetime, idle: timedelta) -> list[Generation]:
    """Started rows that nobody has touched for ``idle`` and that no live lease holds:
    jobs a crash or Ctrl-C left for ``reelvault resume``."""
    before = now - idle
    stmt = (
        select(Generation)
        .where(col(Generation.status).in_(RUNNING))  # pending rows wait for a worker
        .where(col(Generation.updated_at) < before)
        .where(
            sa.or_(
                col(Generation.lease_expires_at).is_(None),
                col(Generation.lease_expires_at) < now,
            )
        )
        .order_by(col(Generation.created_at), col(Generation.id))
    )
    return list(session.exec(stmt))


def running_job_ids(session: Session) -> Sequence[str]:
    """The backend job ids of every unfinished row: their working files are in use."""
    stmt = select(Generation.remote_job_id).where(
        col(Generation.status).in_(UNFINISHED), col(Generation.remote_job_id).is_not(None)
    )
    return [job for job in session.exec(stmt) if job]
