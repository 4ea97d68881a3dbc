"""Opening a catalog: the engine, its connection settings, and schema upgrades.

Several reelvault processes may share one catalog at once (two ``generate`` runs, or
workers on a shared PostgreSQL), so opening is safe under concurrency: the schema is
upgraded by one process at a time, and every SQLite transaction starts ``IMMEDIATE``
(a read-only session's too: the engine cannot tell them apart), so two writers queue on
the busy timeout instead of failing with "database is locked" when one of them tries to
upgrade a read lock; the price is that sessions take turns, reads included.
"""

from __future__ import annotations

import contextlib
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import Session

from catalog.migrations import HEADS
from catalog.models import fold_case
from core.api.errors import CatalogError, ReelvaultError

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS = Path(__file__).with_name("migrations")
VERSION_TABLE = "alembic_version"
"""Where Alembic keeps the revisions a catalog is at (its default name)."""
SQLITE_BUSY_TIMEOUT_MS = 60_000
PG_MIGRATION_LOCK = 0x7265656C  # "reel": the advisory lock id that serialises upgrades


def create_engine(url: str) -> sa.Engine:
    """An engine configured for reelvault's access pattern on either database."""
    try:
        parsed = sa.make_url(url)
    except sa.exc.ArgumentError:
        raise ReelvaultError(f"not a database URL: {url!r}") from None
    if parsed.get_backend_name() == "sqlite":
        return _sqlite_engine(parsed)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        return sa.create_engine(parsed, pool_pre_ping=True)
    except ModuleNotFoundError as exc:
        raise ReelvaultError(
            f"the driver for {parsed.drivername} is not installed: {exc}"
        ) from None


SQLITE_LOWER = "rv_lower"
"""A SQLite function lowering text as PostgreSQL's ``lower()`` does (SQLite's own changes
ASCII letters only); migration 0007 fills ``generations.prompt_folded`` with it."""


def register_functions(dbapi_conn: sqlite3.Connection) -> None:
    """Add reelvault's SQL functions to a new SQLite connection (every engine opening one)."""
    dbapi_conn.create_function(SQLITE_LOWER, 1, fold_case, deterministic=True)


