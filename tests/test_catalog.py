from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlmodel import Session, SQLModel, select

from catalog.db import (
    _alembic_config,
    create_engine,
    current_revisions,
    head_revisions,
    open_catalog,
    session_scope,
)
from catalog.lineage import (
    LINEAGE_FIELDS,
    _narrow_statement,
    clips_from_source,
    lineage,
    lineage_rows,
    source_lineage_rows,
)
from catalog.models import Asset, Generation
from catalog.queries import ClipFilter, get_generation, list_generations, resolve
from catalog.records import ensure_asset
from catalog.search_schema import outside_the_models
from core.api.errors import AmbiguousIdError, NotFoundError

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def engine(db_url: str) -> sa.Engine:
    engine = open_catalog(db_url)
    yield engine
    engine.dispose()


def add_asset(session: Session, sha: str, kind: str = "image") -> Asset:
    prefix = {"image": "img_", "video": "vid_"}[kind]
    return ensure_asset(
        session,
        Asset(
            id=prefix + sha, sha256=sha, kind=kind, mime="image/jpeg", bytes=1,
            stored_path=f"{sha[:2]}/{sha}",
        ),
    )  # fmt: skip


def add_clip(
    session: Session,
    clip_id: str,
    parent: str | None = None,
    minutes: int = 0,
    **fields: object,
) -> Generation:
    values: dict[str, object] = {
        "backend": "local", "model": "local-motion", "prompt": f"prompt of {clip_id}",
        "seconds": 4, "size": "1280x720", "status": "completed",
    }  # fmt: skip
    values.update(fields)
    generation = Generation(
        id=clip_id,
        parent_id=parent,
        relation="remix_of" if parent else None,
        created_at=T0 + timedelta(minutes=minutes),
        **values,
    )
    session.add(generation)
    session.flush()
    return generation


def test_a_new_catalog_is_migrated_to_head(engine: sa.Engine) -> None:
    assert current_revisions(engine) == head_revisions() != frozenset()


def test_the_models_and_the_migrations_describe_the_same_schema(engine: sa.Engine) -> None:
    with engine.connect() as conn:
        # The search index (FTS5 or a GIN index, per database) is no SQLModel table.
        context = MigrationContext.configure(conn, opts={"include_name": outside_the_models})
        diff = compare_metadata(context, SQLModel.metadata)
    assert diff == []


def test_opening_an_older_catalog_upgrades_it_and_keeps_its_rows(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    raw = sa.create_engine(url)
    with raw.begin() as conn:  # a catalog written before any migration ran: just data
        conn.execute(sa.text("CREATE TABLE notes (x TEXT)"))
        conn.execute(sa.text("INSERT INTO notes VALUES ('kept')"))
    raw.dispose()
    engine = open_catalog(url)
    try:
        assert current_revisions(engine) == head_revisions()
        with engine.connect() as conn:
            assert conn.execute(sa.text("SELECT x FROM notes")).scalar_one() == "kept"
            tables = sa.inspect(conn).get_table_names()
        assert {"assets", "generations", "policy_decisions", "verifications"} <= set(tables)
    finally:
        engine.dispose()


def test_reopening_at_head_changes_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'c.db'}"
    open_catalog(url).dispose()
    before = (tmp_path / "c.db").stat().st_mtime_ns
    open_catalog(url).dispose()
    assert current_revisions(sa.create_engine(url)) == head_revisions()
    assert (tmp_path / "c.db").stat().st_mtime_ns == before


def test_ids_resolve_by_any_unique_prefix(engine: sa.Engine) -> None:
    with session_scope(engine) as s:
        add_clip(s, "clip_aaaa1111")
        add_clip(s, "clip_aaab2222")
        add_asset(s, "ab" * 32)
    with session_scope(engine) as s:
        assert resolve(s, "clip_aaaa").id == "clip_aaaa1111"
        assert resolve(s, "CLIP_AAAB").id == "clip_aaab2222"
        assert resolve(s, "img_abab").id == "img_" + "ab" * 32
        with pytest.raises(AmbiguousIdError, match=r"clip_aaaa1111.*clip_aaab2222"):
            resolve(s, "clip_aaa")
        with pytest.raises(NotFoundError):
            resolve(s, "clip_zzz")
        with pytest.raises(NotFoundError, match="asset, not a clip"):
            get_generation(s, "img_ab")


