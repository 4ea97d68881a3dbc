"""``get``, ``rm``, ``gc`` and ``info`` through the command line."""

from __future__ import annotations

import hashlib
import json
import os
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from catalog.models import Generation, PolicyDecisionRecord, Removal
from core.api.settings import Settings
from core.media.store import ContentStore
from tests.conftest import on_postgresql, textured_image
from tests.test_cli import generate


def stored_file(home: Path, sha: str) -> Path:
    return home / "media" / sha[:2] / sha


def age(path: Path, seconds: float = 7200) -> None:
    """Make a file look old enough for ``gc``'s grace period."""
    then = time.time() - seconds
    os.utime(path, (then, then))


# -- get ---------------------------------------------------------------------------------


def test_get_writes_a_named_copy_and_never_overwrites(run, home: Path, still: Path, tmp_path):
    clip = generate(run, still, prompt="Pan right over the Harbor!")
    out = tmp_path / "out"
    out.mkdir()
    written = Path(run("get", clip["id"][:12], "-o", out).stdout.strip())
    assert written == out / f"{clip['id']}-pan-right-over-the-harbor.mp4"
    stored = stored_file(home, clip["video"]["sha256"])
    assert written.read_bytes() == stored.read_bytes()

    refused = run("get", clip["id"], "-o", out, expect=2)
    assert "exists" in refused.output and "--force" in refused.output
    written.write_bytes(b"mine")
    run("get", clip["id"], "-o", written, expect=2)
    assert written.read_bytes() == b"mine"  # not replaced
    run("get", clip["id"], "-o", written, "--force")
    assert written.read_bytes() == stored.read_bytes()

    thumb = Path(run("get", clip["id"], "--variant", "thumbnail", "-o", out).stdout.strip())
    assert thumb.name.endswith("-thumbnail.jpg") and thumb.read_bytes()[:2] == b"\xff\xd8"
    source = Path(run("get", clip["id"], "--variant", "source", "-o", out).stdout.strip())
    assert source.name.endswith("-still.jpg")
    assert source.read_bytes() == still.read_bytes()
    assert sorted(p.name for p in out.iterdir()) == sorted([written.name, thumb.name, source.name])


def test_get_fails_cleanly(run, still: Path, tmp_path: Path):
    clip = generate(run, still)
    missing = tmp_path / "no-such-folder" / "x.mp4"
    assert "not a folder" in run("get", clip["id"], "-o", missing, expect=2).output
    assert "no clip or asset" in run("get", "clip_zzzz", expect=1).output
    asset = clip["source_asset_id"]
    assert "not a clip" in run("get", asset, "--variant", "thumbnail", expect=2).output
    assert not any(p.name.endswith(".part") for p in tmp_path.rglob("*"))


def test_get_copies_an_asset_out_under_its_id_and_file_name(run, still: Path, tmp_path: Path):
    clip = generate(run, still)
    out = tmp_path / "out"
    out.mkdir()
    written = Path(run("get", clip["source_asset_id"][:12], "-o", out).stdout.strip())
    assert written == out / f"{clip['source_asset_id']}-still.jpg"
    assert written.read_bytes() == still.read_bytes()


def test_generate_takes_an_output_path(run, still: Path, tmp_path: Path):
    target = tmp_path / "made.mp4"
    clip = generate(run, still, "-o", target)
    assert target.read_bytes()[4:8] == b"ftyp"
    remix = json.loads(run("remix", clip["id"], "-p", "tilt up", "-o", tmp_path, "--json").stdout)
    assert (tmp_path / f"{remix['id']}-tilt-up.mp4").is_file()
    taken = run("generate", still, "-p", "x", "--seconds", "1", "--size", "640x360",
                "-o", target, expect=2)  # fmt: skip
    assert "exists" in taken.output


# -- rm and gc ---------------------------------------------------------------------------


