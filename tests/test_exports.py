"""Exports (JSONL, CSV, PROV-JSON) and lineage formats (tree, json, dot, mermaid, prov-json)."""

from __future__ import annotations

import csv
import io
import json
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pydot
import pytest
import sqlalchemy as sa
from prov.model import (
    ProvActivity,
    ProvAgent,
    ProvAssociation,
    ProvDerivation,
    ProvDocument,
    ProvEntity,
    ProvGeneration,
    ProvUsage,
)
from sqlmodel import select

from catalog.models import Asset, Generation
from catalog.queries import ClipFilter, latest_states
from core.media.store import hash_file
from core.views import exports
from core.views import lineage as lineage_render
from tests.web_support import FAKE_SECRET, FIRST_PROMPT, OTHER_PROMPT, Library, open_library

PYDOT_PARSER = pytest.mark.filterwarnings("ignore:'setParseAction' deprecated")
"""pydot's DOT parser (used here only to check our output) still calls old pyparsing names."""


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Library]:
    with open_library(tmp_path_factory.mktemp("exports")) as lib:
        yield lib


def jsonl(lib: Library, *args: str) -> list[dict[str, Any]]:
    out = lib.cli("export", "--format", "jsonl", *args).stdout
    return [json.loads(line) for line in out.splitlines()]


def prov(lib: Library, *args: str) -> ProvDocument:
    text = lib.cli("export", "--format", "prov-json", *args).stdout
    return ProvDocument.deserialize(content=text, format="json")


def ids_of(doc: ProvDocument, kind: type) -> set[str]:
    return {str(r.identifier) for r in doc.get_records(kind)}


def pairs(doc: ProvDocument, kind: type, first: str, second: str) -> set[tuple[str, str]]:
    """(first, second) attribute pairs of every relation of a kind, as ``prefix:name``."""
    found = set()
    for record in doc.get_records(kind):
        attrs = {str(key): value for key, value in record.formal_attributes}
        found.add((str(attrs[first]), str(attrs[second])))
    return found


# --- JSONL ---------------------------------------------------------------------------------


def test_jsonl_holds_every_row_oldest_first(library: Library):
    result = library.cli("export")  # jsonl is the default
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    with library.app.session() as session:
        in_catalog = session.exec(select(Generation).order_by(Generation.created_at)).all()
    assert [r["id"] for r in rows] == [g.id for g in in_catalog]
    assert {r["id"] for r in rows} == library.all_ids
    assert "exported 5 clips as jsonl" in result.stderr

    by_id = {r["id"]: r for r in rows}
    chain = (library.first, library.remix, library.grandchild)
    first, remix, grandchild = (by_id[clip.id] for clip in chain)
    assert first["prompt"] == FIRST_PROMPT and first["parent_id"] is None
    assert (remix["parent_id"], remix["relation"]) == (library.first.id, "remix_of")
    assert (grandchild["parent_id"], grandchild["relation"]) == (library.remix.id, "remix_of")
    assert by_id[library.other.id]["prompt"] == OTHER_PROMPT
    assert first["source"]["original_name"] == "harbor.jpg"
    assert first["source"]["sha256"] == hash_file(library.harbor)[0]


def test_jsonl_files_are_the_stored_bytes_with_their_latest_check(library: Library):
    rows = jsonl(library, "--status", "completed")
    assert len(rows) == 4
    with library.app.session() as session:
        states = latest_states(session, [r["video"]["id"] for r in rows])
    for row in rows:
        video = row["video"]
        stored = library.app.store.path_for(video["sha256"])
        assert hash_file(stored) == (video["sha256"], video["bytes"])
        assert (video["mime"], video["width"], video["height"]) == ("video/mp4", 640, 360)
        assert row["thumbnail"]["mime"] == "image/jpeg"
        assert "path" not in video  # where this machine keeps it is not part of the record
        assert row["provenance"] == video["provenance"] == states[video["id"]]
        assert row["provenance"] in ("absent", "valid", "trusted")
        assert any(d["outcome"] == "allow" for d in row["policy_decisions"])


def test_jsonl_keeps_the_rejected_attempt_and_its_denial(library: Library):
    (row,) = jsonl(library, "--status", "rejected")
    assert row["id"] == library.rejected_id and row["video"] is None
    denials = [d for d in row["policy_decisions"] if d["outcome"] == "deny"]
    assert [(d["plugin"], d["rule_id"]) for d in denials] == [
        ("protected_names", "names.protected")
    ]
    assert "Mickey Mouse" in denials[0]["reason"]


