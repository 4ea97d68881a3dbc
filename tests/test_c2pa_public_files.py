"""The public C2PA test images (tests/data/c2pa, CC BY-SA 4.0, see its README and LICENSE)
read as their documentation says, through the CLI a user would run."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.conftest import REPO

FILES = REPO / "tests" / "data" / "c2pa"
EXPECTED = {  # documented in tests/data/c2pa/README.md
    "A": ("absent", None),
    "I": ("absent", None),
    "C": ("valid", None),
    "CA": ("valid", None),
    "CAI": ("valid", None),
    "CAICAI": ("valid", None),
    "CIE-sig-CA": ("valid", "claimSignature.mismatch"),
    "E-dat-CA": ("invalid", "assertion.dataHash.mismatch"),
    "E-sig-CA": ("invalid", "claimSignature.mismatch"),
    "XCA": ("invalid", "assertion.dataHash.mismatch"),
}


def public_file(code: str) -> Path:
    return FILES / f"adobe-20220124-{code}.jpg"


def test_every_file_in_the_folder_is_covered_and_licensed():
    assert sorted(p.name for p in FILES.glob("*.jpg")) == sorted(
        public_file(code).name for code in EXPECTED
    )
    assert "CC BY-SA 4.0" in (FILES / "README.md").read_text(encoding="utf-8")
    assert "Attribution-ShareAlike 4.0" in (FILES / "LICENSE").read_text(encoding="utf-8")


@pytest.mark.parametrize("code", sorted(EXPECTED))
def test_each_public_file_verifies_as_documented(run, code: str):
    state, failure = EXPECTED[code]
    expect = 0 if state == "valid" else 1
    data = json.loads(run("verify", public_file(code), "--json", expect=expect).stdout)
    [result] = data["results"]
    assert result["state"] == state
    if state == "valid":  # intact, but the test signer is on no trust list here
        assert "signingCredential.untrusted" in result["codes"]
    if failure:
        assert failure in result["codes"]


def test_an_ingredient_whose_signature_fails_shows_in_verify(run):
    """CIE-sig-CA is intact itself; its E-sig-CA ingredient's claim signature is not."""
    path = public_file("CIE-sig-CA")
    text = run("verify", path).output
    assert "claimSignature.mismatch" in text.split("manifest", 1)[0]  # in the codes line
    [line] = [line for line in text.splitlines() if "'E-sig-CA.jpg'" in line]
    assert "componentOf" in line and "FAILED" in line and "claimSignature.mismatch" in line
    [result] = json.loads(run("verify", path, "--json").stdout)["results"]
    [ingredient] = result["details"]["manifest"]["ingredients"]
    assert "claimSignature.mismatch" in [f["code"] for f in ingredient["failures"]]
    assert {"code": "claimSignature.mismatch", "ingredient_title": "E-sig-CA.jpg"}.items() <= next(
        f for f in result["details"]["failures"] if f["code"] == "claimSignature.mismatch"
    ).items()


def test_an_intact_ingredient_shows_no_failure(run):
    text = run("verify", public_file("CAICAI")).output
    assert "FAILED" not in text
    assert "claimSignature.mismatch" not in text


# -- lineage between images, from their ingredients --------------------------------------


def imported_id(run, code: str) -> str:
    [outcome] = json.loads(run("import", public_file(code), "--json").stdout)["files"]
    return outcome["asset_id"]


def lineage_json(run, asset: str) -> dict:
    return json.loads(run("lineage", asset, "--json").stdout)


def by_name(entries: list[dict]) -> dict[str, dict]:
    return {(e["original_name"] or e["id"]).removeprefix("adobe-20220124-"): e for e in entries}


