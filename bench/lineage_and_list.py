"""Lineage of a deep remix chain, and lookups over a large catalog, on SQLite and PostgreSQL.

    python bench/lineage_and_list.py [--depth 10000] [--clips 1000000] [--repeats 3]
                                     [--pg POSTGRESQL_URL] [--only sqlite|postgresql]
                                     [--lineage-only]

``--pg`` names a PostgreSQL server whose user may create databases: the benchmark makes
its own (``bench_dbperf_chain``, ``bench_dbperf_big``) and drops them afterwards.

Every row is measured against baselines in the same run, on the same database:
- lineage: what ``reelvault lineage`` reads (:func:`lineage_dict`: opening a session,
  resolving the id, one narrow recursive query, nested without recursion) against a
  narrow recursive query written by hand in the raw driver (``sqlite3``, ``psycopg``:
  the join back on the text id, ordered in SQL), against the very SQL the catalog sent
  replayed in the raw driver (so that ratio is the catalog layer and the nesting), and
  against the full-row :func:`lineage` every view used before; in wall time, and in this
  process's CPU time (steadier on a busy machine; a PostgreSQL server's own work is not in it);
- lookups (filtered list, newest clips, id prefix, filter menus): the very SQL the
  catalog sent (captured as it runs) replayed in the raw driver, so the ratio is the cost
  of the catalog layer; and the SQL each used before: ``id LIKE 'prefix%'``, three
  ``SELECT DISTINCT`` (and on SQLite, lowering every prompt with a Python function).

The large catalog is analyzed before measuring, as its last upgrade or ``PRAGMA optimize``
(SQLite) or autovacuum (PostgreSQL) leaves it: the plans depend on it. Figures are
medians of ``--repeats`` runs, after one run to warm the caches.
"""

from __future__ import annotations

import argparse
import io
import sqlite3
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import (
    clip_row,
    libpq_url,
    median_cpu_of,
    median_of,
    ratio_line,
    scratch_database,
    timer,
)
from catalog import search_schema
from catalog.db import SQLITE_LOWER, open_catalog, session_scope
from catalog.lineage import lineage
from catalog.models import fold_case
from catalog.queries import ClipFilter, clip_facets, list_generations, resolve
from core.views.report import lineage_dict

RAW_FAMILY = """
WITH RECURSIVE up(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM generations WHERE id = {p}
    UNION ALL
    SELECT g.id, g.parent_id, up.depth - 1 FROM generations g JOIN up ON g.id = up.parent_id
), down(id, depth) AS (
    SELECT id, 0 FROM generations WHERE id = {p}
    UNION ALL
    SELECT g.id, down.depth + 1 FROM generations g JOIN down ON g.parent_id = down.id
)
SELECT g.id, g.status, g.backend, g.model, g.prompt, g.seconds, g.size, g.source_asset_id,
       g.input_asset_id, g.output_asset_id, g.thumbnail_asset_id, g.parent_id, g.relation,
       g.created_at, r.depth
FROM generations g JOIN (
    SELECT id, depth FROM up WHERE depth < 0 UNION ALL SELECT id, depth FROM down
) r ON g.id = r.id ORDER BY r.depth, g.created_at, g.id
"""

BEFORE_LIST = f"""
SELECT * FROM generations
WHERE model = ? AND status = ? AND {SQLITE_LOWER}(prompt) LIKE '%' || ? || '%' ESCAPE '/'
ORDER BY created_at DESC, id DESC LIMIT 50
"""


@dataclass
class Database:
    """One catalog database and a raw driver connection to it."""

    name: str  # SQLite | PostgreSQL
    url: str
    raw: Any  # sqlite3.Connection | psycopg.Connection
    placeholder: str  # the raw driver's parameter marker

    def fill(self, rows: list[dict[str, Any]]) -> None:
        """Insert rows as they are stored, in one transaction, straight through the driver
        (triggers included: the search index is filled as by any insert)."""
        columns = list(rows[0])
        if self.name == "SQLite":
            marks = ", ".join("?" * len(columns))
            sql = f"INSERT INTO generations ({', '.join(columns)}) VALUES ({marks})"
            with self.raw:
                self.raw.executemany(sql, (tuple(r[c] for c in columns) for r in rows))
            return
        text = io.StringIO()  # COPY: the fast way in, and it fires the insert triggers
        for row in rows:
            text.write("\t".join(_copy_field(row[c]) for c in columns) + "\n")
        copying = f"COPY generations ({', '.join(columns)}) FROM STDIN"
        with self.raw.transaction(), self.raw.cursor() as cursor, cursor.copy(copying) as copy:
            copy.write(text.getvalue())

    def query(self, sql: str, parameters: Any = ()) -> list[Any]:
        if self.name == "SQLite":
            return self.raw.execute(sql, parameters).fetchall()
        with self.raw.cursor() as cursor:
            return cursor.execute(sql, parameters or None).fetchall()

    def analyze(self) -> None:
        self.query("ANALYZE") if self.name == "SQLite" else self.raw.execute("ANALYZE")


