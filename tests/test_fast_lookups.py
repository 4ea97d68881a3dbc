"""Lookups that stay fast in a large catalog: statistics, id prefixes, text search, menus.

Timings are the benchmarks' business (bench/); these tests check that each fast path
gives the right answer and, on SQLite, that the plan is the indexed one.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from sqlmodel import Session

from catalog.db import _alembic_config, create_engine, open_catalog, session_scope
from catalog.models import Generation, utcnow
from catalog.queries import ClipFilter, clip_facets, list_generations, resolve
from core.api.errors import AmbiguousIdError, NotFoundError


@pytest.fixture
def engine(db_url: str) -> Iterator[sa.Engine]:
    engine = open_catalog(db_url)
    yield engine
    engine.dispose()


def add_clips(engine: sa.Engine, *ids: str, **fields: str) -> None:
    now = utcnow()
    rows = [
        {"id": i, "backend": fields.get("backend", "local"), "model": fields.get("model", "m"),
         "prompt": fields.get("prompt", f"prompt {i}"), "seconds": 1, "size": "640x360",
         "parameters": {}, "status": fields.get("status", "completed"), "details": {},
         "created_at": now, "updated_at": now, "progress": 100, "attempts": 0}
        for i in ids
    ]  # fmt: skip
    with engine.begin() as conn:
        conn.execute(sa.insert(Generation.__table__), rows)  # type: ignore[attr-defined]


def test_opening_a_migrated_catalog_leaves_planner_statistics(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            tables = conn.exec_driver_sql(
                "SELECT name FROM sqlite_master WHERE name = 'sqlite_stat1'"
            ).all()
            assert tables == [("sqlite_stat1",)]
        else:  # -1 until the table is first analyzed (or vacuumed); ANALYZE sets it at once
            rows = conn.exec_driver_sql(
                "SELECT reltuples FROM pg_class WHERE relname = 'generations'"
            ).scalar_one()
            assert rows >= 0


def test_closing_a_sqlite_catalog_runs_pragma_optimize(engine: sa.Engine) -> None:
    if engine.dialect.name != "sqlite":
        pytest.skip("PRAGMA optimize is SQLite's; PostgreSQL's autovacuum keeps statistics")
    statements: list[str] = []
    with engine.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.set_trace_callback(statements.append)  # type: ignore[attr-defined]
    engine.dispose()
    assert "PRAGMA optimize" in statements


def test_prefixes_resolve_through_the_primary_key_and_ambiguity_is_refused(
    engine: sa.Engine,
) -> None:
    add_clips(engine, "clip_aa1", "clip_aa2", "clip_ab1", "clip_b", "clip_zz1", "clip_zzz")
    statements: list[tuple[str, Any]] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append((a[2], a[3])))
    with session_scope(engine) as s:
        assert resolve(s, "clip_ab").id == "clip_ab1"
        assert resolve(s, "CLIP_B").id == "clip_b"
        with pytest.raises(AmbiguousIdError, match="clip_aa1"):
            resolve(s, "clip_aa")
        with pytest.raises(AmbiguousIdError):
            resolve(s, "clip_a")
        with pytest.raises(NotFoundError):
            resolve(s, "clip_c")
        with pytest.raises(NotFoundError):
            resolve(s, "clip_a_")  # no wildcard: "_" is a character like any other
        with pytest.raises(NotFoundError):
            resolve(s, "clip_a%")
        # The end of the alphabet: the range has no next character to stop before.
        with pytest.raises(AmbiguousIdError, match="clip_zz1"):
            resolve(s, "clip_z")
        assert resolve(s, "clip_zzz").id == "clip_zzz"
        with pytest.raises(NotFoundError):
            resolve(s, "clip_zzzz")
    lookup, parameters = next(q for q in statements if "FROM generations" in q[0])
    with engine.connect() as conn:
        if engine.dialect.name == "sqlite":
            plan = conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {lookup}", parameters).all()
            # a range of an index that leads with the id: the primary key's, or the
            # lineage's (id, parent_id), whichever the planner deems cheaper
            assert re.fullmatch(
                r"SEARCH generations USING INDEX (sqlite_autoindex_generations_1|"
                r"ix_generations_id_parent_id) \(id>\? AND id<\?\)",
                plan[0][-1],
            ), plan
        else:  # a handful of rows: tell the planner a scan is dear, as in a large table
            conn.exec_driver_sql("SET enable_seqscan = off")
            plan = conn.exec_driver_sql(f"EXPLAIN {lookup}", parameters).scalars().all()
            text = "\n".join(plan)
            assert re.search(
                r"Index (Only )?Scan using (pk_generations|ix_generations_id_parent_id)", text
            ), text
            assert "Index Cond: (((id)::text >= " in text, text


def test_text_search_reads_prompts_folded_when_written(engine: sa.Engine) -> None:
    add_clips(engine, "clip_core", prompt="ÉCOLE by Core insert")
    with session_scope(engine) as s:
        s.add(Generation(id="clip_orm", backend="local", model="m", prompt="İSTANBUL by ORM",
                         seconds=1, size="640x360", status="completed"))  # fmt: skip
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with Session(engine) as s:
        folded = dict(s.execute(sa.select(Generation.id, Generation.prompt_folded)).all())

        def found(text: str) -> list[str]:
            return [g.id for g in list_generations(s, ClipFilter(text=text))]

        assert found("école") == found("ÉCOLE") == ["clip_core"]
        assert found("istanbul by orm") == ["clip_orm"]
    assert folded == {"clip_core": "école by core insert", "clip_orm": "istanbul by orm"}
    assert not any("rv_lower" in q or "lower(" in q for q in statements)


def test_the_migration_folds_existing_prompts(db_url: str) -> None:
    engine = create_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0006")
        conn.execute(
            sa.text(
                "INSERT INTO generations (id, backend, model, prompt, seconds, size, parameters,"
                " status, progress, details, created_at, updated_at, attempts) VALUES"
                " ('clip_old', 'local', 'm', 'ΟΔΟΣ at ÉCOLE', 1, '1x1', '{}', 'completed', 100,"
                " '{}', '2026-01-01 00:00:00', '2026-01-01 00:00:00', 0)"
            )
        )
    engine.dispose()
    engine = open_catalog(db_url)
    try:
        with Session(engine) as s:
            assert [g.id for g in list_generations(s, ClipFilter(text="οδοσ at école"))] == [
                "clip_old"
            ]
    finally:
        engine.dispose()


def test_filter_menus_list_each_value_once(engine: sa.Engine) -> None:
    add_clips(engine, *(f"clip_s{i}" for i in range(5)), backend="sora", model="sora-2")
    add_clips(engine, "clip_l1", "clip_l2", model="local-motion", status="failed")
    add_clips(engine, "clip_f", model="fade-1")
    with Session(engine) as s:
        assert clip_facets(s) == {
            "backend": ["local", "sora"],
            "model": ["fade-1", "local-motion", "sora-2"],
            "status": ["completed", "failed"],
        }


def test_a_search_is_compiled_once_per_words_and_never_answers_with_old_words(
    engine: sa.Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    from catalog import search

    monkeypatch.setattr(search, "FEW_MATCHES", 0)  # PostgreSQL: the set query, as SQLite's
    add_clips(engine, "clip_f1", "clip_f2", prompt="forest at dawn")
    add_clips(engine, "clip_h1", prompt="harbor at dusk")
    compiled: list[object] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: compiled.append(a[4].compiled))

    def found(text: str, sort: str = "created") -> list[str]:
        with Session(engine) as s:
            compiled.clear()
            ids = sorted(g.id for g in list_generations(s, ClipFilter(text=text, sort=sort)))
            used.setdefault((text, sort), []).append(tuple(compiled))  # kept alive: ids differ
            return ids

    used: dict[tuple[str, str], list[tuple[object, ...]]] = {}
    for _ in range(2):
        for sort in ("created", "title"):  # a window of matches on SQLite; every match
            assert found("forest", sort) == ["clip_f1", "clip_f2"]
            assert found("harbor", sort) == ["clip_h1"]
            assert found("dusk harbor", sort) == ["clip_h1"]
            assert found("dawn harbor", sort) == []
    for first, again in used.values():
        assert len(first) == len(again) and all(a is b for a, b in zip(first, again, strict=True))
    # The set of matches is compiled with its words: one statement per distinct search.
    by_title = {id(statement) for (_, sort), (first, _) in used.items() if sort == "title"
                for statement in first if "search_" in str(statement)}  # fmt: skip
    assert len(by_title) == 4