@pytest.mark.parametrize("order", [("A", "CAICAI"), ("CAICAI", "A")], ids=["A-first", "A-later"])
def test_caicai_has_a_as_its_parent_and_cai_as_a_component(run, order: tuple[str, str]):
    ids = {code: imported_id(run, code) for code in order}
    family = lineage_json(run, ids["CAICAI"])
    made_from = by_name(family["ingredients"])
    assert set(made_from) == {"A.jpg", "CAI.jpg"}
    parent = made_from["A.jpg"]
    assert (parent["id"], parent["relationship"], parent["placeholder"]) == (
        ids["A"],
        "parentOf",
        None,
    )
    component = made_from["CAI.jpg"]
    assert component["relationship"] == "componentOf"
    assert component["placeholder"]["title"] == "CAI.jpg"  # known only from CAICAI's claim
    # and CAI's own ingredients, one level further up, from the manifest CAICAI carries
    assert by_name(component["ingredients"]).keys() == {"A.jpg", "I.jpg"}
    text = run("lineage", ids["CAICAI"]).stdout
    assert f"parentOf  {ids['A']}  adobe-20220124-A.jpg" in text
    assert "componentOf" in text and "CAI.jpg" in text and "placeholder" in text
    # both directions: A names CAICAI among what was made from it
    derived = lineage_json(run, ids["A"])["derived"]
    assert ids["CAICAI"] in {e["id"] for e in derived}
    assert {e["relationship"] for e in derived if e["id"] == ids["CAICAI"]} == {"parentOf"}
    assert "names it as parentOf" in run("lineage", ids["A"]).stdout


def test_cai_imported_later_takes_its_placeholders_place(run):
    caicai = imported_id(run, "CAICAI")
    placeholder = by_name(lineage_json(run, caicai)["ingredients"])["CAI.jpg"]["id"]
    cai = imported_id(run, "CAI")
    family = lineage_json(run, caicai)
    component = by_name(family["ingredients"])["CAI.jpg"]
    assert (component["id"], component["placeholder"]) == (cai, None)
    run("lineage", placeholder, expect=1)  # the placeholder is gone, merged into the file
    # CAI's own lineage holds the same relations, found from its side
    assert by_name(lineage_json(run, cai)["ingredients"]).keys() == {"A.jpg", "I.jpg"}
    assert {e["id"] for e in lineage_json(run, cai)["derived"]} == {caicai}
    assert imported_id(run, "I") in {
        e["id"] for e in lineage_json(run, cai)["ingredients"]
    }  # I.jpg fills its own placeholder by the instance id CAI's ingredient names


def test_importing_the_family_again_changes_nothing(run):
    for code in ("A", "CAI", "CAICAI"):
        imported_id(run, code)
    before = {code: lineage_json(run, imported_id(run, code)) for code in ("A", "CAICAI")}
    again = run("import", *(public_file(c) for c in ("A", "CAI", "CAICAI")), "--json").stdout
    assert {o["status"] for o in json.loads(again)["files"]} == {"already"}
    after = {code: lineage_json(run, imported_id(run, code)) for code in ("A", "CAICAI")}
    assert after == before


def test_an_ingredient_without_an_instance_id_match_stays_a_placeholder(run):
    """E-sig-CA names A.jpg as its parent; an unrelated image with no XMP is not it."""
    cie = imported_id(run, "CIE-sig-CA")
    made_from = by_name(lineage_json(run, cie)["ingredients"])
    assert made_from["E-sig-CA.jpg"]["placeholder"] is not None
    assert made_from["E-sig-CA.jpg"]["relationship"] == "componentOf"
    assert by_name(made_from["E-sig-CA.jpg"]["ingredients"])["A.jpg"]["placeholder"] is not None


def test_an_ingredients_failure_shows_in_show_and_on_the_web_pages(run, app):
    from starlette.testclient import TestClient

    from core.web.app import create_app

    cie = public_file("CIE-sig-CA")
    imported_id(run, "CIE-sig-CA")  # its relations come from the import
    made = run("generate", cie, "-p", "pan right", "--seconds", "1", "--size", "640x360",
               "--fit", "cover", "--json").stdout  # fmt: skip
    clip = json.loads(made)["id"]
    expected = "ingredient 'E-sig-CA.jpg' failed: timeStamp.mismatch, claimSignature.mismatch"
    shown = run("show", clip).stdout
    assert expected in shown.split("video", 1)[0]  # under the source still's check
    data = json.loads(run("show", clip, "--json").stdout)
    check = data["source"]["verifications"][-1]
    assert check["state"] == "valid" and "claimSignature.mismatch" in check["codes"]
    assert ("claimSignature.mismatch", "E-sig-CA.jpg") in {
        (f["code"], f.get("ingredient_title")) for f in check["details"]["failures"]
    }
    with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
        page = client.get(f"/clips/{clip}").text
        assert expected.replace("'", "&#39;") in page
        still = data["source"]["id"]
        assert expected.replace("'", "&#39;") in client.get(f"/stills/{still}").text
        twin = client.get(f"/stills/{still}", params={"format": "json"}).json()
        check = twin["asset"]["verifications"][-1]
        assert "claimSignature.mismatch" in check["codes"]
        assert "E-sig-CA.jpg" in {e["original_name"] for e in twin["lineage"]["ingredients"]}