def _copy_field(value: object) -> str:
    if value is None:
        return "\\N"
    text = str(value)
    return text.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n")


@contextmanager
def database(pg: str | None, tmp: Path, label: str) -> Iterator[Database]:
    """An empty, migrated catalog named ``label`` with a raw connection to it."""
    if pg is None:
        path = tmp / f"{label}.db"
        open_catalog(f"sqlite:///{path}").dispose()
        conn = sqlite3.connect(path)
        conn.create_function(SQLITE_LOWER, 1, fold_case, deterministic=True)
        try:
            yield Database("SQLite", f"sqlite:///{path}", conn, "?")
        finally:
            conn.close()
        return
    import psycopg

    with scratch_database(pg, f"bench_dbperf_{label}") as url:
        open_catalog(url).dispose()
        pg_conn = psycopg.connect(libpq_url(url), autocommit=True)
        try:
            yield Database("PostgreSQL", url, pg_conn, "%s")
        finally:
            pg_conn.close()


def bench_lineage(pg: str | None, depth: int, repeats: int, tmp: Path) -> None:
    with database(pg, tmp, "chain") as db:
        db.fill([clip_row(i, parent=f"clip_{i - 1:012d}" if i else None) for i in range(depth)])
        db.analyze()
        middle = f"clip_{depth // 2:012d}"
        engine = open_catalog(db.url)
        raw_family = RAW_FAMILY.format(p=db.placeholder)

        def via_catalog() -> None:
            with session_scope(engine) as session:
                target = resolve(session, middle)
                assert lineage_dict(session, target)["target"] == middle

        def full_rows() -> None:
            with session_scope(engine) as session:
                assert len(lineage(session, middle)) == depth

        def via_raw() -> None:
            assert len(db.query(raw_family, (middle, middle))) == depth

        ((sent, parameters),) = [
            q for q in captured(engine, via_catalog) if "RECURSIVE" in q[0].upper()
        ]

        def as_sent() -> None:
            assert len(db.query(sent, parameters)) == depth

        catalog_time = warm_median(repeats, via_catalog) * 1e3
        print(f"lineage of the middle of a {depth:,}-deep remix chain ({db.name})")
        raw_time = warm_median(repeats, via_raw) * 1e3
        sent_time = warm_median(repeats, as_sent) * 1e3
        print(ratio_line("  lineage_dict()", catalog_time, raw_time, "raw CTE", "ms"))
        print(ratio_line("  lineage_dict()", catalog_time, sent_time, "its SQL in raw", "ms"))
        catalog_cpu = median_cpu_of(repeats, via_catalog) * 1e3
        raw_cpu = median_cpu_of(repeats, via_raw) * 1e3
        sent_cpu = median_cpu_of(repeats, as_sent) * 1e3
        print(ratio_line("  lineage_dict() CPU", catalog_cpu, raw_cpu, "raw CTE CPU", "ms"))
        print(ratio_line("  lineage_dict() CPU", catalog_cpu, sent_cpu, "its SQL in raw", "ms"))
        before = warm_median(repeats, full_rows) * 1e3
        print(ratio_line("  lineage_dict()", catalog_time, before, "full-row lineage()", "ms"))
        engine.dispose()


def warm_median(repeats: int, fn: Callable[[], Any]) -> float:
    fn()  # caches (pages, compiled statements) warm, as in a running program
    return median_of(repeats, fn)


