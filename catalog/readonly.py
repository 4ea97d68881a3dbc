"""Read-only catalog sessions for long or frequent readers: the web app and exports.

The catalog's normal sessions start SQLite transactions ``IMMEDIATE`` so that writers
queue instead of failing; a reader holding such a transaction would block every
``generate`` for as long as it reads (a whole export, every page view). A reader here
gets a plain deferred transaction instead: one consistent snapshot, no write lock, and
the database itself refuses writes (``PRAGMA query_only`` on SQLite, a ``READ ONLY``
transaction on PostgreSQL), so "read-only" is enforced, not just intended.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa
from sqlmodel import Session

from catalog.db import SQLITE_BUSY_TIMEOUT_MS, register_functions


class CatalogReader:
    """Opens read-only sessions on a catalog whose schema is already up to date."""

    def __init__(self, engine: sa.Engine) -> None:
        self._owned: sa.Engine | None = None
        self.engine: sa.Engine
        if engine.dialect.name == "postgresql":
            self.engine = engine.execution_options(postgresql_readonly=True)
        elif engine.dialect.name == "sqlite" and engine.url.database not in (None, "", ":memory:"):
            self.engine = self._owned = _sqlite_reader(engine.url)
        else:
            self.engine = engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A session for reading; objects stay usable (detached) after the block."""
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def close(self) -> None:
        if self._owned is not None:
            self._owned.dispose()


def _sqlite_reader(url: sa.URL) -> sa.Engine:
    engine = sa.create_engine(
        url,
        connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
    )

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        dbapi_conn.isolation_level = None  # SQLAlchemy's "begin" event issues BEGIN
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA query_only = ON")
        cursor.close()
        register_functions(dbapi_conn)  # the text filter's lower()

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN")  # deferred: a snapshot at the first read, no lock

    return engine


@contextmanager
def reading(engine: sa.Engine) -> Iterator[Session]:
    """One read-only session, for a one-off reader such as an export."""
    reader = CatalogReader(engine)
    try:
        with reader.session() as session:
            yield session
    finally:
        reader.close()