# --- CSV -----------------------------------------------------------------------------------


def test_csv_has_a_header_and_one_row_per_clip(library: Library):
    text = library.cli("export", "--format", "csv").stdout
    reader = csv.DictReader(io.StringIO(text, newline=""))
    rows = list(reader)
    assert tuple(reader.fieldnames or ()) == exports.CSV_COLUMNS
    assert len(rows) == 5 and {r["id"] for r in rows} == library.all_ids
    by_id = {r["id"]: r for r in rows}
    # quotes, commas and a newline in prompts survive the round trip
    assert by_id[library.first.id]["prompt"] == FIRST_PROMPT
    assert by_id[library.other.id]["prompt"] == OTHER_PROMPT
    remix = by_id[library.remix.id]
    assert (remix["parent_id"], remix["relation"]) == (library.first.id, "remix_of")
    assert remix["video_sha256"] == library.remix.output_asset_id.removeprefix("vid_")
    rejected = by_id[library.rejected_id]
    assert rejected["status"] == "rejected" and rejected["video_sha256"] == ""
    assert "deny protected_names/names.protected" in rejected["policy"]


# --- PROV-JSON ----------------------------------------------------------------------------


def test_prov_json_parses_back_into_the_same_document(library: Library):
    doc = prov(library)
    with library.app.session() as session:
        generations = session.exec(select(Generation)).all()
        expected = exports.prov_document(session, generations)  # built whole, in memory
    assert doc == expected
    assert ids_of(doc, ProvActivity) == {f"rv:{i}" for i in library.all_ids}


def test_prov_json_models_assets_generations_and_agents(library: Library):
    doc = prov(library)
    first, remix, grandchild = library.first, library.remix, library.grandchild
    with library.app.session() as session:
        assets = session.exec(select(Asset)).all()
    assert ids_of(doc, ProvEntity) == {f"rv:{a.id}" for a in assets}
    assert ids_of(doc, ProvAgent) == {"rvbackend:local", "rvmodel:local.local-motion"}

    generated = pairs(doc, ProvGeneration, "prov:entity", "prov:activity")
    for clip in (first, remix, grandchild, library.other):
        assert (f"rv:{clip.output_asset_id}", f"rv:{clip.id}") in generated
        assert (f"rv:{clip.thumbnail_asset_id}", f"rv:{clip.id}") in generated
    assert not any(activity == f"rv:{library.rejected_id}" for _, activity in generated)

    used = pairs(doc, ProvUsage, "prov:activity", "prov:entity")
    assert (f"rv:{first.id}", f"rv:{first.source_asset_id}") in used
    assert (f"rv:{library.rejected_id}", f"rv:{first.source_asset_id}") in used
    assert (f"rv:{remix.id}", f"rv:{first.output_asset_id}") in used  # the parent's video

    derived = pairs(doc, ProvDerivation, "prov:generatedEntity", "prov:usedEntity")
    assert (f"rv:{grandchild.output_asset_id}", f"rv:{remix.output_asset_id}") in derived
    assert (f"rv:{remix.output_asset_id}", f"rv:{first.output_asset_id}") in derived
    assert (f"rv:{first.output_asset_id}", f"rv:{first.source_asset_id}") in derived

    associated = pairs(doc, ProvAssociation, "prov:activity", "prov:agent")
    for clip_id in library.all_ids:
        assert (f"rv:{clip_id}", "rvbackend:local") in associated
        assert (f"rv:{clip_id}", "rvmodel:local.local-motion") in associated

    (activity,) = doc.get_record(f"rv:{first.id}")
    assert activity.get_attribute("prov:label") == {FIRST_PROMPT}
    assert activity.get_startTime() == first.created_at


def test_a_streamed_export_is_the_same_whatever_the_batch_size(
    library: Library, monkeypatch: pytest.MonkeyPatch
):
    whole = {fmt: library.cli("export", "--format", fmt).stdout for fmt in exports.FORMATS}
    monkeypatch.setattr(exports, "BATCH", 2)
    monkeypatch.setattr(exports, "SPOOL_IN_MEMORY", 64)  # sections spill to disk
    for fmt in ("jsonl", "csv"):
        assert library.cli("export", "--format", fmt).stdout == whole[fmt]
    text = library.cli("export", "--format", "prov-json").stdout
    assert ProvDocument.deserialize(content=text, format="json") == ProvDocument.deserialize(
        content=whole["prov-json"], format="json"
    )


