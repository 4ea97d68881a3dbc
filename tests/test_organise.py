"""Organising the library through the CLI: tags, annotations, sorting, search, ``assets``."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from catalog.search import MAX_SEARCH_TEXT
from tests.conftest import textured_image
from tests.test_cli import generate


def ids(run, *args: str) -> list[str]:
    return [row["id"] for row in json.loads(run(*args, "--json").stdout)]


@pytest.fixture
def harbor(tmp_path: Path) -> Path:
    return textured_image(tmp_path / "harbor.jpg", 640, 360, seed=3)


@pytest.fixture
def three(run, still: Path, harbor: Path) -> dict[str, dict]:
    """Three clips, oldest first: two from still.jpg, one from harbor.jpg."""
    return {
        "pan": generate(run, still, prompt="pan right over the bay"),
        "tilt": generate(run, still, prompt="tilt down slowly"),
        "zoom": generate(run, harbor, prompt="zoom in on the boats"),
    }


def test_tag_and_untag_clips_and_assets(run, three):
    pan, zoom = three["pan"], three["zoom"]
    out = run("tag", pan["id"], "Sci Fi", "keeper", "keeper").stdout
    assert out.split() == [pan["id"], "keeper", "sci-fi"]
    run("tag", zoom["id"][:12], "keeper")
    still_id = pan["source_asset_id"]
    assert json.loads(run("tag", still_id, "Reference", "--json").stdout)["tags"] == ["reference"]

    assert ids(run, "list", "--tag", "KEEPER") == [zoom["id"], pan["id"]]
    assert ids(run, "list", "--tag", "keeper", "--tag", "sci_fi") == [pan["id"]]
    assert ids(run, "list", "--tag", "nothing") == []
    assert ids(run, "assets", "--tag", "reference") == [still_id]
    listed = json.loads(run("list", "--tag", "sci-fi", "--json").stdout)
    assert listed[0]["tags"] == ["keeper", "sci-fi"]
    assert "#sci-fi" in run("list").stdout

    exported = run("export", "--format", "jsonl", "--tag", "keeper").stdout.splitlines()
    assert [json.loads(line)["id"] for line in exported] == [pan["id"], zoom["id"]]

    assert run("untag", pan["id"], "keeper", "never-there").stdout.split() == [pan["id"], "sci-fi"]
    assert ids(run, "list", "--tag", "keeper") == [zoom["id"]]
    bad = run("tag", pan["id"], "!!!", expect=2)
    assert "is not a tag" in bad.output and "Traceback" not in bad.output


def test_annotate_and_sort_by_title_and_rating(run, three):
    pan, tilt, zoom = three["pan"], three["tilt"], three["zoom"]
    assert ids(run, "list") == [zoom["id"], tilt["id"], pan["id"]]  # newest first
    run("annotate", tilt["id"], "--title", "Alpha shot", "--rating", "2")
    run("annotate", zoom["id"], "--title", "beta shot", "--note", "the good one")
    shown = json.loads(run("annotate", pan["id"], "--rating", "5", "--json").stdout)
    assert shown == {"id": pan["id"], "tags": [], "title": None, "note": None, "rating": 5}

    assert ids(run, "list", "--sort", "title") == [tilt["id"], zoom["id"], pan["id"]]
    assert ids(run, "list", "--sort", "rating") == [pan["id"], tilt["id"], zoom["id"]]
    assert ids(run, "list", "--sort", "rating", "-n", "1") == [pan["id"]]
    listed = {c["id"]: c for c in json.loads(run("list", "--json").stdout)}
    assert listed[zoom["id"]]["note"] == "the good one"
    assert listed[tilt["id"]]["title"] == "Alpha shot" and listed[tilt["id"]]["rating"] == 2

    shown = run("show", zoom["id"]).stdout
    assert "title     beta shot" in shown and "note      the good one" in shown
    assert json.loads(run("show", tilt["id"], "--json").stdout)["rating"] == 2

    run("annotate", tilt["id"], "--clear-rating", "--title", "")
    assert ids(run, "list", "--sort", "title") == [zoom["id"], tilt["id"], pan["id"]]
    assert ids(run, "list", "--sort", "rating") == [pan["id"], zoom["id"], tilt["id"]]
    assert "rating" in run("annotate", pan["id"], "--rating", "6", expect=2).output
    assert "give --title" in run("annotate", pan["id"], expect=2).output


def test_text_searches_prompt_title_note_file_name_and_tags(run, three):
    pan, tilt, zoom = three["pan"], three["tilt"], three["zoom"]
    assert ids(run, "list", "--text", "harbor") == [zoom["id"]]  # made from harbor.jpg
    assert ids(run, "list", "--text", "HARB") == [zoom["id"]]  # words match by prefix
    assert ids(run, "list", "--text", "still") == [tilt["id"], pan["id"]]
    run("annotate", pan["id"], "--title", "Golden hour", "--note", "Reshoot with drone")
    run("tag", tilt["id"], "night-shot")
    assert ids(run, "list", "--text", "golden") == [pan["id"]]
    assert ids(run, "list", "--text", "drone reshoot") == [pan["id"]]
    assert ids(run, "list", "--text", "night") == [tilt["id"]]
    assert ids(run, "list", "--text", "slowly night") == [tilt["id"]]  # prompt and tag
    assert ids(run, "list", "--text", "golden night") == []  # every word must match
    assert ids(run, "list", "--text", "arbor") == []  # not inside words
    run("annotate", pan["id"], "--title", "")
    assert ids(run, "list", "--text", "golden") == []  # the index follows changes
    assert ids(run, "assets", "--text", "harbor") == [zoom["source_asset_id"]]

    too_long = run("list", "--text", "x" * (MAX_SEARCH_TEXT + 1), expect=2)
    assert f"the limit is {MAX_SEARCH_TEXT}" in too_long.output
    assert len(too_long.output.strip().splitlines()) == 1


def test_deleting_a_clip_takes_its_tags_notes_and_search_entry(run, app, three):
    """Whoever removes a row, the database cascades: nothing organises or finds a ghost."""
    from catalog.models import Generation, PolicyDecisionRecord

    pan = three["pan"]
    run("tag", pan["id"], "gone")
    run("annotate", pan["id"], "--title", "vanishing")
    with app.session() as session:
        decisions = PolicyDecisionRecord.generation_id == pan["id"]
        session.execute(sa.delete(PolicyDecisionRecord).where(decisions))  # type: ignore[arg-type]
        session.execute(sa.delete(Generation).where(Generation.id == pan["id"]))  # type: ignore[arg-type]
    with app.engine.connect() as conn:
        for table in ("tags", "annotations"):
            assert conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one() == 0
        left = conn.execute(
            sa.text("SELECT count(*) FROM search_documents WHERE generation_id = :g"),
            {"g": pan["id"]},
        ).scalar_one()
    assert left == 0
    assert ids(run, "list", "--text", "vanishing") == []


def test_assets_lists_every_file_with_a_lineage_summary(run, three, tmp_path: Path):
    pan, tilt, zoom = three["pan"], three["tilt"], three["zoom"]
    remix = json.loads(run("remix", pan["id"], "-p", "pan left", "--json").stdout)
    rows = {a["id"]: a for a in json.loads(run("assets", "-n", "0", "--json").stdout)}
    still, harbor_still = pan["source_asset_id"], zoom["source_asset_id"]
    assert rows[still]["children"] == 2 and rows[still]["parents"] == 0
    assert rows[still]["original_name"] == "still.jpg"
    assert rows[harbor_still]["children"] == 1
    pan_video = rows[pan["video"]["id"]]
    assert (pan_video["parents"], pan_video["children"], pan_video["clip"]) == (1, 1, pan["id"])
    remix_video = rows[remix["video"]["id"]]
    assert (remix_video["parents"], remix_video["children"]) == (2, 0)
    assert {r["kind"] for r in rows.values()} == {"image", "video"}  # no thumbnails
    assert pan["thumbnail"]["id"] not in rows

    assert set(ids(run, "assets", "--kind", "image")) == {still, harbor_still}
    assert ids(run, "assets", "--mime", "image/jpeg", "--kind", "image", "--text", "still") == [
        still
    ]
    assert len(ids(run, "assets", "--kind", "video")) == 4
    assert ids(run, "assets", "--provenance", "trusted") == []
    run("annotate", tilt["video"]["id"], "--rating", "4")
    assert ids(run, "assets", "--sort", "rating", "-n", "1") == [tilt["video"]["id"]]
    table = run("assets").stdout
    assert still in table and "still.jpg" in table and "parents" in table


def test_upgrading_an_existing_catalog_indexes_what_it_holds(db_url: str):
    """Migration 0009 fills the index from the rows already there, and a trigger a later
    migration dropped with its table (SQLite rebuilds tables to alter them) comes back."""
    from catalog import search_schema
    from catalog.db import open_catalog, session_scope
    from catalog.queries import ClipFilter, list_generations
    from tests.test_migrations import seed_first_revision

    seed_first_revision(db_url)
    engine = open_catalog(db_url)
    try:
        with session_scope(engine) as session:
            found = list_generations(session, ClipFilter(text="P", limit=None))
            assert sorted(g.id for g in found) == ["clip_0", "clip_1", "clip_2"]
        if engine.dialect.name == "sqlite":
            with engine.begin() as conn:
                conn.exec_driver_sql("DROP TRIGGER search_generations_ai")
                search_schema.ensure_triggers(conn)
                names = conn.exec_driver_sql(
                    "SELECT name FROM sqlite_master WHERE type = 'trigger'"
                ).scalars()
                assert "search_generations_ai" in set(names)
    finally:
        engine.dispose()


def test_an_export_carries_what_a_person_added(run, three):
    """Tags, title, note and rating travel with an exported clip, in JSONL and CSV."""
    pan, tilt = three["pan"], three["tilt"]
    run("tag", pan["id"], "keeper", "Sci Fi")
    run("annotate", pan["id"], "--title", "=Bay pan", "--note", "first take", "--rating", "4")
    records = {
        r["id"]: r for r in map(json.loads, run("export", "--format", "jsonl").stdout.splitlines())
    }
    assert {k: records[pan["id"]][k] for k in ("tags", "title", "note", "rating")} == {
        "tags": ["keeper", "sci-fi"], "title": "=Bay pan", "note": "first take", "rating": 4,
    }  # fmt: skip
    assert records[tilt["id"]]["tags"] == [] and records[tilt["id"]]["rating"] is None
    import csv
    import io

    exported = io.StringIO(run("export", "--format", "csv").stdout)
    rows = {r["id"]: r for r in csv.DictReader(exported)}
    assert rows[pan["id"]]["tags"] == "keeper sci-fi" and rows[pan["id"]]["rating"] == "4"
    assert rows[pan["id"]]["title"] == "'=Bay pan"  # never a spreadsheet formula
    assert rows[tilt["id"]]["tags"] == "" and rows[tilt["id"]]["title"] == ""
