"""``reelvault audit``: files, credentials and lineage checked against each other."""

from __future__ import annotations

import json
import shutil
import tracemalloc
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import select

from catalog.models import Asset, Generation
from catalog.queries import verifications_for
from core.api.settings import Settings
from core.generation import derive
from core.host.app import Reelvault
from core.provenance.audit import audit
from core.provenance.importer import import_paths
from core.provenance.signing import init_signing
from core.provenance.trust import add_anchors
from tests.conftest import on_postgresql, textured_image
from tests.provenance_support import (
    TAMPERS,
    SignedLibrary,
    Tamper,
    quick_clip,
    signed_library,
    stored_path,
)

__all__ = ["signed_library"]  # a fixture, used by name

STATE_FINDINGS = {
    "invalid": {"invalid"},
    "unreadable": {"unreadable"},
    "absent": {"credentials_removed"},
    "trusted": set(),
}


def kinds(report) -> set[str]:
    return {f.kind for f in report.findings}


def rewrite(path: Path, data: bytes) -> None:
    path.chmod(0o644)  # the store keeps files read-only
    path.write_bytes(data)


Family = tuple[Generation, Generation, Generation]


def make_family(app: Reelvault, folder: Path) -> Family:
    """A signed clip and its remix, plus a second still with a clip of its own."""
    init_signing(app.settings)
    clip = quick_clip(app, textured_image(folder / "still.jpg"), "pan right")
    remix = derive(app, clip.id, "tilt up").generation
    other = quick_clip(app, textured_image(folder / "other.jpg", seed=9), "zoom out")
    return clip, remix, other


@dataclass(frozen=True)
class FamilyHome:
    home: Path
    family: Family


@pytest.fixture(scope="module")
def family_home(tmp_path_factory: pytest.TempPathFactory) -> FamilyHome:
    """The family, generated (and signed) once per module in a SQLite home of its own.

    Every audit writes verification records and most tests here damage something, so
    each test gets a copy of this home (a few small files) rather than the home itself.
    """
    root = tmp_path_factory.mktemp("audit-family")
    app = Reelvault(
        Settings.load(home=root / "home", db_url=f"sqlite:///{root / 'home' / 'catalog.db'}")
    )
    try:
        return FamilyHome(root / "home", make_family(app, root))
    finally:
        app.close()


@pytest.fixture
def home(home: Path, request: pytest.FixtureRequest) -> Path:
    """The test's home; for a test that asks for ``family``, a copy of the family's home.

    On PostgreSQL the catalog is a database of its own, so there ``family`` builds it.
    """
    if "family" in request.fixturenames and not on_postgresql():
        template: FamilyHome = request.getfixturevalue("family_home")
        shutil.copytree(template.home, home)
    return home


@pytest.fixture
def family(app: Reelvault, tmp_path: Path, request: pytest.FixtureRequest) -> Family:
    if on_postgresql():
        return make_family(app, tmp_path)
    template: FamilyHome = request.getfixturevalue("family_home")
    return template.family


def test_a_healthy_catalog_audits_clean(app: Reelvault, family, run):
    report = audit(app)
    assert report.clean and report.notes == []
    assert report.checked == 8  # 2 stills, 3 videos, 3 thumbnails
    assert report.states == {"trusted": 3, "absent": 5}

    data = json.loads(run("audit", "--json").stdout)
    assert data["clean"] and data["counts"]["changed"] == 0
    text = run("audit").output
    assert "files checked" in text and "lineage contradiction" in text


def test_audit_finds_a_file_changed_on_disk(app: Reelvault, family, run):
    clip, _, _ = family
    path = stored_path(app, clip.output_asset_id)
    data = path.read_bytes()
    rewrite(path, data[:-100] + bytes(100))

    report = audit(app)

    assert kinds(report) == {"changed", "invalid"}
    assert {f.asset_id for f in report.findings} == {clip.output_asset_id}
    assert all(f.generation_id == clip.id for f in report.findings)
    out = run("audit", expect=1).output
    assert "changed in the store" in out and "Error: audit found 2 problem(s)" in out


def test_audit_finds_lineage_that_contradicts_the_files_ingredients(app: Reelvault, family):
    _, remix, other = family
    with app.session() as session:  # the catalog now claims the remix came from "other"
        session.execute(
            sa.update(Generation).where(Generation.id == remix.id).values(parent_id=other.id)
        )

    report = audit(app)

    (finding,) = report.findings
    assert finding.kind == "lineage_contradiction" and finding.generation_id == remix.id
    assert "parentOf" in finding.message and "catalog records parent" in finding.message