def test_a_filtered_prov_export_still_declares_what_its_clips_came_from(library: Library):
    doc = prov(library, "--text", "push in")
    grandchild = library.grandchild
    assert ids_of(doc, ProvActivity) == {f"rv:{grandchild.id}"}
    assert {
        f"rv:{grandchild.output_asset_id}",
        f"rv:{library.remix.output_asset_id}",  # the parent's video, outside the selection
        f"rv:{grandchild.source_asset_id}",
    } <= ids_of(doc, ProvEntity)
    assert f"rv:{library.other.output_asset_id}" not in ids_of(doc, ProvEntity)


# --- filters, errors, secrets -------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (("--text", "TILT"), {"remix"}),
        (("--status", "rejected"), {"rejected"}),
        (("--provenance", "unchecked"), {"rejected"}),
        (("--provenance", "trusted"), {"remix", "grandchild", "other"}),
        (("--provenance", "absent"), {"first"}),
        (("--provenance", "invalid"), set()),
        (("--model", "local-motion", "--backend", "local"), {"first", "remix", "grandchild",
                                                             "other", "rejected"}),
        (("--since", "2999-01-01"), set()),
    ],
)  # fmt: skip
def test_export_takes_the_filters_of_list(library: Library, args: tuple[str, ...], expected):
    names = {
        library.first.id: "first",
        library.remix.id: "remix",
        library.grandchild.id: "grandchild",
        library.other.id: "other",
        library.rejected_id: "rejected",
    }
    assert {names[r["id"]] for r in jsonl(library, *args)} == expected


def test_export_by_source_still_and_by_age(library: Library):
    from_harbor = {r["id"] for r in jsonl(library, "--source", str(library.harbor))}
    assert from_harbor == library.all_ids - {library.other.id}
    recent = {r["id"] for r in jsonl(library, "--since", "1h")}
    assert recent == library.all_ids
    empty = prov(library, "--until", "2000-01-01")
    assert not list(empty.get_records(ProvActivity))


def test_export_refuses_bad_input_with_one_clear_line(library: Library):
    bad_date = library.cli("export", "--since", "last tuesday", expect=2)
    assert bad_date.stdout == ""
    assert bad_date.stderr.strip() == (
        "Error: 'last tuesday' is not a date: use e.g. 2026-11-25, 2026-11-25T14:00 or 7d"
    )
    bad_format = library.cli("export", "--format", "xml", expect=2)
    assert "Invalid value for '--format'" in bad_format.stderr
    with pytest.raises(Exception, match="unknown export format 'xml'"):
        exports.export(library.app, "xml", ClipFilter(), io.StringIO())