def test_prefix_search_treats_like_wildcards_literally(engine: sa.Engine) -> None:
    with session_scope(engine) as s:
        add_clip(s, "clip_x1")
    with session_scope(engine) as s, pytest.raises(NotFoundError):
        resolve(s, "clip%")


def test_lineage_returns_ancestors_and_descendants_at_any_depth(engine: sa.Engine) -> None:
    with session_scope(engine) as s:
        add_clip(s, "clip_root")
        add_clip(s, "clip_a", parent="clip_root", minutes=1)
        add_clip(s, "clip_b", parent="clip_a", minutes=2)
        add_clip(s, "clip_c", parent="clip_b", minutes=3)
        add_clip(s, "clip_b2", parent="clip_a", minutes=4)
        add_clip(s, "clip_other", parent="clip_root", minutes=5)  # a sibling branch
    with session_scope(engine) as s:
        nodes = [(n.generation.id, n.depth) for n in lineage(s, "clip_b")]
        assert nodes == [("clip_root", -2), ("clip_a", -1), ("clip_b", 0), ("clip_c", 1)]
        nodes = [(n.generation.id, n.depth) for n in lineage(s, "clip_a")]
        assert nodes == [
            ("clip_root", -1), ("clip_a", 0), ("clip_b", 1), ("clip_b2", 1), ("clip_c", 2),
        ]  # fmt: skip


def test_lineage_is_one_query_even_for_a_deep_chain(engine: sa.Engine) -> None:
    depth = 300
    with session_scope(engine) as s:
        add_clip(s, "clip_0")
        for i in range(1, depth):
            add_clip(s, f"clip_{i}", parent=f"clip_{i - 1}", minutes=i)
    statements: list[str] = []
    sa.event.listen(engine, "before_cursor_execute", lambda *a: statements.append(a[2]))
    with session_scope(engine) as s:
        nodes = lineage(s, "clip_150")
    assert len(nodes) == depth
    assert nodes[0].generation.id == "clip_0" and nodes[-1].depth == depth - 151
    queries = [q for q in statements if q.lstrip().upper().startswith(("SELECT", "WITH"))]
    assert len(queries) == 1 and "RECURSIVE" in queries[0].upper()


def test_lineage_rows_hold_each_time_as_the_iso_text_of_the_clips_time(
    engine: sa.Engine,
) -> None:
    """The database writes a lineage's times as text (no datetime made per clip): the very
    text ``isoformat()`` gives for the time the catalog reads back, fraction or none, also
    when the PostgreSQL session's zone is not UTC."""
    micros = [0, 1, 500_000, 999_999, 0]
    with session_scope(engine) as s:
        for i, micro in enumerate(micros):
            clip = add_clip(s, f"clip_{i}", parent=f"clip_{i - 1}" if i else None, minutes=i)
            clip.created_at += timedelta(microseconds=micro, days=400 * i)
    with session_scope(engine) as s:
        if engine.dialect.name == "postgresql":
            s.connection().exec_driver_sql("SET LOCAL TIME ZONE 'Asia/Kolkata'")
        rows = [dict(zip(LINEAGE_FIELDS, row, strict=True)) for row in lineage_rows(s, "clip_2")]
        assert [r["depth"] for r in rows] == [-2, -1, 0, 1, 2]
        for row in rows:
            clip = s.get(Generation, row["id"])
            assert clip is not None
            assert row["created_at"] == clip.created_at.isoformat()
            assert row["parent_id"] == clip.parent_id and row["prompt"] == clip.prompt
    assert {r["created_at"][19:] for r in rows} == {
        "+00:00", ".000001+00:00", ".500000+00:00", ".999999+00:00",
    }  # fmt: skip


