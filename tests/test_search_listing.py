"""A text search listed in creation order finds exactly what the plain query finds.

On SQLite such a listing reads a window of the newest (or oldest) matches from the
full-text index and proves its page from the documents' time keys
(:func:`catalog.search.listed_matching`); these tests compare it, over a randomized
catalog, with gathering every match (the plain query) and with a reference computed in
Python: common and rare words, clips created out of insertion order as imports and sync
make them, ties of creation time to the microsecond and within one millisecond, a clip
whose creation time is changed afterwards, every filter, paging and both directions, and
the same for assets. They run on PostgreSQL too (``REELVAULT_TEST_PG``), where both are
the plain query, against the same reference.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from catalog import search
from catalog.asset_listing import AssetFilter, list_assets
from catalog.bulk import insert_generations
from catalog.db import open_catalog, session_scope
from catalog.models import Asset, Generation, Tag
from catalog.queries import ClipFilter, list_generations

T0 = datetime(2026, 3, 1, tzinfo=UTC)
COMMON = ("harbor", "forest", "city")
RARE = ("lighthouse", "glacier")
MODELS = ("sora-2", "sora-2-pro", "local-motion")
STATUSES = ("completed", "completed", "failed")
TAGS = ("keep", "draft")
CLIPS = 900
ASSETS = 300


def _created(rng: random.Random) -> datetime:
    """Times crowded into few milliseconds: ties to the microsecond, and half the clips
    in a few time slots (milliseconds) of the index's keys, at both ends and in between,
    where a window of matches ends amid a slot."""
    crowded = rng.random() < 0.5
    ms = rng.choice((0, 1, 150, 298, 299)) if crowded else rng.randrange(300)
    return T0 + timedelta(milliseconds=ms, microseconds=rng.choice((0, 0, 7, 500)))


def _prompt(rng: random.Random, i: int) -> str:
    words = [rng.choice(COMMON) for _ in range(rng.randrange(1, 3))]
    if rng.random() < 0.02:
        words.append(rng.choice(RARE))
    return f"{' '.join(words)} take {i}"


@pytest.fixture
def catalog(db_url: str) -> Iterator[tuple[sa.Engine, dict[str, Any]]]:
    """A catalog of clips and image files inserted in random order (not in creation
    order), some tagged; yields its engine and what each clip and file holds."""
    rng = random.Random(20261202)
    clips = [
        {
            "id": f"clip_{i:05d}",
            "backend": rng.choice(("sora", "local")),
            "model": rng.choice(MODELS),
            "prompt": _prompt(rng, i),
            "seconds": 4,
            "size": "1280x720",
            "status": rng.choice(STATUSES),
            "created_at": _created(rng),
            "updated_at": T0,
        }
        for i in range(CLIPS)
    ]
    rng.shuffle(clips)
    files = [
        Asset(id=f"img_{i:05d}", sha256=f"{i:064x}", kind="image", mime="image/jpeg",
              original_name=f"{_prompt(rng, i).replace(' ', '_')}.jpg", created_at=_created(rng))
        for i in range(ASSETS)
    ]  # fmt: skip
    rng.shuffle(files)
    tags = {c["id"]: {t for t in TAGS if rng.random() < 0.3} for c in clips}
    engine = open_catalog(db_url)
    with session_scope(engine) as session:
        for start in range(0, CLIPS, 300):  # three imports, none in creation order
            insert_generations(session, clips[start : start + 300])
        session.add_all(files)
        session.add_all(
            Tag(generation_id=clip, name=name) for clip, names in tags.items() for name in names
        )
    moved = clips[0]["id"]  # an import corrects a clip's time: it moves to the newest
    with session_scope(engine) as session:
        clip = session.get(Generation, moved)
        assert clip is not None
        clip.created_at = T0 + timedelta(milliseconds=299, microseconds=500)
    for row in clips:
        if row["id"] == moved:
            row["created_at"] = T0 + timedelta(milliseconds=299, microseconds=500)
    try:
        yield engine, {"clips": clips, "files": files, "tags": tags}
    finally:
        engine.dispose()


def _words(text: str) -> set[str]:
    return set(re.findall(r"[^\W_]+", text.lower()))


def _expected_clips(held: dict[str, Any], f: ClipFilter) -> list[str]:
    """The listing computed in Python: every word of ``f.text`` begins a word of the
    clip's prompt or tags, the other filters, creation order with ties by id."""
    found = []
    for clip in held["clips"]:
        document = _words(clip["prompt"]) | held["tags"][clip["id"]]
        if not all(any(w.startswith(s) for w in document) for s in _words(f.text or "")):
            continue
        if (f.model and clip["model"] != f.model) or (f.status and clip["status"] != f.status):
            continue
        if f.backend and clip["backend"] != f.backend:
            continue
        if f.since and clip["created_at"] < f.since:
            continue
        if not set(f.tags) <= held["tags"][clip["id"]]:
            continue
        found.append(clip)
    found.sort(key=lambda c: (c["created_at"], c["id"]), reverse=not f.oldest_first)
    ids = [c["id"] for c in found][f.offset :]
    return ids if f.limit is None else ids[: f.limit]