def captured(engine: Any, action: Callable[[], None]) -> list[tuple[str, Any]]:
    """The statements (and parameters) ``action`` sends through ``engine``."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith(("SELECT", "WITH")):
            sent.append((statement, parameters))

    sa.event.listen(engine, "before_cursor_execute", record)
    try:
        action()
    finally:
        sa.event.remove(engine, "before_cursor_execute", record)
    return sent


@contextmanager
def search_index_built_after(url: str) -> Iterator[None]:
    """Fill a large catalog without the search index, then build the index from all its
    rows in one statement, as migration 0009 builds it on an upgrade: the same index,
    without a trigger call per row."""
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            search_schema.drop(conn)
        yield
        with engine.begin() as conn:
            search_schema.create(conn)
    finally:
        engine.dispose()


def bench_lookups(pg: str | None, clips: int, repeats: int, tmp: Path) -> None:
    with database(pg, tmp, "big") as db:
        with timer() as filling, search_index_built_after(db.url):
            batch = 100_000
            for start in range(0, clips, batch):
                db.fill([clip_row(i) for i in range(start, min(clips, start + batch))])
        db.analyze()
        engine = open_catalog(db.url)
        print(f"lookups over {clips:,} clips ({db.name}, filled in {filling():.1f} s)")
        measure_lookups(db, engine, clips, repeats)
        engine.dispose()
        measure_web_library(db, repeats, tmp)


def measure_lookups(db: Database, engine: sa.Engine, clips: int, repeats: int) -> None:
    def in_session(action: Callable[[Any], object]) -> Callable[[], None]:
        def run() -> None:
            with session_scope(engine) as session:
                action(session)

        return run

    def replayed(statements: list[tuple[str, Any]]) -> Callable[[], None]:
        return replayed_raw(db, statements)

    def before(sql: str, *parameters: object) -> Callable[[], None]:
        return lambda: db.query(sql.replace("?", db.placeholder), parameters)

    prefix = f"clip_{clips // 2:012d}"[:-1] + "7"
    filtered = ClipFilter(model="sora-2", status="completed", text="Forest", limit=50)
    like = prefix.replace("_", "/_") + "%"
    rows: list[tuple[str, Callable[[Any], object], Callable[[], None] | None, str]] = [
        (
            "list --model --status --text -n 50",
            lambda s: list_generations(s, filtered),
            before(BEFORE_LIST, "sora-2", "completed", "forest") if db.name == "SQLite" else None,
            "Python lower() per row",
        ),
        (
            "list --text RARE -n 50 (111 clips at a million)",
            lambda s: list_generations(s, ClipFilter(text="4242", limit=50)),
            None,
            "",
        ),
        (
            "list --model --text -n 50, no clip passing (every match gathered)",
            lambda s: list_generations(s, ClipFilter(model="fade-1", text="forest", limit=50)),
            None,
            "",
        ),
        (
            "list -n 50 (newest first)",
            lambda s: list_generations(s, ClipFilter(limit=50)),
            None,
            "",
        ),
        (
            "id prefix (show, lineage, verify)",
            lambda s: resolve(s, prefix),
            before("SELECT * FROM generations WHERE id LIKE ? ESCAPE '/' LIMIT 6", like),
            "id LIKE 'prefix%'",
        ),
        (
            "web filter menus",
            clip_facets,
            lambda: [
                db.query(f"SELECT DISTINCT {c} FROM generations")
                for c in ("backend", "model", "status")
            ],
            "3 SELECT DISTINCT",
        ),
    ]
    for name, action, previous, previous_name in rows:
        catalog_time = warm_median(repeats, in_session(action)) * 1e3
        same_sql = warm_median(repeats, replayed(captured(engine, in_session(action)))) * 1e3
        print(ratio_line(f"  {name}", catalog_time, same_sql, "same SQL raw", "ms"))
        if previous is not None:
            earlier = warm_median(repeats, previous) * 1e3
            print(ratio_line(f"  {name}", catalog_time, earlier, previous_name, "ms"))


def measure_web_library(db: Database, repeats: int, tmp: Path) -> None:
    """The web page's library grid, whole (routing, the queries, the filter menus, the
    template of 48 cards), against the SQL it sent replayed in the raw driver."""
    from starlette.testclient import TestClient

    from core.host.app import Reelvault
    from core.web.app import create_app

    app = Reelvault.load(home=tmp / f"home-{db.name}", db_url=db.url)
    pages = {
        "web library page": "/",
        "web library page, filtered": "/?model=sora-2&status=completed&q=Forest",
    }
    with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
        for name, url in pages.items():

            def page(url: str = url) -> None:
                answer = client.get(url)
                assert answer.status_code == 200, answer.text[:200]

            page_time = warm_median(repeats, page) * 1e3
            # the page reads through its own read-only engine: listen to every engine
            sent = captured(sa.engine.Engine, page)
            same_sql = warm_median(repeats, replayed_raw(db, sent)) * 1e3
            print(ratio_line(f"  {name}", page_time, same_sql, "its SQL raw", "ms"))
    app.engine.dispose()


def replayed_raw(db: Database, statements: list[tuple[str, Any]]) -> Callable[[], None]:
    def run() -> None:
        for sql, parameters in statements:
            db.query(sql, parameters)

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--depth", type=int, default=10_000)
    parser.add_argument("--clips", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg", help="also on PostgreSQL: postgresql+psycopg://USER@HOST/DB")
    parser.add_argument("--only", choices=("sqlite", "postgresql"))
    parser.add_argument(
        "--lineage-only", action="store_true", help="skip the lookups (and the large catalog)"
    )
    args = parser.parse_args()
    targets: list[str | None] = []
    if args.only != "postgresql":
        targets.append(None)
    if args.pg and args.only != "sqlite":
        targets.append(args.pg)
    with tempfile.TemporaryDirectory() as tmp:
        for pg in targets:
            bench_lineage(pg, args.depth, args.repeats, Path(tmp))
            if not args.lineage_only:
                bench_lookups(pg, args.clips, args.repeats, Path(tmp))


if __name__ == "__main__":
    main()
