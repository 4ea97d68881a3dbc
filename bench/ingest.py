"""Catalog ingest of N clips (:func:`catalog.bulk.insert_generations`) vs a raw executemany.

    python bench/ingest.py [--clips 100000] [--repeats 3] [--pg POSTGRESQL_URL]

On SQLite (always) and on PostgreSQL (with ``--pg``: a server URL whose user may create
databases; the benchmark makes its own and drops them), in batches of 1,000 clips, one
transaction per batch, each run into an empty catalog with the full schema (indexes,
the search index's triggers), measured in the same run:

- the catalog's bulk ingest, from rows as a caller holds them (Python values: dicts for
  the JSON columns, aware datetimes), through SQLAlchemy Core;
- the baseline: the same rows, already serialized, through the driver's own
  ``executemany`` (``sqlite3``, ``psycopg``) into the same schema;
- for reference, the ORM ingest it replaced (an object per clip, ``session.add_all``).

Figures are medians of ``--repeats`` runs.
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import sqlalchemy as sa

from bench._common import clip_row, libpq_url, ratio_line, scratch_database, typed_clip
from catalog.bulk import insert_generations
from catalog.db import open_catalog, session_scope
from catalog.models import Generation

BATCH = 1000


def ingest_bulk(url: str, rows: list[dict[str, Any]]) -> None:
    engine = open_catalog(url)
    try:
        for start in range(0, len(rows), BATCH):
            with session_scope(engine) as session:
                insert_generations(session, rows[start : start + BATCH])
    finally:
        engine.dispose()


def ingest_orm(url: str, rows: list[dict[str, Any]]) -> None:
    engine = open_catalog(url)
    try:
        for start in range(0, len(rows), BATCH):
            with session_scope(engine) as session:
                session.add_all(Generation(**row) for row in rows[start : start + BATCH])
    finally:
        engine.dispose()


def ingest_raw_sqlite(path: Path, rows: list[dict[str, Any]]) -> None:
    columns = list(rows[0])
    sql = f"INSERT INTO generations ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        conn.execute("PRAGMA foreign_keys = ON")  # as the catalog's connections have it
        for start in range(0, len(rows), BATCH):
            with conn:
                conn.executemany(
                    sql, [tuple(r[c] for c in columns) for r in rows[start : start + BATCH]]
                )
    finally:
        conn.close()


def ingest_raw_postgresql(url: str, rows: list[dict[str, Any]]) -> None:
    import psycopg

    columns = list(rows[0])
    sql = (
        f"INSERT INTO generations ({', '.join(columns)}) "
        f"VALUES ({', '.join(['%s'] * len(columns))})"
    )
    with psycopg.connect(libpq_url(url)) as conn:
        for start in range(0, len(rows), BATCH):
            with conn.transaction(), conn.cursor() as cursor:
                cursor.executemany(
                    sql, [tuple(r[c] for c in columns) for r in rows[start : start + BATCH]]
                )


@contextmanager
def empty_catalogs(pg: str | None, tmp: Path) -> Iterator[Callable[[str], str]]:
    """``fresh(label)``: the URL of a new, empty, migrated catalog for one run."""
    counter = iter(range(1_000_000))
    if pg is None:

        def fresh_sqlite(label: str) -> str:
            url = f"sqlite:///{tmp / f'{label}-{next(counter)}.db'}"
            open_catalog(url).dispose()
            return url

        yield fresh_sqlite
        return
    with scratch_database(pg, "bench_dbperf_ingest") as url:
        engine = open_catalog(url)  # the schema, once; each run starts from empty tables

        def fresh_postgresql(label: str) -> str:
            with engine.begin() as conn:
                conn.exec_driver_sql("TRUNCATE generations, search_documents CASCADE")
            return url

        try:
            yield fresh_postgresql
        finally:
            engine.dispose()


def measure(
    repeats: int, fresh: Callable[[str], str], label: str, run: Callable[[str], None]
) -> float:
    times = []
    for _ in range(repeats):
        url = fresh(label)
        start = time.perf_counter()
        run(url)
        times.append(time.perf_counter() - start)
        _check_count(url)
    return statistics.median(times)


EXPECTED: list[int] = []


def _check_count(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        clips = conn.exec_driver_sql("SELECT count(*) FROM generations").scalar_one()
        documents = conn.exec_driver_sql("SELECT count(*) FROM search_documents").scalar_one()
    engine.dispose()
    assert clips == documents == EXPECTED[0], (clips, documents, EXPECTED)


def bench(database: str, pg: str | None, clips: int, repeats: int, tmp: Path) -> None:
    serialized = [clip_row(i) for i in range(clips)]
    typed = [typed_clip(row) for row in serialized]
    if pg is None:
        raw_rows = serialized
        raw: Callable[[str], None] = lambda url: ingest_raw_sqlite(  # noqa: E731
            Path(sa.make_url(url).database or ""), raw_rows
        )
    else:  # psycopg takes the timestamps as datetimes (strings would be read in the
        # session's time zone); the JSON columns stay serialized text, as for sqlite3
        raw_rows = [
            {**row, "created_at": t["created_at"], "updated_at": t["updated_at"]}
            for row, t in zip(serialized, typed, strict=True)
        ]
        raw = lambda url: ingest_raw_postgresql(url, raw_rows)  # noqa: E731
    EXPECTED[:] = [clips]
    with empty_catalogs(pg, tmp) as fresh:
        raw_time = measure(repeats, fresh, "raw", raw)
        bulk_time = measure(repeats, fresh, "bulk", lambda url: ingest_bulk(url, typed))
        orm_time = measure(repeats, fresh, "orm", lambda url: ingest_orm(url, typed))
    driver = "psycopg" if pg else "sqlite3"
    print(f"ingest of {clips:,} clips in batches of {BATCH:,} ({database}, median of {repeats})")
    print(ratio_line("  catalog bulk ingest", bulk_time, raw_time, f"raw {driver} executemany"))
    print(ratio_line("  catalog bulk ingest", bulk_time, orm_time, "the ORM ingest before"))
    print(
        f"  clips/s: bulk {clips / bulk_time:,.0f}; raw {clips / raw_time:,.0f}; "
        f"ORM {clips / orm_time:,.0f}; throughput vs raw {raw_time / bulk_time:.2f}x"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg", help="also on PostgreSQL: postgresql+psycopg://USER@HOST/DB")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench("SQLite", None, args.clips, args.repeats, Path(tmp))
        if args.pg:
            bench("PostgreSQL", args.pg, args.clips, args.repeats, Path(tmp))


if __name__ == "__main__":
    main()