def _listed(engine: sa.Engine, f: ClipFilter) -> list[str]:
    with session_scope(engine) as session:
        return [clip.id for clip in list_generations(session, f)]


def _plain(engine: sa.Engine, monkeypatch: pytest.MonkeyPatch, f: Any, lister: Any) -> list[str]:
    """The listing with every match gathered (no window is ever small enough)."""
    with monkeypatch.context() as patched:
        patched.setattr(search, "LARGEST_WINDOW", 0)
        patched.setattr(search, "FEW_MATCHES", 0)  # PostgreSQL: never from the ids
        with session_scope(engine) as session:
            return [row.id for row in lister(session, f)]


FILTERS = [
    ClipFilter(text=word, limit=limit)
    for word in (*COMMON, *RARE, "h", "ci", "fo", "take", "take 1", "nowhere")
    for limit in (1, 7, 50)
] + [
    ClipFilter(text="harbor", model="sora-2", status="completed", limit=20),
    ClipFilter(text="forest city", backend="local", tags=("keep",), limit=10),
    ClipFilter(text="Forest", model="local-motion", status="failed", limit=5, offset=3),
    ClipFilter(text="city", since=T0 + timedelta(milliseconds=150), limit=30),
    ClipFilter(text="h", limit=25, oldest_first=True),
    ClipFilter(text="glacier", limit=3, oldest_first=True),
    ClipFilter(text="draft", limit=40),
    ClipFilter(text="harbor", limit=None),
    ClipFilter(text="forest", limit=0),
]


@pytest.mark.parametrize("few", [5_000, 40], ids=lambda few: f"few={few}")
@pytest.mark.parametrize("window", [(256, 2048), (4, 64), (2, 2)], ids=str)
def test_a_text_listing_is_exact(
    catalog, monkeypatch: pytest.MonkeyPatch, window, few: int
) -> None:
    """Every filter, with windows that hold the whole catalog, that must grow several
    times, and that give up at once and gather every match; on PostgreSQL, with rare
    words listed from their matches' ids and common ones (past ``few``) walked."""
    engine, held = catalog
    monkeypatch.setattr(search, "FEW_MATCHES", few)
    monkeypatch.setattr(search, "FIRST_WINDOW", window[0])
    monkeypatch.setattr(search, "LARGEST_WINDOW", window[1])
    for f in FILTERS:
        listed = _listed(engine, f)
        assert listed == _expected_clips(held, f), f
        assert listed == _plain(engine, monkeypatch, f, list_generations), f
    assert len(_listed(engine, ClipFilter(text="harbor", limit=None))) > 300  # common
    assert 0 < len(_listed(engine, ClipFilter(text="lighthouse", limit=None))) < 40  # rare