def test_narrow_lineage_rows_come_in_the_full_rows_order(engine: sa.Engine) -> None:
    """The narrow rows are ordered in Python, not by SQL, on either database: the same
    order as the full-row query's ``ORDER BY depth, created_at, id`` (in PostgreSQL's
    collation there), for siblings stored out of age
    order, siblings of the same instant (the id decides), fractions of a second, and for
    a still's clips as for a clip's family."""
    sha = "ef" * 32
    with session_scope(engine) as s:
        add_asset(s, sha)
        add_clip(s, "clip_root", minutes=0, source_asset_id="img_" + sha)
        for name, minutes in (("clip_late", 9), ("clip_zz", 3), ("clip_aa", 3), ("clip_mid", 5)):
            add_clip(s, name, parent="clip_root", minutes=minutes)
        add_clip(s, "clip_frac", parent="clip_root", minutes=3).created_at += timedelta(
            microseconds=1
        )
        add_clip(s, "clip_under_late", parent="clip_late", minutes=10)
        add_clip(s, "clip_under_aa", parent="clip_aa", minutes=11)
        add_clip(s, "clip_second_root", minutes=1, source_asset_id="img_" + sha)
    at_id, at_depth = LINEAGE_FIELDS.index("id"), LINEAGE_FIELDS.index("depth")
    with session_scope(engine) as s:
        for target in ("clip_root", "clip_aa", "clip_under_aa"):
            narrow = [(row[at_id], row[at_depth]) for row in lineage_rows(s, target)]
            assert narrow == [(n.generation.id, n.depth) for n in lineage(s, target)]
        narrow = [(row[at_id], row[at_depth]) for row in source_lineage_rows(s, "img_" + sha)]
        full = [(n.generation.id, n.depth) for n in clips_from_source(s, "img_" + sha)]
        assert narrow == full
        assert full[:7] == [
            ("clip_root", 0), ("clip_second_root", 0), ("clip_aa", 1), ("clip_zz", 1),
            ("clip_frac", 1), ("clip_mid", 1), ("clip_late", 1),
        ]  # fmt: skip


def test_each_step_of_a_lineage_reads_only_an_index(tmp_path: Path) -> None:
    """Up to a parent by id, down to children by parent: each recursive step of the narrow
    query is answered from a covering index, in SQLite's plan for a catalog analyzed as
    its upgrade (``ANALYZE``) or ``PRAGMA optimize`` leaves it. (PostgreSQL's index-only
    scans depend on its visibility map, which a test's fresh table lacks.)"""
    engine = open_catalog(f"sqlite:///{tmp_path / 'plan.db'}")
    with session_scope(engine) as s:
        for i in range(3):
            add_clip(s, f"clip_{i}", parent=f"clip_{i - 1}" if i else None, minutes=i)
    with engine.connect() as connection:
        connection.exec_driver_sql("ANALYZE")
        sql = str(_narrow_statement("family", "sqlite")).replace(":seed", "?")
        plan = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + sql, ("clip_1", "clip_1")).all()
    engine.dispose()
    steps = {row[0]: row[3] for row in plan}
    recursive = [row[3] for row in plan if steps.get(row[1]) == "RECURSIVE STEP"]
    assert [step for step in recursive if step.startswith("SEARCH")] == [
        "SEARCH g USING COVERING INDEX ix_generations_id_parent_id (id=?)",
        "SEARCH g USING COVERING INDEX ix_generations_parent_id_id (parent_id=?)",
    ], plan


def test_clips_from_a_source_include_their_remixes(engine: sa.Engine) -> None:
    sha = "cd" * 32
    with session_scope(engine) as s:
        add_asset(s, sha)
        add_clip(s, "clip_one", source_asset_id="img_" + sha)
        add_clip(s, "clip_two", parent="clip_one", minutes=1, source_asset_id="img_" + sha)
        add_clip(s, "clip_unrelated", minutes=2)
    with session_scope(engine) as s:
        assert [(n.generation.id, n.depth) for n in clips_from_source(s, "img_" + sha)] == [
            ("clip_one", 0),
            ("clip_two", 1),
        ]


def test_list_filters_combine_and_sort_newest_first(engine: sa.Engine) -> None:
    with session_scope(engine) as s:
        add_clip(s, "clip_1", minutes=0, prompt="Pan right over the HARBOR")
        add_clip(s, "clip_2", minutes=10, prompt="tilt up", model="other", backend="fade")
        add_clip(s, "clip_3", minutes=20, prompt="harbor at night", status="failed")
        add_clip(s, "clip_4", minutes=30, prompt="100% harbor")

    def ids(**kw: object) -> list[str]:
        with session_scope(engine) as s:
            return [g.id for g in list_generations(s, ClipFilter(**kw))]

    assert ids() == ["clip_4", "clip_3", "clip_2", "clip_1"]
    assert ids(text="harbor") == ["clip_4", "clip_3", "clip_1"]
    assert ids(text="100%") == ["clip_4"]
    assert ids(status="failed") == ["clip_3"]
    assert ids(model="other") == ids(backend="fade") == ["clip_2"]
    assert ids(since=T0 + timedelta(minutes=10), until=T0 + timedelta(minutes=30)) == [
        "clip_3",
        "clip_2",
    ]
    assert ids(limit=2) == ["clip_4", "clip_3"]
    assert ids(text="harbor", status="completed") == ["clip_4", "clip_1"]