def _sqlite_engine(url: sa.URL) -> sa.Engine:
    if url.database and url.database != ":memory:":
        Path(url.database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000})

    @sa.event.listens_for(engine, "connect")
    def _configure(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        # Let SQLAlchemy's "begin" event issue BEGIN itself (see below).
        dbapi_conn.isolation_level = None
        cursor = dbapi_conn.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys = ON")
        cursor.execute("PRAGMA synchronous = NORMAL")
        cursor.close()
        register_functions(dbapi_conn)

    @sa.event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE")

    @sa.event.listens_for(engine, "close")
    def _optimize(dbapi_conn: sqlite3.Connection, _record: object) -> None:
        optimize_on_close(dbapi_conn)

    return engine


def optimize_on_close(dbapi_conn: sqlite3.Connection) -> None:
    """SQLite's advice for every connection that closes: ``PRAGMA optimize`` refreshes the
    statistics of tables whose queries would gain from it (usually nothing to do). It never
    waits: if another process holds the write lock, the statistics wait for next time."""
    with contextlib.suppress(sqlite3.Error):
        dbapi_conn.execute("PRAGMA busy_timeout = 0")
        dbapi_conn.execute("PRAGMA optimize")


def _alembic_config(connection: sa.Connection) -> Config:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head_revisions() -> frozenset[str]:
    """The newest revision of every branch as Alembic finds them in the migration scripts
    (features may add independent branches). Opening a catalog compares with
    :data:`~catalog.migrations.HEADS` instead, which a test keeps equal to this."""
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return frozenset(ScriptDirectory.from_config(config).get_heads())


def _revisions_of(conn: sa.Connection) -> frozenset[str]:
    """The revisions ``conn``'s catalog is at: what Alembic wrote in its version table
    (none for a new, empty database), read without importing Alembic."""
    if not sa.inspect(conn).has_table(VERSION_TABLE):
        return frozenset()
    rows = conn.execute(sa.text(f"SELECT version_num FROM {VERSION_TABLE}")).scalars()
    return frozenset(rows)


def current_revisions(engine: sa.Engine) -> frozenset[str]:
    with engine.connect() as conn:
        return _revisions_of(conn)


def upgrade(engine: sa.Engine, *, lock_held: bool = False) -> bool:
    """Bring the schema to the newest revisions, one process at a time; say whether this
    wrote a new catalog into an empty database (how a mistyped ``--db`` is noticed).

    ``lock_held`` says the caller already holds the upgrade lock (a new catalog is put in
    WAL mode and given its schema in one section of it)."""
    if current_revisions(engine) == HEADS:
        return False
    from alembic import command

    from catalog import search_schema

    with (
        contextlib.nullcontext() if lock_held else _migration_lock(engine),
        engine.connect() as conn,
        _foreign_keys_deferred(conn),
        conn.begin(),
    ):
        # Alembic's own heads from here on: should HEADS ever lag behind a new migration,
        # every opening would import Alembic and take this lock, but change nothing.
        before = _revisions_of(conn)
        if before == head_revisions():
            return False  # another process upgraded while we waited for the lock
        command.upgrade(_alembic_config(conn), "heads")
        search_schema.ensure_triggers(conn)  # a migration may have rebuilt a table
        _check_foreign_keys(conn)
        # Fresh statistics for the query planner. Without them SQLite guesses, and on a
        # large catalog it guessed wrong: filtering a listing by the status index, then
        # sorting most of the table, instead of walking the creation-time index.
        conn.exec_driver_sql("ANALYZE")
    return not before


@contextlib.contextmanager
def _foreign_keys_deferred(conn: sa.Connection) -> Iterator[None]:
    """Let SQLite migrations rebuild tables that other rows still point at.

    SQLite cannot alter a column in place, so Alembic's batch mode copies the table,
    drops the old one and renames the copy; with foreign keys enforced the drop fails as
    soon as any row refers to the table. SQLite's own procedure for this is to switch
    enforcement off (possible only outside a transaction), migrate, then run
    ``foreign_key_check`` before committing; :func:`_check_foreign_keys` does the last.
    """
    if conn.dialect.name != "sqlite":
        yield
        return
    raw = conn.connection.dbapi_connection
    assert raw is not None
    raw.execute("PRAGMA foreign_keys = OFF")
    try:
        yield
    finally:
        raw.execute("PRAGMA foreign_keys = ON")


def _check_foreign_keys(conn: sa.Connection) -> None:
    if conn.dialect.name != "sqlite":
        return
    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise ReelvaultError(
            f"the catalog upgrade would break {len(broken)} references (first: {broken[0]}); "
            "nothing was changed"
        )


@contextlib.contextmanager
def _migration_lock(engine: sa.Engine) -> Iterator[None]:
    """Hold the catalog's upgrade lock: one process at a time changes a schema.

    PostgreSQL has advisory locks for this. A SQLite catalog is locked through a file
    beside it (``catalog.migrate-lock``) with ``filelock``, which works on every platform
    (an OS lock, released by the system if the process dies); it waits as long as it takes.
    """
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), {"k": PG_MIGRATION_LOCK})
            try:
                yield
            finally:
                conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), {"k": PG_MIGRATION_LOCK})
                conn.commit()
        return
    database = sqlite_file(engine.url)
    if database is None:
        yield
        return
    from filelock import FileLock

    with FileLock(_lock_file(database)):
        yield


def _lock_file(database: Path) -> Path:
    """The file beside a SQLite catalog through which its upgrade lock is taken."""
    return database.with_suffix(".migrate-lock")


def left_empty(database: Path) -> bool:
    """Whether the SQLite catalog ``database`` is an empty file that nobody is creating.

    A new catalog's file is first opened under the upgrade lock and given its schema
    before the lock is let go (``_set_up``), so a file that is still empty once this
    process holds the lock was emptied after it was made, never one being made. The size
    is read again under the lock: a check made before it could see the moment before
    another process wrote the schema.
    """
    from filelock import FileLock, Timeout

    try:
        with FileLock(_lock_file(database), timeout=0):
            return database.is_file() and database.stat().st_size == 0
    except Timeout:
        return False  # another process holds the lock: it is creating or upgrading it