@pytest.mark.parametrize("window", [(256, 2048), (4, 64)], ids=str)
def test_paging_through_a_text_listing_by_cursor(catalog, monkeypatch, window) -> None:
    """A cursor (keyset paging) and the provenance filter combine with the text search."""
    engine, held = catalog
    monkeypatch.setattr(search, "FIRST_WINDOW", window[0])
    monkeypatch.setattr(search, "LARGEST_WINDOW", window[1])
    for oldest_first in (False, True):
        first = ClipFilter(text="forest", status="completed", limit=37, oldest_first=oldest_first)
        pages, f = [], first
        while page := _listed(engine, f):
            assert page == _plain(engine, monkeypatch, f, list_generations)
            pages += page
            f = replace(first, cursor=page[-1])
        assert pages == _expected_clips(held, replace(first, limit=None))
    f = ClipFilter(text="city", provenance="unchecked", model="sora-2", limit=15)
    assert _listed(engine, f) == _expected_clips(held, replace(f, provenance=None))


def _expected_files(held: dict[str, Any], f: AssetFilter) -> list[str]:
    searched = _words(f.text or "")
    found = [
        a
        for a in held["files"]
        if all(any(w.startswith(s) for w in _words(a.original_name)) for s in searched)
    ]
    found.sort(key=lambda a: (a.created_at, a.id), reverse=True)
    ids = [a.id for a in found][f.offset :]
    return ids if f.limit is None else ids[: f.limit]


@pytest.mark.parametrize("window", [(256, 2048), (4, 64)], ids=str)
@pytest.mark.parametrize("few", [5_000, 5], ids=lambda few: f"few={few}")
def test_an_assets_text_listing_is_exact(catalog, monkeypatch, window, few: int) -> None:
    """``assets --text`` (and the web page's files) take the same path."""
    engine, held = catalog
    monkeypatch.setattr(search, "FIRST_WINDOW", window[0])
    monkeypatch.setattr(search, "LARGEST_WINDOW", window[1])
    monkeypatch.setattr(search, "FEW_MATCHES", few)
    for text in (*COMMON, *RARE, "h", "jpg", "take 2"):
        for limit, offset in ((1, 0), (20, 0), (20, 5), (None, 0)):
            f = AssetFilter(text=text, limit=limit, offset=offset)
            with session_scope(engine) as session:
                listed = [a.id for a in list_assets(session, f)]
            assert listed == _expected_files(held, f), f
            assert listed == _plain(engine, monkeypatch, f, list_assets), f


def test_the_upgrade_keys_an_existing_index_by_creation_time(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Migration 0011 rebuilds an index whose document ids followed no creation order
    (here: the reverse of it), so windows of matches find the newest clips."""
    from alembic import command

    from catalog.db import _alembic_config, create_engine

    engine = create_engine(db_url)
    with engine.begin() as conn:
        command.upgrade(_alembic_config(conn), "0009_organise")
    with session_scope(engine) as session:
        insert_generations(session, [
            {"id": f"clip_{i:02d}", "backend": "local", "model": "m", "prompt": f"bay take {i}",
             "seconds": 1, "size": "640x360", "status": "completed",
             "created_at": T0 + timedelta(seconds=(i * 7) % 20), "updated_at": T0}
            for i in range(20)
        ])  # fmt: skip
    sqlite = engine.dialect.name == "sqlite"
    if sqlite:  # as an index built before 0011: ids in no order of time
        with engine.begin() as conn:
            conn.exec_driver_sql("UPDATE search_documents SET id = -id")
            for name in ("search_generations_au_created", "search_assets_au_created"):
                conn.exec_driver_sql(f"DROP TRIGGER {name}")
    engine.dispose()
    engine = open_catalog(db_url)  # upgrades to every head
    try:
        if sqlite:
            with engine.connect() as conn:
                keyed = conn.exec_driver_sql(
                    "SELECT d.generation_id FROM search_documents AS d "
                    "JOIN generations AS g ON g.id = d.generation_id ORDER BY d.id"
                ).scalars()
                by_time = conn.exec_driver_sql(
                    "SELECT id FROM generations ORDER BY created_at, id"
                ).scalars()
                assert list(keyed) == list(by_time)
        monkeypatch.setattr(search, "FIRST_WINDOW", 2)
        newest = [f"clip_{i:02d}" for i in (17, 14, 11)]  # created 19, 18 and 17 s after T0
        assert _listed(engine, ClipFilter(text="bay", limit=3)) == newest
    finally:
        engine.dispose()
