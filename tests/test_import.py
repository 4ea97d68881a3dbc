"""``reelvault import``: cataloging existing files and rebuilding lineage from credentials."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import col, select

from catalog.models import Asset, Generation
from catalog.queries import get_generation
from core.api.errors import RequestError
from core.api.settings import Settings
from core.api.types import GenerationStatus
from core.host.app import Reelvault
from core.provenance.importer import import_paths
from core.views.report import lineage_dict
from tests.conftest import textured_image
from tests.provenance_support import (
    SignedLibrary,
    active_label,
    normalized_lineage,
    other_signer,
    quick_clip,
    remux,
    sign_image,
    signed_library,
    stored_path,
)

__all__ = ["signed_library"]  # a fixture, used by name


@pytest.fixture(autouse=True)
def trust_the_library_signer(request: pytest.FixtureRequest) -> None:
    """Clip ids carried in credentials are adopted only from trusted signers: the homes
    that import the signed library trust the CA it was signed under, as a studio
    importing its own exports would (the untrusted case has a test of its own)."""
    if {"app", "signed_library"} <= set(request.fixturenames):
        from core.provenance.trust import add_anchors

        app = request.getfixturevalue("app")
        add_anchors(app.settings, request.getfixturevalue("signed_library").ca_pem)


def row_counts(app: Reelvault) -> dict[str, int]:
    with app.engine.connect() as conn:
        return {
            table: conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar_one()
            for table in ("assets", "generations", "verifications")
        }


def remix_lineage(app: Reelvault, remix_id: str) -> dict:
    with app.session() as session:
        return normalized_lineage(
            lineage_dict(session, get_generation(session, remix_id), app.store)
        )


def placeholders(app: Reelvault) -> list[Asset]:
    with app.session() as session:
        return list(session.exec(select(Asset).where(col(Asset.is_placeholder).is_(True))))


def test_three_signed_files_rebuild_the_original_lineage(
    app: Reelvault, signed_library: SignedLibrary
):
    report = import_paths(app, [signed_library.folder], recursive=True)

    # clip.mp4 comes first: its credentials make the still a placeholder, still.png fills it
    assert [(o.path.name, o.status) for o in report.outcomes] == [
        ("clip.mp4", "imported"),
        ("remix.mp4", "imported"),
        ("still.png", "filled"),
    ]
    assert remix_lineage(app, signed_library.remix_id) == signed_library.lineage
    assert placeholders(app) == []
    with app.session() as session:
        remix = get_generation(session, signed_library.remix_id)
        clip = get_generation(session, signed_library.clip_id)
    assert remix.status == clip.status == GenerationStatus.IMPORTED
    assert (remix.relation, remix.parent_id) == ("remix_of", clip.id)
    assert clip.parameters["seed"] == 7 and clip.details["motion_plan"][0]["clause"] == "pan right"


def test_an_ingredient_without_its_file_is_a_placeholder_until_the_file_turns_up(
    app: Reelvault, signed_library: SignedLibrary, run
):
    (only,) = import_paths(app, [signed_library.remix]).outcomes
    assert only.status == "imported" and only.generation_id == signed_library.remix_id

    # The whole family is already known from the remix's credentials alone.
    known = remix_lineage(app, signed_library.remix_id)
    assert known["clips"] == signed_library.lineage["clips"]
    assert known["source"]["id"] == signed_library.lineage["source"]["id"]
    assert known["source"]["width"] is None  # not known until the file itself is imported
    missing = {p.kind: p for p in placeholders(app)}
    assert set(missing) == {"image", "video"}
    assert missing["video"].placeholder_info["claim_generator"].startswith("reelvault")
    assert missing["image"].placeholder_info["claim_generator"] == "test-camera 1.0"
    assert missing["image"].stored_path is None and missing["image"].manifest_label
    tree = json.loads(run("lineage", signed_library.remix_id, "--json").stdout)
    assert tree["source"]["placeholder"]["signer"].startswith("reelvault development signer")
    assert "placeholder" in run("lineage", signed_library.remix_id).output
    assert "placeholder" in run("show", signed_library.clip_id).output

    outcomes = import_paths(app, [signed_library.still, signed_library.clip]).outcomes
    assert [o.status for o in outcomes] == ["filled", "filled"]
    assert placeholders(app) == []
    assert remix_lineage(app, signed_library.remix_id) == signed_library.lineage
    with app.session() as session:
        still = session.get(Asset, outcomes[0].asset_id)
    assert still.original_name == "still.png" and still.width == 640
    assert stored_path(app, still.id).read_bytes() == signed_library.still.read_bytes()


def test_importing_twice_changes_nothing(app: Reelvault, signed_library: SignedLibrary, run):
    run("import", "--recursive", signed_library.folder)
    before = row_counts(app)
    again = json.loads(run("import", "-r", signed_library.folder, "--json").stdout)
    assert again["counts"] == {"already": 3}
    assert row_counts(app) == before


def test_files_already_in_the_catalog_keep_their_lineage(
    app: Reelvault, still: Path, tmp_path: Path
):
    from core.provenance.signing import init_signing

    init_signing(app.settings)
    clip = quick_clip(app, still)
    export = tmp_path / "export.mp4"
    shutil.copy(stored_path(app, clip.output_asset_id), export)
    before = row_counts(app)

    (outcome,) = import_paths(app, [export, still]).outcomes[:1]
    assert outcome.status == "already" and outcome.generation_id == clip.id
    assert row_counts(app)["generations"] == before["generations"]
    with app.session() as session:
        assert get_generation(session, clip.id).status == "completed"


def test_a_corrupt_or_empty_file_never_crashes_import(
    run, app: Reelvault, signed_library: SignedLibrary, tmp_path: Path
):
    folder = tmp_path / "mixed"
    folder.mkdir()
    (folder / "empty.mp4").write_bytes(b"")
    (folder / "garbage.mp4").write_bytes(b"\x00\x01not a video" * 100)
    (folder / "notes.txt").write_text("hello")
    data = signed_library.still.read_bytes()
    (folder / "truncated.png").write_bytes(data[: len(data) // 3])
    clip = signed_library.clip.read_bytes()
    (folder / "cut.mp4").write_bytes(clip[: len(clip) // 2])
    shutil.copy(signed_library.clip, folder / "good.mp4")

    result = run("import", "-r", folder, expect=1)

    assert "Error: 4 of 6 file(s) could not be imported" in result.output
    assert "empty.mp4: the file is empty" not in result.output  # the path is shown once
    for name in ("empty.mp4", "garbage.mp4", "notes.txt", "truncated.png"):
        assert f"failed   {folder / name}" in result.output
    # Cut in half, the clip still has readable headers: it is cataloged, with its broken
    # credentials on record (and no lineage taken from them).
    assert f"imported {folder / 'cut.mp4'}" in result.output
    assert "c2pa_verifier: invalid" in result.output
    with app.session() as session:
        assets = list(session.exec(select(Asset).where(col(Asset.is_placeholder).is_(False))))
        made = list(session.exec(select(Generation)))
    videos = {a.original_name: a for a in assets if a.kind == "video"}
    assert sorted(videos) == ["cut.mp4", "good.mp4"]
    assert {a.kind for a in assets} == {"video", "thumbnail"}  # each video's first frame
    # Every video is a clip (listed, derivable); the cut one's is built from nothing its
    # broken credentials say: no source, no parent, backend "import".
    by_output = {g.output_asset_id: g for g in made}
    assert set(by_output) == {a.id for a in videos.values()}
    cut = by_output[videos["cut.mp4"].id]
    assert (cut.backend, cut.source_asset_id, cut.parent_id) == ("import", None, None)
    assert by_output[videos["good.mp4"].id].backend == "local"
    assert list((app.store.root / "tmp").iterdir()) == []


def test_import_checks_every_argument_before_importing_anything(
    run, app: Reelvault, signed_library: SignedLibrary, tmp_path: Path
):
    out = run("import", signed_library.still, signed_library.folder, expect=2).output
    assert "is a folder: add --recursive" in out
    run("import", signed_library.still, tmp_path / "nope.png", expect=2)
    assert row_counts(app)["assets"] == 0


def test_plain_files_are_cataloged_without_lineage(app: Reelvault, tmp_path: Path):
    folder = tmp_path / "photos"
    (folder / "sub").mkdir(parents=True)
    textured_image(folder / "a.jpg", 320, 180, seed=5)
    textured_image(folder / "sub" / "b.png", 320, 180, seed=6)
    textured_image(folder / ".hidden.png", 320, 180, seed=7)

    report = import_paths(app, [folder], recursive=True)

    assert sorted(o.path.name for o in report.outcomes) == ["a.jpg", "b.png"]
    assert all(o.status == "imported" and o.generation_id is None for o in report.outcomes)
    assert all(o.states == ("c2pa_verifier: absent",) for o in report.outcomes)
    assert row_counts(app)["generations"] == 0


def test_an_unknown_file_type_is_one_clear_error(app: Reelvault, tmp_path: Path):
    (tmp_path / "doc.txt").write_text("hello")
    (outcome,) = import_paths(app, [tmp_path / "doc.txt"]).outcomes
    assert outcome.status == "failed"
    assert outcome.message.startswith("not an image or video reelvault can read")
    with pytest.raises(RequestError, match="no such file"):
        import_paths(app, [tmp_path / "missing.jpg"])


def test_imported_clips_list_and_are_remixed_from_their_first_frame(
    app: Reelvault, signed_library: SignedLibrary, run
):
    import_paths(app, [signed_library.clip])
    listed = json.loads(run("list", "--status", GenerationStatus.IMPORTED, "--json").stdout)
    assert [c["id"] for c in listed] == [signed_library.clip_id]
    with app.session() as session:
        gen = session.exec(select(Generation)).one()
    assert gen.details["imported_from"]["signer"].startswith("reelvault development signer")
    # Its source still is only a placeholder here: the local backend animates the clip's
    # first frame instead (no job of its own holds the imported clip).
    out = run("remix", signed_library.clip_id, "--prompt", "zoom", "--json").stdout
    remix = json.loads(out)
    assert (remix["status"], remix["parent_id"]) == ("completed", signed_library.clip_id)
    assert remix["input"]["id"] == gen.thumbnail_asset_id and remix["source"] is None


def test_a_placeholder_merged_into_a_clip_with_its_own_generation_gives_way(app: Reelvault):
    from catalog.assets import merge_assets

    def clip(clip_id: str, **fields: object) -> Generation:
        values = {"backend": "local", "model": "m", "prompt": "p", "seconds": 1, "size": "1x1"}
        return Generation(id=clip_id, **{**values, **fields})

    with app.session() as session:
        real = Asset(id="vid_" + "a" * 64, sha256="a" * 64, kind="video", mime="video/mp4",
                     bytes=1, stored_path="aa/" + "a" * 64)  # fmt: skip
        stand_in = Asset(id="vid_ph_x", kind="video", mime="video/mp4", is_placeholder=True,
                         manifest_label="urn:c2pa:x")  # fmt: skip
        session.add_all([real, stand_in])
        session.flush()
        session.add(clip("clip_real", status="completed", output_asset_id=real.id))
        session.add(
            clip("clip_stand_in", status=GenerationStatus.IMPORTED, output_asset_id=stand_in.id)
        )
        session.flush()
        session.add(clip("clip_child", status=GenerationStatus.IMPORTED, parent_id="clip_stand_in"))
        session.flush()
        merge_assets(session, stand_in, real)
    with app.session() as session:
        assert session.get(Asset, "vid_ph_x") is None
        assert session.get(Generation, "clip_stand_in") is None
        assert session.get(Generation, "clip_child").parent_id == "clip_real"
        assert session.get(Generation, "clip_real").output_asset_id == "vid_" + "a" * 64


def test_a_placeholder_merged_into_a_tagged_and_annotated_file_keeps_both_sides_words(
    app: Reelvault,
):
    """The same tag on both sides is kept once; a title on one and a note on the other
    both survive; where both have a value, the file that stays wins."""
    from catalog.assets import merge_assets
    from catalog.organise import add_tags, annotate, organised

    with app.session() as session:
        real = Asset(id="img_" + "b" * 64, sha256="b" * 64, kind="image", mime="image/png",
                     bytes=1, stored_path="bb/" + "b" * 64)  # fmt: skip
        stand_in = Asset(id="img_ph_y", kind="image", mime="image/png", is_placeholder=True,
                         manifest_label="urn:c2pa:y")  # fmt: skip
        session.add_all([real, stand_in])
        session.flush()
        add_tags(session, real, ["harbor", "keeper"])
        add_tags(session, stand_in, ["keeper", "dawn"])
        annotate(session, real, title="The real title", rating=4)
        annotate(session, stand_in, title="A placeholder title", note="shot at dawn")
        merge_assets(session, stand_in, real)
    with app.session() as session:
        assert session.get(Asset, "img_ph_y") is None
        kept = organised(session, session.get(Asset, "img_" + "b" * 64))
        assert kept.tags == ["dawn", "harbor", "keeper"]
        assert (kept.title, kept.note, kept.rating) == ("The real title", "shot at dawn", 4)


# -- who may take a placeholder's place -------------------------------------------------


def test_a_file_signed_with_another_clips_label_does_not_take_its_place(
    app: Reelvault, signed_library: SignedLibrary, tmp_path: Path
):
    import_paths(app, [signed_library.remix])
    with app.session() as session:
        stand_in = session.get(
            Asset, get_generation(session, signed_library.clip_id).output_asset_id
        )
    assert stand_in.is_placeholder and stand_in.kind == "video" and stand_in.manifest_label
    # Anyone can sign a photo with that label, even the trusted signer itself.
    raw = textured_image(tmp_path / "raw.jpg", 320, 180, seed=21)
    harbor = sign_image(
        signed_library.settings,
        raw,
        tmp_path / "harbor.jpg",
        "image/jpeg",
        label=stand_in.manifest_label,
    )

    (outcome,) = import_paths(app, [harbor]).outcomes

    assert outcome.status == "imported" and outcome.states == ("c2pa_verifier: trusted",)
    with app.session() as session:
        clip = get_generation(session, signed_library.clip_id)
        assert clip.output_asset_id == stand_in.id
        assert session.get(Asset, stand_in.id).is_placeholder
    assert remix_lineage(app, signed_library.remix_id)["clips"] == signed_library.lineage["clips"]


def test_a_label_never_links_an_ingredient_to_a_file_of_another_kind(
    app: Reelvault, signed_library: SignedLibrary, tmp_path: Path
):
    raw = textured_image(tmp_path / "raw.jpg", 320, 180, seed=22)
    harbor = sign_image(
        signed_library.settings,
        raw,
        tmp_path / "harbor.jpg",
        "image/jpeg",
        label=active_label(signed_library.clip),
    )
    import_paths(app, [harbor])  # a JPEG now carries the clip's label

    import_paths(app, [signed_library.remix])

    lineage = remix_lineage(app, signed_library.remix_id)
    assert lineage["clips"] == signed_library.lineage["clips"]
    with app.session() as session:
        clip = get_generation(session, signed_library.clip_id)
        assert session.get(Asset, clip.output_asset_id).kind == "video"


def test_filling_a_placeholder_gives_it_the_files_kind_and_id(app: Reelvault, tmp_path: Path):
    photo = textured_image(tmp_path / "photo.jpg", 320, 180, seed=4)
    sha = hashlib.sha256(photo.read_bytes()).hexdigest()
    with app.session() as session:  # credentials claimed these bytes were a video
        session.add(
            Asset(
                id=f"vid_{sha}",
                sha256=sha,
                kind="video",
                mime="video/mp4",
                is_placeholder=True,
                manifest_label="urn:c2pa:claimed",
            )
        )
        session.flush()
        session.add(
            Generation(
                id="clip_made",
                backend="import",
                model="m",
                prompt="p",
                seconds=1,
                size="1x1",
                status=GenerationStatus.IMPORTED,
                source_asset_id=f"vid_{sha}",
            )
        )

    (outcome,) = import_paths(app, [photo]).outcomes

    assert (outcome.status, outcome.asset_id, outcome.kind) == ("filled", f"img_{sha}", "image")
    with app.session() as session:
        assert session.get(Asset, f"vid_{sha}") is None
        asset = session.get(Asset, f"img_{sha}")
        assert (asset.kind, asset.mime, asset.is_placeholder) == ("image", "image/jpeg", False)
        assert session.get(Generation, "clip_made").source_asset_id == asset.id
    assert stored_path(app, asset.id).read_bytes() == photo.read_bytes()


def test_a_placeholder_known_by_label_alone_is_filled_only_by_trusted_credentials_of_its_signer(
    app: Reelvault, signed_library: SignedLibrary, tmp_path: Path
):
    from core.provenance.signing import init_signing
    from core.provenance.trust import add_anchors

    init_signing(app.settings)  # this home trusts its own development CA
    still = sign_image(
        app.settings, textured_image(tmp_path / "raw.png", 320, 180, seed=8), tmp_path / "a.png"
    )
    label = active_label(still, "image/png")
    # A video from another C2PA tool: the still is an ingredient, no reelvault assertion,
    # so the still is known by its manifest label alone.
    (tmp_path / "plain.mp4").write_bytes(remux(signed_library.clip.read_bytes()))
    made = sign_image(
        app.settings,
        tmp_path / "plain.mp4",
        tmp_path / "made.mp4",
        "video/mp4",
        ingredients=[(still, "image/png", "inputTo")],
    )
    (imported,) = import_paths(app, [made]).outcomes
    with app.session() as session:
        source_id = session.get(Generation, imported.generation_id).source_asset_id
        assert source_id.startswith("img_ph_") and session.get(Asset, source_id).sha256 is None

    raw = textured_image(tmp_path / "raw2.png", 320, 180, seed=9)
    partner = Settings.load(home=tmp_path / "partner")  # another signer, trusted here too
    add_anchors(app.settings, init_signing(partner).anchor.path)
    forgeries = [  # the same label, but signed by: someone untrusted; a trusted other signer;
        # this home's own signer, on a video
        sign_image(app.settings, raw, tmp_path / "f1.png", label=label,
                   signer=other_signer(tmp_path / "other")),
        sign_image(partner, raw, tmp_path / "f2.png", label=label),
        sign_image(app.settings, tmp_path / "plain.mp4", tmp_path / "f3.mp4", "video/mp4",
                   label=label),
    ]  # fmt: skip
    outcomes = import_paths(app, forgeries).outcomes
    assert [o.status for o in outcomes] == ["imported"] * 3
    assert [o.states[0].split(": ")[1] for o in outcomes] == ["valid", "trusted", "trusted"]
    with app.session() as session:
        assert session.get(Generation, imported.generation_id).source_asset_id == source_id
        assert session.get(Asset, source_id).is_placeholder

    (filled,) = import_paths(app, [still]).outcomes

    assert filled.status == "filled" and filled.states == ("c2pa_verifier: trusted",)
    with app.session() as session:
        assert session.get(Generation, imported.generation_id).source_asset_id == filled.asset_id
        assert session.get(Asset, source_id) is None


# -- import edge cases --------------------------------------------------------------------


def test_a_hidden_file_named_on_its_own_is_imported(run, app: Reelvault, tmp_path: Path):
    textured_image(tmp_path / ".hidden.jpg", 320, 180, seed=5)
    assert "imported " in run("import", tmp_path / ".hidden.jpg").output
    assert row_counts(app)["assets"] == 1


def test_a_file_the_system_refuses_fails_alone(
    app: Reelvault, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    folder = tmp_path / "photos"
    folder.mkdir()
    textured_image(folder / "a.jpg", 320, 180, seed=5)
    textured_image(folder / "b.jpg", 320, 180, seed=6)
    put_file = app.store.put_file

    def refuse_b(path: Path):
        if path.name == "b.jpg":
            raise PermissionError(13, "Permission denied", str(path))
        return put_file(path)

    monkeypatch.setattr(app.store, "put_file", refuse_b)
    report = import_paths(app, [folder], recursive=True)

    assert [(o.path.name, o.status) for o in report.outcomes] == [
        ("a.jpg", "imported"),
        ("b.jpg", "failed"),
    ]
    assert report.outcomes[1].message == "Permission denied"
    assert row_counts(app)["assets"] == 1


def test_generation_catalogs_its_files_through_ingest_not_the_importer():
    """One way in for every file: generation and ``import`` share ``ingest``, and the
    generation flow knows nothing of the importer's lineage rebuilding."""
    import ast

    import core.generation

    folder = Path(core.generation.__file__).parent
    imported: dict[str, set[str]] = {}
    for module in sorted(folder.glob("*.py")):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        imported[module.stem] = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
    assert not [name for name, found in imported.items() if "core.provenance.importer" in found]
    assert "core.provenance.ingest" in imported["finish"]
    assert "core.provenance.ingest" in imported["request"]
    importer = ast.parse(Path(import_paths.__code__.co_filename).read_text(encoding="utf-8"))
    assert any(
        isinstance(node, ast.ImportFrom) and node.module == "core.provenance.ingest"
        for node in ast.walk(importer)
    )