def _set_up(engine: sa.Engine) -> bool:
    """Put a SQLite catalog in WAL mode (readers never block the writer) and bring its
    schema up to date.

    The mode is stored in the file, so it is set when the catalog is created, under the
    migration lock: switching modes needs the database to itself, and two processes
    opening a new catalog at the same moment must not both try. The schema is written in
    the same section of the lock, and a new file is first opened inside it: an empty file
    with its lock free is how another process recognises a catalog that was emptied
    (``left_empty``). Reading the mode needs no lock, so a catalog already in WAL mode
    (every one after its first opening) only takes the lock if its schema is behind.
    """
    path = sqlite_file(engine.url)
    if path is None:
        return upgrade(engine)
    # A new catalog is opened for the first time only under the lock (opening makes its
    # empty file), so an empty file is never seen with the lock free while it is made.
    is_new = not path.exists() or path.stat().st_size == 0
    if not is_new and _journal_mode(engine) == "wal":
        return upgrade(engine)
    with _migration_lock(engine):
        if _journal_mode(engine) != "wal":  # another process may have switched meanwhile
            _journal_mode(engine, "WAL")
        return upgrade(engine, lock_held=True)


def _journal_mode(engine: sa.Engine, switch_to: str | None = None) -> str:
    """A SQLite catalog's journal mode (lowercase), after switching it if asked to."""
    pragma = "PRAGMA journal_mode" + (f" = {switch_to}" if switch_to else "")
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        (mode,) = raw.execute(pragma).fetchone()
        return str(mode).lower()


def masked_url(url: str) -> str:
    """A database URL as it may be shown: its password replaced by ``***``."""
    try:
        return sa.make_url(url).render_as_string(hide_password=True)
    except sa.exc.ArgumentError:
        return "(not a database URL)"


DAMAGE_SIGNS = (
    "file is not a database",
    "database disk image is malformed",
    "malformed database schema",
    "database corruption",
)
"""What SQLite says of a file whose bytes are wrong (random bytes, a truncated file, a
zeroed page), as opposed to one that is busy or unreachable."""


def sqlite_file(url: str | sa.URL) -> Path | None:
    """The file behind a SQLite catalog URL; ``None`` for PostgreSQL or memory."""
    parsed = sa.make_url(url) if isinstance(url, str) else url
    if parsed.get_backend_name() != "sqlite" or parsed.database in (None, "", ":memory:"):
        return None
    return Path(parsed.database).expanduser()


def damage_error(engine: sa.Engine, exc: BaseException) -> CatalogError | None:
    """The one line a damaged catalog is reported with, or ``None`` when ``exc`` is not
    the sign of a damaged file (every other database error stays what it is)."""
    orig = getattr(exc, "orig", exc)
    if not isinstance(orig, sqlite3.DatabaseError):
        return None
    reason = str(orig)
    if not any(sign in reason.lower() for sign in DAMAGE_SIGNS):
        return None
    where = sqlite_file(engine.url) or engine.url.render_as_string(hide_password=True)
    return CatalogError(
        f"the catalog {where} is damaged ({reason}): restore it from a backup "
        "(`reelvault backup` makes one), or move it aside and `reelvault import` "
        "your clips into a new one"
    )


def open_catalog(url: str, on_created: Callable[[], None] | None = None) -> sa.Engine:
    """An engine for the catalog at ``url``, upgraded to the current schema; ``on_created``
    is called when opening wrote a new catalog (into a new file or an empty database)."""
    engine = create_engine(url)
    try:
        created = _set_up(engine)
    except sa.exc.DBAPIError as exc:
        engine.dispose()
        damaged = damage_error(engine, exc)
        if damaged is not None:
            raise damaged from None
        if not isinstance(exc, sa.exc.OperationalError):
            raise
        raise ReelvaultError(f"cannot open catalog {engine.url!r}: {exc.orig}") from None
    if created and on_created is not None:
        on_created()
    return engine


@contextlib.contextmanager
def session_scope(engine: sa.Engine) -> Iterator[Session]:
    """A session whose work is committed on success and rolled back on any error.

    Objects stay usable after the block (no expiry on commit) so callers can return them.
    A page found damaged mid-query ends in the same one line as a damaged file at opening.
    """
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except sa.exc.DBAPIError as exc:
            session.rollback()
            damaged = damage_error(engine, exc)
            if damaged is not None:
                raise damaged from None
            raise
        except BaseException:
            session.rollback()
            raise