def test_rm_refuses_while_clips_derive_unless_asked(run, home: Path, still: Path):
    parent = generate(run, still)
    child = json.loads(run("remix", parent["id"], "-p", "tilt up", "--json").stdout)
    refused = run("rm", parent["id"], expect=2)
    assert child["id"] in refused.output and "--with-descendants" in refused.output
    assert len(json.loads(run("list", "--json").stdout)) == 2  # nothing removed
    refused = run("rm", parent["source_asset_id"], expect=2)
    assert parent["id"] in refused.output

    removed = json.loads(run("rm", parent["id"], "--with-descendants", "--json").stdout)
    assert removed["clips"] == sorted([parent["id"], child["id"]])
    assert parent["video"]["id"] in removed["assets"]
    assert parent["source_asset_id"] not in removed["assets"]  # the still stays
    assert json.loads(run("list", "--json").stdout) == []
    run("show", parent["id"], expect=1)

    engine = sa.create_engine(Settings.load(home=home).db_url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT item_id, item_kind, removed_by FROM removals"))
        record = {(r.item_id, r.item_kind): r.removed_by for r in rows}
    engine.dispose()
    assert (parent["id"], "clip") in record and (child["id"], "clip") in record
    assert "@" in record[(parent["id"], "clip")]

    # the files stay until gc, which frees exactly what no row refers to
    video = stored_file(home, parent["video"]["sha256"])
    source = stored_file(home, parent["source"]["sha256"])
    assert video.is_file()
    for path in (home / "media").rglob("*"):
        if path.is_file():
            age(path)
    dry = json.loads(run("gc", "--dry-run", "--json").stdout)
    assert dry["bytes"] > 0 and video.is_file()
    done = run("gc")
    assert "freed" in done.stdout and not video.exists() and source.is_file()
    assert json.loads(run("gc", "--json").stdout)["files"] == []
    run("audit")  # nothing the catalog refers to is missing


def test_rm_of_several_items_is_all_or_none_and_takes_assets_too(
    run, home: Path, still: Path, tmp_path: Path
):
    lone = generate(run, still)
    parent = generate(run, textured_image(tmp_path / "b.png", 640, 360, seed=4), prompt="tilt")
    child = json.loads(run("remix", parent["id"], "-p", "pan left", "--json").stdout)
    picture = textured_image(tmp_path / "poster.jpg", 320, 180, seed=7)
    [imported] = json.loads(run("import", picture, "--json").stdout)["files"]
    image = imported["asset_id"]

    refused = run("rm", lone["id"], image, parent["id"], expect=2)
    assert child["id"] in refused.output and "--with-descendants" in refused.output
    assert len(json.loads(run("list", "--json").stdout)) == 3  # none of the three went
    assert image in {a["id"] for a in json.loads(run("assets", "-n", "0", "--json").stdout)}

    removed = json.loads(run("rm", lone["id"], image[:12], "--json").stdout)
    assert removed["clips"] == [lone["id"]] and image in removed["assets"]
    assert image not in {a["id"] for a in json.loads(run("assets", "-n", "0", "--json").stdout)}
    assert "no clip or asset" in run("get", image, expect=1).output
    engine = sa.create_engine(Settings.load(home=home).db_url)
    with engine.connect() as conn:
        query = "SELECT item_id, item_kind, sha256, removed_by, removed_at, summary FROM removals"
        record = {(r.item_id, r.item_kind): r for r in conn.execute(sa.text(query))}
    engine.dispose()
    assert {(image, "asset"), (lone["id"], "clip"), (lone["video"]["id"], "asset")} <= set(record)
    what = record[(image, "asset")]  # what, who and when
    assert what.sha256 == hashlib.sha256(picture.read_bytes()).hexdigest()
    assert "poster.jpg" in str(what.summary) and "@" in what.removed_by
    when = datetime.fromisoformat(str(what.removed_at))
    assert abs(datetime.now(UTC) - when.replace(tzinfo=when.tzinfo or UTC)) < timedelta(minutes=10)


def failed_attempt(app, clip_id: str, days_ago: float) -> None:
    """A failed attempt as a pre-flight failure leaves it, with the policy's verdict."""
    with app.session() as session:
        session.add(
            Generation(
                id=clip_id,
                backend="sora",
                model="sora-2",
                prompt="no API key",
                seconds=4,
                size="1280x720",
                status="failed",
                error_code="no_api_key",
                created_at=datetime.now(UTC) - timedelta(days=days_ago),
            )
        )
        session.flush()
        session.add(
            PolicyDecisionRecord(
                generation_id=clip_id, plugin="p", rule_id="r", outcome="allow", reason="ok"
            )
        )


def test_rm_clears_failed_attempts_in_bulk(run, app, still: Path):
    ok = generate(run, still)
    failed_attempt(app, "clip_old1", days_ago=10)
    failed_attempt(app, "clip_old2", days_ago=9)
    failed_attempt(app, "clip_new1", days_ago=1)
    preview = json.loads(run("rm", "--status", "failed", "--before", "7d", "-n", "--json").stdout)
    assert preview["clips"] == ["clip_old1", "clip_old2"]
    assert len(json.loads(run("list", "--json").stdout)) == 4  # a dry run removes nothing
    removed = run("rm", "--status", "failed", "--before", "7d")
    assert "removed clip clip_old1" in removed.stdout
    left = [c["id"] for c in json.loads(run("list", "--json").stdout)]
    assert sorted(left) == sorted([ok["id"], "clip_new1"])
    run("rm", "--status", "failed")
    assert [c["id"] for c in json.loads(run("list", "--json").stdout)] == [ok["id"]]
    assert "name the clips" in run("rm", expect=2).output
    assert "needs --status" in run("rm", "--before", "1d", expect=2).output
    typo = run("rm", "--status", "faild", "--before", "7d", expect=2).output
    assert "'faild' is not one of" in typo and "'failed'" in typo  # not "nothing matches"
    assert "'faild' is not one of" in run("list", "--status", "faild", expect=2).output


def test_gc_leaves_young_files_and_clears_work_leftovers(run, home: Path, still: Path):
    generate(run, still)
    orphan_dir = home / "media" / "ab"
    orphan_dir.mkdir(parents=True, exist_ok=True)
    young = orphan_dir / ("ab" + "0" * 62)
    young.write_bytes(b"just stored, row not written yet")
    leftover = home / "work" / "incoming" / "download-x"
    leftover.parent.mkdir(parents=True, exist_ok=True)
    leftover.write_bytes(b"12345")
    age(leftover)
    result = json.loads(run("gc", "--json").stdout)
    assert result["files"] == [] and young.is_file()
    assert result["leftovers"] == [str(leftover)] and not leftover.exists()
    age(young)
    assert json.loads(run("gc", "--json").stdout)["files"] == [str(young)]
    assert not young.exists()


def test_audit_tells_a_removal_from_a_loss(run, home: Path, still: Path):
    clip = generate(run, still)
    other = generate(run, textured_image(still.parent / "b.png", 640, 360, seed=4), prompt="tilt")
    run("rm", clip["id"])
    stored_file(home, clip["video"]["sha256"]).unlink()  # removed: not a finding
    stored_file(home, other["video"]["sha256"]).chmod(0o644)
    stored_file(home, other["video"]["sha256"]).unlink()  # lost: a finding
    report = json.loads(run("audit", "--json", expect=1).stdout)
    missing = [f["asset_id"] for f in report["findings"] if f["kind"] == "missing"]
    assert missing == [other["video"]["id"]]


# -- info --------------------------------------------------------------------------------


def test_info_says_where_everything_is(run, home: Path, still: Path):
    generate(run, still)
    data = json.loads(run("info", "--json").stdout)
    assert data["home"] == str(home)
    assert data["clips"] == 1 and data["stills"] == 1 and data["videos"] == 1
    assert data["bytes"] > 0 and data["media"] == str(home / "media")
    assert "local" in {p["name"] for p in data["plugins"]}
    from catalog.db import masked_url

    assert data["catalog"] == masked_url(Settings.load(home=home).db_url)
    assert data["signing"]["configured"] is False and "signing init" in data["signing"]["problem"]
    text = run("info").stdout
    assert "catalog" in text and "clips     1" in text and "not signing" in text
    run("signing", "init")
    signing = json.loads(run("info", "--json").stdout)["signing"]
    assert signing["configured"] is True and signing["subject"] and signing["problem"] is None
    trust = "trusted here" if signing["trusted_here"] else "not trusted here"
    assert f"signing   {signing['subject']} ({trust})" in run("info").stdout


def test_info_masks_the_catalog_password(run, db_url: str):
    """``info`` shows the catalog's URL, and a catalog it cannot open is one line: in
    neither is the password printed."""
    unreachable = "postgresql+psycopg://me:s3cret@127.0.0.1:1/rv"  # nothing listens there
    failed = run("--db", unreachable, "info", expect=1)
    assert "me:***@127.0.0.1:1/rv" in failed.output and "s3cret" not in failed.output
    assert len(failed.output.strip().splitlines()) == 1
    if on_postgresql():
        parsed = sa.make_url(db_url)
        secret = parsed.password or "s3cret"  # the server's own, or one trust ignores
        url = parsed.set(password=secret)
        shown = run("--db", url.render_as_string(hide_password=False), "info", "--json")
        assert json.loads(shown.stdout)["catalog"] == url.render_as_string(hide_password=True)
        assert f":{secret}@" not in shown.output and ":***@" in shown.output


@pytest.mark.skipif(on_postgresql(), reason="a SQLite catalog file is what a typo creates")
def test_a_new_catalog_is_announced_once(run, tmp_path: Path):
    typo = tmp_path / "hoem"
    first = run("--home", typo, "list")
    assert "new empty catalog" in first.stderr and str(typo) in first.stderr
    second = run("--home", typo, "list")
    assert "new empty catalog" not in second.stderr


def test_audit_notes_a_file_removed_on_purpose(run, app, home: Path, still: Path):
    """A file a removal record accounts for (the same bytes cataloged again after an
    ``rm`` and a ``gc``) is a note, not a loss."""
    clip = generate(run, still)
    with app.session() as session:
        session.add(
            Removal(
                item_id="clip_gone",
                item_kind="clip",
                sha256=clip["video"]["sha256"],
                removed_by="someone@host",
            )
        )
    video = stored_file(home, clip["video"]["sha256"])
    video.chmod(0o644)
    video.unlink()
    report = json.loads(run("audit", "--json").stdout)
    assert [f for f in report["findings"] if f["kind"] == "missing"] == []
    (note,) = [n for n in report["notes"] if n["kind"] == "removed"]
    assert note["asset_id"] == clip["video"]["id"] and "someone@host" in note["message"]


def test_each_store_deletes_and_dates_its_files(store: ContentStore, tmp_path: Path):
    """What ``gc`` asks of a store, on the local folder and on a bucket alike."""
    source = tmp_path / "f.bin"
    source.write_bytes(b"gc me" * 1000)
    stored = store.put_file(source)
    store.local_path(stored.sha256)  # cached too, for a bucket
    when = store.modified_at(stored.sha256)
    assert when is not None and abs(time.time() - when) < 600
    assert stored.sha256 in set(store.digests())
    store.delete(stored.sha256)
    assert not store.has(stored.sha256) and store.modified_at(stored.sha256) is None
    assert not store.path_for(stored.sha256).exists()  # no cached copy left behind
    store.delete(stored.sha256)  # gone already: fine


def test_file_names_are_safe_everywhere():
    from catalog.models import Asset
    from core.library.files import file_name, slug

    assert slug('Ça "marche" / über:alles?') == "ca-marche-uber-alles"
    odd = Asset(id="img_1", kind="image", mime="application/x-odd", original_name='a".b"c')
    assert file_name(odd, None) == "img_1-a.bc"


@pytest.mark.skipif(not on_postgresql(), reason="a database on a server, not a file")
def test_a_new_catalog_in_an_empty_server_database_is_announced_once(run, tmp_path: Path):
    """A ``--db`` naming an existing but empty PostgreSQL database (not the library's)
    says once that it made a new catalog there, and where, password masked."""
    from tests.conftest import fresh_catalog_url

    with fresh_catalog_url(tmp_path / "elsewhere") as url:
        parsed = sa.make_url(url)
        secret = parsed.password or "s3cret"  # the server's own, or one trust ignores
        typo = parsed.set(password=secret).render_as_string(hide_password=False)
        first = run("--db", typo, "list")
        assert "created a new empty catalog at" in first.stderr
        assert str(parsed.database) in first.stderr and ":***@" in first.stderr
        assert f":{secret}@" not in first.output
        second = run("--db", typo, "list")
        assert "new empty catalog" not in second.stderr
