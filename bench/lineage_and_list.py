"""Lineage of a deep remix chain, and lookups over a large catalog (SQLite).

    python bench/lineage_and_list.py [--depth 10000] [--clips 1000000]

Every row is measured against baselines in the same run, on the same database file:
- lineage: what ``reelvault lineage`` reads (:func:`lineage_dict`: one narrow recursive
  query, nested without recursion) against the same recursive query by hand in raw
  sqlite3, and against the full-row :func:`lineage` every view used before;
- filtered list: the same SELECT in raw sqlite3, and the query as it was before (lowering
  every prompt with a Python function inside the query);
- id prefix: a primary-key range in raw sqlite3, and the ``LIKE`` it replaces;
- filter menus: three ``SELECT DISTINCT`` in raw sqlite3, which they used to be.
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._common import best_of, clip_row, ratio_line, timer
from catalog.db import SQLITE_LOWER, open_catalog, session_scope
from catalog.models import fold_case
from catalog.queries import ClipFilter, clip_facets, lineage, list_generations, resolve
from core.views.report import lineage_dict

RAW_FAMILY = """
WITH RECURSIVE up(id, parent_id, depth) AS (
    SELECT id, parent_id, 0 FROM generations WHERE id = ?
    UNION ALL
    SELECT g.id, g.parent_id, up.depth - 1 FROM generations g JOIN up ON g.id = up.parent_id
), down(id, depth) AS (
    SELECT id, 0 FROM generations WHERE id = ?
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

RAW_LIST = """
SELECT * FROM generations
WHERE model = ? AND status = ? AND prompt_folded LIKE '%' || ? || '%' ESCAPE '/'
ORDER BY created_at DESC, id DESC LIMIT 50
"""
BEFORE_LIST = RAW_LIST.replace("prompt_folded LIKE", f"{SQLITE_LOWER}(prompt) LIKE")


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
            target = resolve(session, middle)
            assert lineage_dict(session, target)["target"] == middle

    def full_rows() -> None:
        with session_scope(engine) as session:
            assert len(lineage(session, middle)) == depth

    conn = sqlite3.connect(db)

    def via_raw() -> None:
        assert len(conn.execute(RAW_FAMILY, (middle, middle)).fetchall()) == depth

    catalog_time = best_of(3, via_catalog)
    print(f"lineage of the middle of a {depth:,}-deep remix chain (all {depth:,} clips)")
    print(ratio_line("  lineage_dict()", catalog_time, best_of(3, via_raw), "raw sqlite3 CTE"))
    print(ratio_line("  lineage_dict()", catalog_time, best_of(3, full_rows), "full-row lineage()"))
    engine.dispose()


def bench_lookups(clips: int, tmp: Path) -> None:
    db = tmp / "big.db"
    open_catalog(f"sqlite:///{db}").dispose()
    with timer() as filling:
        batch = 100_000
        for start in range(0, clips, batch):
            fill(db, [clip_row(i) for i in range(start, min(clips, start + batch))])
    # A catalog this size was analyzed by its last upgrade or by PRAGMA optimize on close.
    conn = sqlite3.connect(db)
    conn.execute("ANALYZE")
    conn.create_function(SQLITE_LOWER, 1, fold_case, deterministic=True)
    engine = open_catalog(f"sqlite:///{db}")
    print(f"lookups over {clips:,} clips (filled in {filling():.1f} s)")

    filters = ClipFilter(model="sora-2", status="completed", text="Forest", limit=50)

    def listed() -> None:
        with session_scope(engine) as session:
            assert len(list_generations(session, filters)) == 50

    def raw_list(sql: str) -> None:
        assert len(conn.execute(sql, ("sora-2", "completed", "forest")).fetchall()) == 50

    measured = best_of(3, listed)
    name = "  list --model --status --text -n 50"
    print(ratio_line(name, measured, best_of(3, lambda: raw_list(RAW_LIST)), "raw sqlite3"))
    before = best_of(3, lambda: raw_list(BEFORE_LIST))
    print(ratio_line(name, measured, before, "before: Python lower() per row"))

    newest = ClipFilter(limit=50)

    def newest_catalog() -> None:
        with session_scope(engine) as session:
            assert len(list_generations(session, newest)) == 50

    def newest_raw() -> None:
        sql = "SELECT * FROM generations ORDER BY created_at DESC, id DESC LIMIT 50"
        assert len(conn.execute(sql).fetchall()) == 50

    print(
        ratio_line(
            "  list -n 50 (newest first)",
            best_of(3, newest_catalog),
            best_of(3, newest_raw),
            "raw sqlite3",
        )
    )

    prefix = f"clip_{clips // 2:012d}"[:-1]  # ten clips share it: ambiguous, as often

    def by_prefix() -> None:
        with session_scope(engine) as session:
            assert resolve(session, prefix + "7").id == prefix + "7"

    def raw_range() -> None:
        sql = "SELECT * FROM generations WHERE id >= ? AND id < ? ORDER BY id LIMIT 6"
        assert len(conn.execute(sql, (prefix + "7", prefix + "8")).fetchall()) == 1

    def raw_like() -> None:
        sql = "SELECT * FROM generations WHERE id LIKE ? ESCAPE '/' LIMIT 6"
        assert len(conn.execute(sql, (prefix.replace("_", "/_") + "7%",)).fetchall()) == 1

    measured = best_of(5, by_prefix)
    name = "  id prefix (show, lineage, verify)"
    print(ratio_line(name, measured * 1e3, best_of(5, raw_range) * 1e3, "raw PK range", "ms"))
    print(ratio_line(name, measured * 1e3, best_of(5, raw_like) * 1e3, "before: LIKE", "ms"))

    def menus() -> None:
        with session_scope(engine) as session:
            assert len(clip_facets(session)["model"]) == 4

    def raw_distinct() -> None:
        for column in ("backend", "model", "status"):
            conn.execute(f"SELECT DISTINCT {column} FROM generations").fetchall()

    name = "  web filter menus"
    print(ratio_line(name, best_of(3, menus), best_of(3, raw_distinct), "before: SELECT DISTINCT"))
    engine.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--depth", type=int, default=10_000)
    parser.add_argument("--clips", type=int, default=1_000_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        bench_lineage(args.depth, Path(tmp))
        bench_lookups(args.clips, Path(tmp))


if __name__ == "__main__":
    main()