def test_timestamps_come_back_timezone_aware(engine: sa.Engine) -> None:
    with session_scope(engine) as s:
        add_clip(s, "clip_t")
    with session_scope(engine) as s:
        assert get_generation(s, "clip_t").created_at == T0


def test_ensure_asset_is_idempotent(engine: sa.Engine) -> None:
    with session_scope(engine) as s:
        first = add_asset(s, "ef" * 32)
        again = add_asset(s, "ef" * 32)
    assert first.id == again.id
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM assets")).scalar_one() == 1


def test_one_row_per_listed_job_and_older_duplicates_are_separated(db_url: str) -> None:
    """Catalogs written before the unique index may hold two rows for one sora job (two
    syncs at once): the upgrade keeps every row, and the job id on the one with the clip.
    Jobs that identical requests share (the local backend's) stay shared."""
    raw = create_engine(db_url)
    with raw.begin() as conn:
        for branch in ("0002", "0003", "0004", "0005"):  # every head before 0006
            command.upgrade(_alembic_config(conn), branch)
    rows = sa.table(
        "generations",
        *(sa.column(name) for name in ("id", "backend", "model", "prompt", "seconds", "size",
                                       "status", "progress", "remote_job_id", "output_asset_id",
                                       "created_at", "updated_at", "error_code", "attempts")),
        sa.column("parameters", sa.JSON),
        sa.column("details", sa.JSON),
    )  # fmt: skip
    assets = sa.table("assets", *(sa.column(n) for n in ("id", "kind", "mime", "created_at")))
    with raw.begin() as conn:
        conn.execute(assets.insert().values(id="vid_1", kind="video", mime="video/mp4",
                                            created_at=T0))  # fmt: skip
        for minutes, (clip_id, backend, job, status, output, imported) in enumerate([
            ("clip_import", "sora", "video_1@openai", "in_progress", None, True),  # still polled
            ("clip_failed", "sora", "video_1@openai", "failed", None, False),
            ("clip_made", "sora", "video_1@openai", "completed", "vid_1", False),  # has the clip
            ("clip_other", "sora", "video_2@openai", "completed", None, False),
            ("clip_local1", "local", "local_abc", "completed", None, False),  # the same request
            ("clip_local2", "local", "local_abc", "completed", None, False),  # made twice
        ]):  # fmt: skip
            conn.execute(rows.insert().values(
                id=clip_id, backend=backend, model="m", prompt="p", seconds=4, size="1280x720",
                status=status, progress=0, remote_job_id=job, output_asset_id=output,
                created_at=T0 + timedelta(minutes=minutes), updated_at=T0,
                error_code="x" if status == "failed" else None, attempts=0,
                parameters={"imported": True} if imported else {}, details={},
            ))  # fmt: skip
    raw.dispose()
    engine = open_catalog(db_url)
    try:
        with session_scope(engine) as s:
            found = {g.id: g for g in s.exec(select(Generation))}
            jobs = {i: (g.remote_job_id, g.listed_job_id) for i, g in found.items()}
            assert jobs == {
                "clip_made": ("video_1@openai", "video_1@openai"),
                "clip_import": (None, None),
                "clip_failed": (None, None),
                "clip_other": ("video_2@openai", "video_2@openai"),
                "clip_local1": ("local_abc", None),
                "clip_local2": ("local_abc", None),
            }
            imported = found["clip_import"]
            assert (imported.status, imported.error_code) == ("failed", "duplicate_job")
            assert "clip_made" in imported.error_message
            assert (found["clip_failed"].status, found["clip_failed"].error_code) == ("failed", "x")
        with pytest.raises(sa.exc.IntegrityError), session_scope(engine) as s:
            job = "video_1@openai"
            add_clip(s, "clip_again", remote_job_id=job, listed_job_id=job)
        with session_scope(engine) as s:  # unlisted jobs may be shared; NULLs are many
            add_clip(s, "clip_local3", remote_job_id="local_abc")
            add_clip(s, "clip_n1")
            add_clip(s, "clip_n2")
    finally:
        engine.dispose()
