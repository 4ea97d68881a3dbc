"""Lineage of a deep remix chain, and lookups over a large catalog (SQLite).

    python bench/lineage_and_list.py [--depth 10000] [--clips 1000000]

Every row is measured against baselines in the same run, on the same database file:
- lineage: what ``reelvault lineage`` reads (:func:`lineage_dict`: one narrow recursive
  query, nested without recursion) against the same recursive query by hand in raw
  sqlite3, and against the full-row :func:`lineage` every view used before;
- lookups (filtered list, newest clips, id prefix, filter menus): the very SQL the
  catalog sent (captured as it runs) replayed in raw sqlite3, so the ratio is the cost of
  the catalog layer; and the SQL each used before, in raw sqlite3: lowering every prompt
  with a Python function, ``id LIKE 'prefix%'``, three ``SELECT DISTINCT``.

The large catalog is analyzed before measuring, as its last upgrade or ``PRAGMA optimize``
leaves it (the plans below depend on it).
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import sqlalchemy as sa

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

BEFORE_LIST = f"""
SELECT * FROM generations
WHERE model = ? AND status = ? AND {SQLITE_LOWER}(prompt) LIKE '%' || ? || '%' ESCAPE '/'
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
            target = resolve(session, middle)
            assert lineage_dict(session, target)["target"] == middle

    def full_rows() -> None:
        with session_scope(engine) as session:
            assert len(lineage(session, middle)) == depth

    conn = sqlite3.connect(db)

    def via_raw() -> None:
        assert len(conn.execute(RAW_FAMILY, (middle, middle)).fetchall()) == depth

    catalog_time = best_of(7, via_catalog)
    print(f"lineage of the middle of a {depth:,}-deep remix chain (all {depth:,} clips)")
    print(ratio_line("  lineage_dict()", catalog_time, best_of(7, via_raw), "raw sqlite3 CTE"))
    print(ratio_line("  lineage_dict()", catalog_time, best_of(7, full_rows), "full-row lineage()"))
    engine.dispose()


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


def bench_lookups(clips: int, tmp: Path) -> None:
    db = tmp / "big.db"
    open_catalog(f"sqlite:///{db}").dispose()
    with timer() as filling:
        batch = 100_000
        for start in range(0, clips, batch):
            fill(db, [clip_row(i) for i in range(start, min(clips, start + batch))])
    conn = sqlite3.connect(db)
    conn.execute("ANALYZE")
    conn.create_function(SQLITE_LOWER, 1, fold_case, deterministic=True)
    engine = open_catalog(f"sqlite:///{db}")
    print(f"lookups over {clips:,} clips (filled in {filling():.1f} s)")

    def in_session(action: Callable[[Any], object]) -> Callable[[], None]:
        def run() -> None:
            with session_scope(engine) as session:
                action(session)

        return run

    def replayed(statements: list[tuple[str, Any]]) -> Callable[[], None]:
        def run() -> None:
            for sql, parameters in statements:
                conn.execute(sql, parameters).fetchall()

        return run

    def before(sql: str, *parameters: object) -> Callable[[], None]:
        return lambda: conn.execute(sql, parameters).fetchall()

    prefix = f"clip_{clips // 2:012d}"[:-1] + "7"
    filtered = ClipFilter(model="sora-2", status="completed", text="Forest", limit=50)
    rows: list[tuple[str, Callable[[Any], object], Callable[[], None], str]] = [
        (
            "list --model --status --text -n 50",
            lambda s: list_generations(s, filtered),
            before(BEFORE_LIST, "sora-2", "completed", "forest"),
            "Python lower() per row",
        ),
        (
            "list -n 50 (newest first)",
            lambda s: list_generations(s, ClipFilter(limit=50)),
            before("SELECT * FROM generations ORDER BY created_at DESC, id DESC LIMIT 50"),
            "the same",
        ),
        (
            "id prefix (show, lineage, verify)",
            lambda s: resolve(s, prefix),
            before(
                "SELECT * FROM generations WHERE id LIKE ? ESCAPE '/' LIMIT 6",
                prefix.replace("_", "/_") + "%",
            ),
            "id LIKE 'prefix%'",
        ),
        (
            "web filter menus",
            clip_facets,
            lambda: [
                conn.execute(f"SELECT DISTINCT {c} FROM generations").fetchall()
                for c in ("backend", "model", "status")
            ],
            "3 SELECT DISTINCT",
        ),
    ]
    for name, action, previous, previous_name in rows:
        catalog_time = best_of(5, in_session(action))
        same_sql = best_of(5, replayed(captured(engine, in_session(action))))
        print(ratio_line(f"  {name}", catalog_time * 1e3, same_sql * 1e3, "same SQL raw", "ms"))
        print(
            ratio_line(
                f"  {name}", catalog_time * 1e3, best_of(5, previous) * 1e3, previous_name, "ms"
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
        bench_lookups(args.clips, Path(tmp))


if __name__ == "__main__":
    main()
