"""Bulk ingest (:func:`catalog.bulk.insert_generations`) writes what the ORM wrote.

The same clips go into two empty catalogs, one through ORM objects as before and one
through the bulk insert; every column of every row, the lineage and the search index
must come out the same. A batch that fails leaves none of its rows.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from catalog.bulk import insert_generations
from catalog.db import open_catalog, session_scope
from catalog.lineage import LINEAGE_FIELDS, lineage_rows
from catalog.models import Asset, Generation
from catalog.queries import ClipFilter, list_generations
from tests.conftest import fresh_catalog_url

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


def clips() -> list[dict[str, Any]]:
    """A source still's clip, a remix chain under it, and a clip with only the required
    fields (the rest from the model's defaults)."""
    full = [
        {
            "id": f"clip_bulk{i:03d}",
            "backend": "sora",
            "model": "sora-2",
            "prompt": f"ÉCOLE at dusk, take {i}" if i % 2 else f"İSTANBUL harbor, take {i}",
            "seconds": 4,
            "size": "1280x720",
            "parameters": {"seconds": 4, "seed": i},
            "status": "completed",
            "progress": 100,
            "source_asset_id": "img_bulk",
            "parent_id": f"clip_bulk{i - 1:03d}" if i else None,
            "relation": "remix_of" if i else None,
            "details": {"note": i},
            "created_at": T0 + timedelta(seconds=i),
            "updated_at": T0 + timedelta(seconds=i),
            "completed_at": T0 + timedelta(seconds=i, milliseconds=250),
        }
        for i in range(5)
    ]
    bare = {
        "id": "clip_bare",
        "backend": "local",
        "model": "local-motion",
        "prompt": "bare minimum",
        "seconds": 1,
        "size": "640x360",
        "status": "failed",
        "created_at": T0,
        "updated_at": T0,
    }
    return [*full, bare]


def _source(session: Any) -> None:
    session.add(Asset(id="img_bulk", sha256="b" * 64, kind="image", mime="image/jpeg",
                      original_name="lighthouse.jpg", created_at=T0))  # fmt: skip
    session.flush()


def _contents(engine: sa.Engine) -> dict[str, Any]:
    with engine.connect() as conn:
        generations = conn.execute(
            sa.select(Generation.__table__).order_by("id")  # type: ignore[arg-type]
        ).all()
        documents = conn.exec_driver_sql(
            "SELECT generation_id, body FROM search_documents"
            " WHERE generation_id IS NOT NULL ORDER BY generation_id"
        ).all()
    with session_scope(engine) as session:
        lineage = lineage_rows(session, "clip_bulk002")
        found = {
            text: [g.id for g in list_generations(session, ClipFilter(text=text))]
            for text in ("école", "istanbul", "lighthouse", "bare")
        }
    return {"generations": generations, "documents": documents, "lineage": lineage,
            "found": found}  # fmt: skip


@pytest.fixture
def two_catalogs(db_url: str, tmp_path: Path) -> Iterator[tuple[sa.Engine, sa.Engine]]:
    with fresh_catalog_url(tmp_path / "other") as other_url:
        (tmp_path / "other").mkdir(exist_ok=True)
        engines = open_catalog(db_url), open_catalog(other_url)
        try:
            yield engines
        finally:
            for engine in engines:
                engine.dispose()


def test_bulk_ingest_writes_the_rows_the_orm_wrote(
    two_catalogs: tuple[sa.Engine, sa.Engine],
) -> None:
    through_orm, in_bulk = two_catalogs
    with session_scope(through_orm) as session:
        _source(session)
        session.add_all(Generation(**row) for row in clips())
    with session_scope(in_bulk) as session:
        _source(session)
        assert insert_generations(session, clips()) == len(clips())
    orm, bulk = _contents(through_orm), _contents(in_bulk)
    assert bulk == orm
    at_id = LINEAGE_FIELDS.index("id")
    assert [row[at_id] for row in bulk["lineage"]] == [f"clip_bulk{i:03d}" for i in range(5)]
    assert bulk["found"]["école"] == ["clip_bulk003", "clip_bulk001"]
    assert bulk["found"]["istanbul"] == ["clip_bulk004", "clip_bulk002", "clip_bulk000"]
    assert len(bulk["found"]["lighthouse"]) == 5  # the source still's name, for each clip
    bare = next(row for row in bulk["generations"] if row.id == "clip_bare")
    assert (bare.parameters, bare.details, bare.progress, bare.attempts) == ({}, {}, 0, 0)


def test_a_failing_batch_leaves_none_of_its_rows(db_url: str) -> None:
    engine = open_catalog(db_url)
    try:
        rows = clips()
        rows[3]["parent_id"] = "clip_nowhere"  # a foreign key that points at nothing
        with pytest.raises(sa.exc.IntegrityError), session_scope(engine) as session:
            _source(session)
            insert_generations(session, rows)
        with pytest.raises(sa.exc.IntegrityError), session_scope(engine) as session:
            insert_generations(session, [clips()[-1], clips()[-1]])  # one id twice
        with engine.connect() as conn:
            counts = [
                conn.exec_driver_sql(f"SELECT count(*) FROM {table}").scalar_one()
                for table in ("generations", "assets", "search_documents")
            ]
        assert counts == [0, 0, 0]
    finally:
        engine.dispose()


def test_bad_rows_are_refused_before_anything_is_sent(db_url: str) -> None:
    engine = open_catalog(db_url)
    try:
        statements: list[str] = []
        sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
        missing = {k: v for k, v in clips()[-1].items() if k != "status"}
        with (
            pytest.raises(ValueError, match=r"missing fields \['status'\]"),
            session_scope(engine) as session,
        ):
            insert_generations(session, [clips()[0], missing])
        with (
            pytest.raises(ValueError, match=r"unknown fields \['colour'\]"),
            session_scope(engine) as session,
        ):
            insert_generations(session, [{**clips()[-1], "colour": "red"}])
        assert not any("INSERT" in statement for statement in statements)
        naive = {**clips()[-1], "created_at": datetime(2026, 3, 1)}
        with (
            pytest.raises(sa.exc.StatementError, match="naive datetime"),
            session_scope(engine) as session,
        ):
            insert_generations(session, [naive])
    finally:
        engine.dispose()