def test_filling_a_placeholder_keeps_one_copy_of_each_relation(app):
    """A placeholder and the file it stood for may both hold a relation: one survives,
    and none comes to relate the file to itself."""
    from sqlmodel import select

    from catalog.assets import merge_assets
    from catalog.models import Asset, AssetRelation
    from catalog.relations import add_relation

    def image(name: str, placeholder: bool = False) -> Asset:
        sha = None if placeholder else name * 64
        return Asset(id=f"img_{name}", sha256=sha, kind="image", mime="image/jpeg",
                     is_placeholder=placeholder)  # fmt: skip

    with app.session() as session:
        old, new, other = image("o", placeholder=True), image("n"), image("x")
        session.add_all([old, new, other])
        session.flush()
        add_relation(session, old.id, other.id, "parentOf")  # both name the same parent
        add_relation(session, new.id, other.id, "parentOf")
        add_relation(session, other.id, old.id, "componentOf")  # named by another file
        add_relation(session, new.id, old.id, "componentOf")  # would become new -> new
        assert not add_relation(session, new.id, new.id, "parentOf")
        merge_assets(session, old, new)
        rows = {
            (r.child_asset_id, r.parent_asset_id, r.relationship)
            for r in session.exec(select(AssetRelation))
        }
    assert rows == {("img_n", "img_x", "parentOf"), ("img_x", "img_n", "componentOf")}


def test_dot_and_mermaid_draw_the_relations_credentials_name(run):
    """The pictures show what the JSON and the tree show: CAICAI's parent A, its
    component CAI (a placeholder) and CAI's own ingredients, as dashed edges."""
    import pydot

    ids = {code: imported_id(run, code) for code in ("A", "CAICAI")}
    (graph,) = pydot.graph_from_dot_data(run("lineage", ids["CAICAI"], "--format", "dot").stdout)
    names = {  # node: the last line of its label (a file name, or a clip's prompt)
        n.get_name().strip('"'): (n.get("label") or "").strip('"').split("\\n")[-1]
        for n in graph.get_nodes()
        if n.get_name() != "node"  # the defaults, not a node
    }
    edges = {
        (e.get_source().strip('"'), e.get_destination().strip('"')): e.get("label").strip('"')
        for e in graph.get_edges()
    }
    assert edges[(ids["A"], ids["CAICAI"])] == "parentOf"
    (cai,) = [n for n, label in names.items() if label == "CAI.jpg (placeholder)"]
    assert edges[(cai, ids["CAICAI"])] == "componentOf"
    (i_jpg,) = [n for n, label in names.items() if label == "I.jpg (placeholder)"]
    into_cai = {parent: label for (parent, child), label in edges.items() if child == cai}
    assert into_cai == {ids["A"]: "parentOf", i_jpg: "componentOf"}  # from CAI's own claim
    assert len(edges) == 4 and len(names) == 4  # each asset drawn once
    assert all(e.get("style") == "dashed" for e in graph.get_edges())

    mermaid = run("lineage", ids["CAICAI"], "--format", "mermaid").stdout
    assert mermaid.count("-.->") == len(edges) and "parentOf" in mermaid
    assert "CAI.jpg (placeholder)" in mermaid
    # from A's side: CAICAI is drawn among what was made from it
    below = run("lineage", ids["A"], "--format", "mermaid").stdout
    assert '-.->|"parentOf"|' in below and "CAICAI" in below