@pytest.mark.parametrize("video_first", [True, False], ids=["video-first", "still-first"])
def test_a_foreign_video_made_from_a_still_is_in_both_lineages_through_the_cli(
    run, app: Reelvault, signed_library: SignedLibrary, tmp_path: Path, video_first: bool
):
    """image→video from another C2PA tool's credentials (the still an ``inputTo``
    ingredient, no reelvault assertion): ``lineage`` of either names the other, whichever
    file is imported first."""
    from core.provenance.signing import init_signing

    init_signing(app.settings)  # this home trusts its own development CA
    raw = textured_image(tmp_path / "raw.png", 320, 180, seed=8)
    still = sign_image(app.settings, raw, tmp_path / "harbor.png")
    (tmp_path / "plain.mp4").write_bytes(remux(signed_library.clip.read_bytes()))
    made = sign_image(app.settings, tmp_path / "plain.mp4", tmp_path / "made.mp4", "video/mp4",
                      ingredients=[(still, "image/png", "inputTo")])  # fmt: skip
    outcomes = {}
    for path in (made, still) if video_first else (still, made):
        [outcomes[path]] = json.loads(run("import", path, "--json").stdout)["files"]
    assert outcomes[still]["status"] == ("filled" if video_first else "imported")
    clip, still_id = outcomes[made]["generation_id"], outcomes[still]["asset_id"]
    for target in (still_id, clip):
        family = json.loads(run("lineage", target, "--json").stdout)
        assert family["source"]["id"] == still_id and family["source"]["placeholder"] is None
        assert family["source"]["original_name"] == "harbor.png"
        assert [(c["id"], c["status"]) for c in family["clips"]] == [(clip, "imported")]
        tree = run("lineage", target).stdout.splitlines()
        assert tree[0].startswith(still_id[:16]) and "harbor.png" in tree[0]
        assert clip in tree[1]
    assert len(json.loads(run("assets", "--kind", "image", "--json").stdout)) == 1