def test_secrets_never_reach_an_export(library: Library, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("OPENAI_API_KEY", FAKE_SECRET)
    outputs = [library.cli("export", "--format", fmt).output for fmt in exports.FORMATS]
    for fmt in ("json", "prov-json", "dot", "mermaid"):
        outputs.append(library.cli("lineage", library.remix.id, "--format", fmt).output)
    assert len(library.secrets) > 3  # the API key and the lines of the signing key
    assert not [s for s in library.secrets for text in outputs if s in text]


def test_an_export_holds_no_write_lock(library: Library):
    """A long export must not stop clips from being cataloged meanwhile."""
    out = io.StringIO()

    class Interleaving(io.StringIO):
        wrote_meanwhile = False

        def write(self, text: str) -> int:
            if not self.wrote_meanwhile:
                with library.app.session() as session:  # a writer, mid-export
                    touch = "UPDATE generations SET progress = progress WHERE id = :id"
                    session.execute(sa.text(touch), {"id": library.first.id})
                self.wrote_meanwhile = True
            return out.write(text)

    assert exports.export(library.app, "jsonl", ClipFilter(), Interleaving()) == 5
    assert len(out.getvalue().splitlines()) == 5


# --- lineage formats -----------------------------------------------------------------------


@PYDOT_PARSER
def test_lineage_formats_describe_the_same_family(library: Library):
    lib, grandchild = library, library.grandchild
    chain = [lib.first.id, lib.remix.id, grandchild.id]
    source = grandchild.source_asset_id

    tree = lib.cli("lineage", grandchild.id).stdout
    assert all(clip_id in tree for clip_id in chain)

    as_json = json.loads(lib.cli("lineage", grandchild.id, "--format", "json").stdout)
    assert as_json == json.loads(lib.cli("lineage", grandchild.id, "--json").stdout)
    assert as_json["target"] == grandchild.id and as_json["source"]["id"] == source

    (graph,) = pydot.graph_from_dot_data(
        lib.cli("lineage", grandchild.id, "--format", "dot").stdout
    )
    edges = {(e.get_source().strip('"'), e.get_destination().strip('"'), e.get_label().strip('"'))
             for e in graph.get_edges()}  # fmt: skip
    assert edges == {
        (source, chain[0], "source"),
        (chain[0], chain[1], "remix_of"),
        (chain[1], chain[2], "remix_of"),
    }

    mermaid = lib.cli("lineage", grandchild.id, "--format", "mermaid").stdout
    assert mermaid.startswith("flowchart TD\n")
    assert mermaid.count("-->") == 3 and "class n3 target" in mermaid

    doc = ProvDocument.deserialize(
        content=lib.cli("lineage", grandchild.id, "--format", "prov-json").stdout, format="json"
    )
    assert ids_of(doc, ProvActivity) == {f"rv:{c}" for c in chain}

    from_still = json.loads(lib.cli("lineage", source[:10], "--json").stdout)
    assert [c["id"] for c in from_still["clips"]] == [lib.first.id, lib.rejected_id]


def test_lineage_json_flag_cannot_contradict_format(library: Library):
    result = library.cli("lineage", library.first.id, "--json", "--format", "dot", expect=2)
    assert "Error: --json means --format json" in result.stderr


# --- rendering units -------------------------------------------------------------------------


def clip(clip_id: str, *children: dict[str, Any], prompt: str = "pan", relation=None):
    return {
        "id": clip_id,
        "prompt": prompt,
        "status": "completed",
        "relation": relation,
        "thumbnail_asset_id": f"thm_{clip_id}",
        "children": list(children),
    }


def family(*clips: dict[str, Any], target: str = "clip_a") -> dict[str, Any]:
    source = {"id": "img_" + "0" * 64, "original_name": "s.jpg", "placeholder": None}
    return {"target": target, "source": source, "clips": list(clips)}


def test_layout_never_overlaps_and_centres_parents_over_children():
    tree = family(
        clip("clip_a", clip("clip_b", clip("clip_d"), clip("clip_e")), clip("clip_c")),
        clip("clip_f"),
    )
    placed = lineage_render.layout(tree)
    boxes = {n.id: n for n in placed.nodes}
    assert len(boxes) == 7 and len(placed.edges) == 6
    for a in placed.nodes:
        for b in placed.nodes:
            if a is not b and a.y == b.y:
                assert abs(a.x - b.x) >= lineage_render.NODE_WIDTH  # side by side, apart
    assert boxes["clip_b"].x == (boxes["clip_d"].x + boxes["clip_e"].x) // 2
    assert boxes["clip_a"].y < boxes["clip_b"].y < boxes["clip_d"].y
    assert all(n.x >= 0 and n.x + n.width <= placed.width for n in placed.nodes)
    assert all(n.y + n.box_height <= placed.height for n in placed.nodes)
    assert [n.id for n in placed.nodes if n.is_target] == ["clip_a"]


def test_a_very_long_remix_chain_lays_out_without_recursion():
    node = clip(f"clip_{5000}")
    for i in range(4999, -1, -1):
        node = clip(f"clip_{i}", node)
    placed = lineage_render.layout(family(node, target="clip_0"))
    assert len(placed.nodes) == 5002 and sys.getrecursionlimit() < 5000


@PYDOT_PARSER
def test_mermaid_and_dot_escape_what_they_would_parse():
    tricky = 'say "hi" #1 <b>|x|` then\nstop'
    text = lineage_render.to_mermaid(family(clip("clip_a", prompt=tricky)))
    label_line = next(line for line in text.splitlines() if "clip_a" in line)
    assert '"' not in label_line.split('["', 1)[1].rsplit('"]', 1)[0]
    assert "#34;hi#34; #35;1 #60;b#62;#124;x#124;#96; then stop" in label_line
    (graph,) = pydot.graph_from_dot_data(
        lineage_render.to_dot(family(clip("clip_a", prompt=tricky)))
    )
    label = graph.get_node("clip_a")[0].get_label()
    assert 'say \\"hi\\"' in label


def dot_text(value: str) -> str:
    """A quoted DOT string read back as the text it stands for (``\\n`` a line break)."""
    assert value[0] == value[-1] == '"', value
    return re.sub(r"\\(.)", lambda m: "\n" if m[1] == "n" else m[1], value[1:-1], flags=re.S)


@PYDOT_PARSER
def test_dot_keeps_backslashes_quotes_and_line_breaks_as_typed():
    tricky = family(
        clip("clip_a", clip("clip_b", prompt='say "hi" \\n not a break\\', relation="remix_of"),
             prompt="pan right \\"),
    )  # fmt: skip
    tricky["source"]["original_name"] = 'photo\\\nsecond "line"\\'
    text = lineage_render.to_dot(tricky)
    (graph,) = pydot.graph_from_dot_data(text)
    labels = {n.get_name(): dot_text(n.get_label()) for n in graph.get_nodes() if n.get_label()}
    still = tricky["source"]["id"]
    assert labels[still].split("\n")[1:] == ["photo\\", 'second "line"\\']
    assert labels["clip_a"].split("\n")[-1] == "pan right \\"
    assert labels["clip_b"].split("\n")[-1] == 'say "hi" \\n not a break\\'
    (edge,) = [e for e in graph.get_edges() if e.get_destination() == "clip_b"]
    assert dot_text(edge.get_label()) == "remix_of"


def test_mermaid_keeps_brackets_backslashes_and_entities_inside_its_labels():
    prompt = 'a [b] (c) {d} \\ &lt;x& "q"\nz'
    text = lineage_render.to_mermaid(family(clip("clip_a", prompt=prompt)))
    (line,) = [line for line in text.splitlines() if "clip_a" in line]
    label = line.split('["', 1)[1].removesuffix('"]')
    assert '"' not in label and "&" not in label and "\n" not in label
    assert label.endswith("<br/>a [b] (c) {d} \\ #38;lt;x#38; #34;q#34; z")


def test_a_clip_reads_the_same_in_show_the_web_and_an_export(library: Library):
    """One function per part of a record: decisions, errors and files cannot drift apart."""
    from starlette.testclient import TestClient

    from core.web.app import create_app

    clip_id = library.rejected_id
    shown = json.loads(library.cli("show", clip_id, "--json").stdout)
    (exported,) = [r for r in jsonl(library, "--status", "rejected") if r["id"] == clip_id]
    with TestClient(create_app(library.app), base_url="http://127.0.0.1") as client:
        twin = client.get(f"/clips/{clip_id}?format=json").json()
    for key in ("policy_decisions", "error"):
        assert shown[key] == exported[key] == twin[key], key
    assert shown["error"]["code"] == "policy_denied"
    source = {k: v for k, v in shown["source"].items() if k not in ("path", "verifications")}
    assert {k: v for k, v in exported["source"].items() if k != "provenance"} == source
    assert {k: v for k, v in twin["source"].items() if k != "verifications"} == source


def test_export_path_never_leaks_into_records(library: Library):
    """Records are portable: the same bytes give the same record on any machine."""
    (row,) = [r for r in jsonl(library) if r["id"] == library.first.id]
    assert str(library.home) not in json.dumps(row)
    assert datetime.fromisoformat(row["created_at"]) > datetime.now(UTC) - timedelta(hours=1)


def test_csv_cells_never_start_a_spreadsheet_formula():
    from core.views.exports import CSV_COLUMNS, spreadsheet_safe, write_csv

    record = {key: None for key in CSV_COLUMNS}
    record.update(id="clip_x", prompt="=cmd|' /C calc'!A0", seconds=4, policy_decisions=[],
                  video=None, source=None, thumbnail=None, error=None)  # fmt: skip
    out = io.StringIO()
    assert write_csv([record], out) == 1
    (row,) = csv.DictReader(io.StringIO(out.getvalue(), newline=""))
    assert row["prompt"] == "'=cmd|' /C calc'!A0" and row["seconds"] == "4"
    assert spreadsheet_safe('=HYPERLINK("http://x","y")') == '\'=HYPERLINK("http://x","y")'
    assert spreadsheet_safe("@SUM(A1)") == "'@SUM(A1)"
    assert spreadsheet_safe("-2+3") == "'-2+3"
    assert spreadsheet_safe("slow push in") == "slow push in"
    assert spreadsheet_safe(4) == 4 and spreadsheet_safe(None) is None