def test_audit_finds_a_source_the_file_does_not_name(app: Reelvault, family):
    clip, _, other = family
    with app.session() as session:
        session.execute(
            sa.update(Generation)
            .where(Generation.id == clip.id)
            .values(source_asset_id=other.source_asset_id)
        )
        session.execute(  # and a remix whose parent the file does not mention at all
            sa.update(Generation).where(Generation.id == other.id).values(parent_id=clip.id)
        )

    by_clip = {f.generation_id: f.kind for f in audit(app).findings}

    assert by_clip == {clip.id: "lineage_contradiction", other.id: "lineage_missing"}


def test_audit_finds_a_missing_file(app: Reelvault, family):
    clip, _, _ = family
    path = stored_path(app, clip.thumbnail_asset_id)
    path.chmod(0o644)
    path.unlink()
    (finding,) = audit(app).findings
    assert finding.kind == "missing" and finding.asset_id == clip.thumbnail_asset_id


@pytest.mark.parametrize("tamper", TAMPERS, ids=[t.name for t in TAMPERS])
def test_every_tamper_case_is_the_right_audit_finding(
    app: Reelvault, signed_library: SignedLibrary, tamper: Tamper
):
    add_anchors(app.settings, signed_library.ca_pem)
    import_paths(app, [signed_library.folder], recursive=True)
    assert audit(app).clean
    original = getattr(signed_library, tamper.file)
    with app.session() as session:
        asset = session.exec(select(Asset).where(Asset.original_name == original.name)).one()
    rewrite(app.store.root / asset.stored_path, tamper.damage(original.read_bytes()))

    report = audit(app)

    with app.session() as session:
        state = verifications_for(session, asset.id)[-1].state
    assert state in tamper.states
    assert kinds(report) == {"changed"} | STATE_FINDINGS[state]
    assert {f.asset_id for f in report.findings} == {asset.id}


def test_audit_since_only_checks_newer_files(app: Reelvault, family):
    with app.session() as session:
        session.execute(sa.update(Asset).values(created_at=datetime.now(UTC) - timedelta(days=30)))
    quick_clip(app, textured_image(app.settings.home.parent / "new.jpg", seed=4))
    report = audit(app, since=datetime.now(UTC) - timedelta(days=1))
    assert report.checked == 3  # the new still, video and thumbnail


def test_audit_walks_the_catalog_in_batches_with_flat_memory(app: Reelvault, family):
    seen: list[tuple[str, int]] = []
    tracemalloc.start()
    try:
        report = audit(app, batch_size=2, on_progress=lambda s, p: seen.append((s, p)))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert report.clean and report.checked == 8
    assert seen[-1] == ("8/8", 100) and len(seen) == 8
    assert peak < 20 * 1024 * 1024


def test_audit_of_an_imported_family_with_placeholders(
    app: Reelvault, signed_library: SignedLibrary
):
    import_paths(app, [signed_library.remix])
    report = audit(app)
    # the remix and the first frame import took from it; its parent and still are placeholders
    assert report.clean and report.checked == 2 and report.placeholders == 2


def test_audit_notices_credentials_stripped_from_a_file(app: Reelvault, family):
    from tests.provenance_support import remux

    clip, _, _ = family
    path = stored_path(app, clip.output_asset_id)
    rewrite(path, remux(path.read_bytes()))
    assert kinds(audit(app)) == {"changed", "credentials_removed"}


def test_a_changed_file_teaches_the_catalog_nothing(app: Reelvault, family):
    clip, remix, _ = family
    with app.session() as session:  # as for a file cataloged before labels were kept
        session.execute(
            sa.update(Asset).where(Asset.id == clip.output_asset_id).values(manifest_label=None)
        )
    # The clip's file is replaced by another intact, trusted file: the remix.
    rewrite(
        stored_path(app, clip.output_asset_id), stored_path(app, remix.output_asset_id).read_bytes()
    )

    report = audit(app)

    assert kinds(report) == {"changed"}  # not a lineage finding from someone else's manifest
    with app.session() as session:
        assert session.get(Asset, clip.output_asset_id).manifest_label is None
        assert verifications_for(session, clip.output_asset_id)[-1].state == "trusted"
