"""Catalog ingest of N clips through the catalog's ORM path vs raw sqlite3.executemany.

python bench/ingest.py [--clips 100000]
"""

from __future__ import annotations

import argparse
import json
import sqlite3
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import SQLITE_TIME, clip_row, ratio_line, timer
from catalog.db import open_catalog, session_scope
from catalog.models import Generation

BATCH = 1000


def ingest_catalog(url: str, rows: list[dict]) -> None:
    engine = open_catalog(url)
    try:
        for start in range(0, len(rows), BATCH):
            with session_scope(engine) as session:
                session.add_all(
                    Generation(
                        **{
                            **row,
                            "parameters": json.loads(row["parameters"]),
                            "details": {},
                            "created_at": _aware(row["created_at"]),
                            "updated_at": _aware(row["updated_at"]),
                        }
                    )
                    for row in rows[start : start + BATCH]
                )
    finally:
        engine.dispose()


def _aware(text: str) -> datetime:
    return datetime.strptime(text, SQLITE_TIME).replace(tzinfo=UTC)


def ingest_raw(path: Path, rows: list[dict]) -> None:
    columns = list(rows[0])
    sql = f"INSERT INTO generations ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    conn = sqlite3.connect(path)
    try:
        conn.execute("PRAGMA journal_mode = WAL")
        conn.execute("PRAGMA synchronous = NORMAL")
        for start in range(0, len(rows), BATCH):
            with conn:
                conn.executemany(
                    sql, [tuple(r[c] for c in columns) for r in rows[start : start + BATCH]]
                )
    finally:
        conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--clips", type=int, default=100_000)
    args = parser.parse_args()
    rows = [clip_row(i) for i in range(args.clips)]
    with tempfile.TemporaryDirectory() as tmp:
        catalog_db = Path(tmp) / "catalog.db"
        raw_db = Path(tmp) / "raw.db"
        open_catalog(f"sqlite:///{raw_db}").dispose()  # same schema and indexes, empty
        with timer() as raw_time:
            ingest_raw(raw_db, rows)
        with timer() as catalog_time:
            ingest_catalog(f"sqlite:///{catalog_db}", rows)
        counts = [
            sqlite3.connect(db).execute("SELECT count(*) FROM generations").fetchone()[0]
            for db in (catalog_db, raw_db)
        ]
    assert counts == [args.clips, args.clips], counts
    print(f"ingest of {args.clips:,} clips in batches of {BATCH:,} (SQLite)")
    print(ratio_line("catalog ORM ingest", catalog_time(), raw_time(), "raw executemany"))
    per_second = args.clips / catalog_time(), args.clips / raw_time()
    print(f"  catalog: {per_second[0]:,.0f} clips/s; raw: {per_second[1]:,.0f} clips/s")


if __name__ == "__main__":
    main()
