"""Lineage of a deep remix chain and a filtered listing over a large catalog (SQLite).

    python bench/lineage_and_list.py [--depth 10000] [--clips 1000000]

Baselines, measured in the same run on the same database file:
- lineage: the same recursive query written by hand in raw sqlite3 (so the ratio is the
  cost of the catalog layer), and a Python loop fetching one parent at a time (what the
  recursive query replaces);
- list: the same filtered, ordered, limited SELECT in raw sqlite3.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import best_of, clip_row, ratio_line, timer
from catalog.db import open_catalog, session_scope
from catalog.queries import ClipFilter, lineage, list_generations

RAW_ANCESTORS = """
WITH RECURSIVE up(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM generations WHERE id = ?
    UNION ALL
    SELECT g.id, g.parent_id, up.depth - 1 FROM generations g JOIN up ON g.id = up.parent_id
), down(id, depth) AS (
    SELECT id, 0 FROM generations WHERE id = ?
    UNION ALL
    SELECT g.id, down.depth + 1 FROM generations g JOIN down ON g.parent_id = down.id
)
SELECT g.* FROM generations g JOIN (
    SELECT id, depth FROM up WHERE depth < 0 UNION ALL SELECT id, depth FROM down
) r ON g.id = r.id ORDER BY r.depth, g.created_at, g.id
"""

RAW_LIST = """
SELECT * FROM generations
WHERE model = ? AND status = ? AND lower(prompt) LIKE '%' || ? || '%' ESCAPE '/'
ORDER BY created_at DESC, id DESC LIMIT 50
"""


def fill(path: Path, rows: list[dict]) -> None:
    columns = list(rows[0])
    sql = f"INSERT INTO generations ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})"
    conn = sqlite3.connect(path)
    with conn:
        conn.executemany(sql, (tuple(r[c] for c in columns) for r in rows))
    conn.close()


def bench_lineage(depth: int, tmp: Path) -> None:
    db = tmp / "chain.db"
    open_catalog(f"sqlite:///{db}").dispose()
    fill(db, [clip_row(i, parent=f"clip_{i - 1:012d}" if i else None) for i in range(depth)])
    middle = f"clip_{depth // 2:012d}"
    engine = open_catalog(f"sqlite:///{db}")

    def via_catalog() -> None:
        with session_scope(engine) as session:
            assert len(lineage(session, middle)) == depth

    conn = sqlite3.connect(db)

    def via_raw() -> None:
        assert len(conn.execute(RAW_ANCESTORS, (middle, middle)).fetchall()) == depth

    def via_loop() -> None:
        seen, current = 0, f"clip_{depth - 1:012d}"
        while current:
            (current,) = conn.execute(
                "SELECT parent_id FROM generations WHERE id = ?", (current,)
            ).fetchone()
            seen += 1
        assert seen == depth

    catalog_time = best_of(3, via_catalog)
    raw_time = best_of(3, via_raw)
    loop_time = best_of(3, via_loop)
    print(f"lineage of the middle of a {depth:,}-deep remix chain (all {depth:,} clips)")
    print(ratio_line("  catalog lineage()", catalog_time, raw_time, "hand-written raw CTE"))
    print(
        ratio_line(
            "  catalog lineage()", catalog_time, loop_time, "Python loop, one query per parent"
        )
    )
    engine.dispose()


def bench_list(clips: int, tmp: Path) -> None:
    db = tmp / "big.db"
    open_catalog(f"sqlite:///{db}").dispose()
    with timer() as filling:
        batch = 100_000
        for start in range(0, clips, batch):
            fill(db, [clip_row(i) for i in range(start, min(clips, start + batch))])
    conn = sqlite3.connect(db)
    engine = open_catalog(f"sqlite:///{db}")
    filters = ClipFilter(model="sora-2", status="completed", text="Forest", limit=50)

    def via_catalog() -> None:
        with session_scope(engine) as session:
            assert len(list_generations(session, filters)) == 50

    def via_raw() -> None:
        rows = conn.execute(RAW_LIST, ("sora-2", "completed", "forest")).fetchall()
        assert len(rows) == 50

    newest = ClipFilter(limit=50)

    def newest_catalog() -> None:
        with session_scope(engine) as session:
            assert len(list_generations(session, newest)) == 50

    def newest_raw() -> None:
        sql = "SELECT * FROM generations ORDER BY created_at DESC, id DESC LIMIT 50"
        assert len(conn.execute(sql).fetchall()) == 50

    print(f"list over {clips:,} clips (filled in {filling():.1f} s)")
    print(
        ratio_line(
            "  list --model --status --text -n 50",
            best_of(3, via_catalog),
            best_of(3, via_raw),
            "raw sqlite3",
        )
    )
    print(
        ratio_line(
            "  list -n 50 (newest first)",
            best_of(3, newest_catalog),
            best_of(3, newest_raw),
            "raw sqlite3",
        )
    )
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--depth", type=int, default=10_000)
    parser.add_argument("--clips", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_lineage(args.depth, Path(tmp))
        bench_list(args.clips, Path(tmp))


if __name__ == "__main__":
    main()
