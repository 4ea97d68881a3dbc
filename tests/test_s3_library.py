"""A library whose files are in a bucket (a loopback SeaweedFS): the commands, the web
app, the faults, and two homes that share nothing but the catalog and the bucket."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from starlette.testclient import TestClient

from catalog.models import Asset
from core.api.errors import StorageError
from core.api.settings import Settings
from core.cli import cli
from core.host.app import Reelvault
from core.media import s3 as s3_module
from core.testing.seaweed import SeaweedServer
from core.web.app import create_app
from tests.conftest import BUCKET, point_at


def generate(run, still: Path, *options: str) -> dict:
    args = ("generate", still, "-p", "pan right", "--seconds", "1", "--size", "640x360")
    return json.loads(run(*options, *args, "--json").stdout)


def asset_rows(db_url: str) -> int:
    engine = sa.create_engine(db_url)
    try:
        with engine.connect() as conn:
            return conn.execute(sa.select(sa.func.count()).select_from(Asset)).scalar_one()
    except (sa.exc.OperationalError, sa.exc.ProgrammingError):  # no catalog was created
        return 0
    finally:
        engine.dispose()


def test_a_clip_in_a_bucket_is_shown_verified_and_audited(
    run, home: Path, still: Path, s3_url: str, s3_server: SeaweedServer
):
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'media = "{s3_url}"\n')
    run("signing", "init")
    clip = generate(run, still)
    video = clip["video"]
    prefix = s3_url.removeprefix(f"s3://{BUCKET}/")
    key = f"{prefix}/{video['sha256'][:2]}/{video['sha256']}"
    body = s3_server.client().get_object(Bucket=BUCKET, Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == video["sha256"]
    assert not (home / "media").exists()  # nothing went to the local folder

    shown = json.loads(run("show", clip["id"], "--json").stdout)
    assert shown["video"]["path"] == f"{s3_url}/{video['sha256'][:2]}/{video['sha256']}"
    assert "s3://" in run("show", clip["id"]).stdout
    run("verify", clip["id"])
    assert json.loads(run("audit", "--json").stdout)["clean"]

    secrets = (s3_server.secret_key, s3_server.access_key)
    written = [run("export", "--format", "jsonl").stdout, run("lineage", clip["id"]).stdout]
    written += [p.read_bytes().decode("latin-1") for p in home.rglob("*") if p.is_file()]
    assert not any(secret in text for secret in secrets for text in written)

    s3_server.client().put_object(Bucket=BUCKET, Key=key, Body=body[:-10] + bytes(10))
    report = json.loads(run("audit", "--json", expect=1).stdout)
    assert report["counts"]["changed"] == 1
    s3_server.client().delete_object(Bucket=BUCKET, Key=key)
    report = json.loads(run("audit", "--json", expect=1).stdout)
    assert report["counts"]["missing"] == 1 and report["counts"]["changed"] == 0
    assert "s3://" in report["findings"][0]["message"]


def test_two_homes_share_only_the_catalog_and_the_bucket(
    tmp_path: Path, db_url: str, still: Path, s3_url: str
):
    """A clip made in home A is shown, verified, audited and served from home B."""
    runner = CliRunner()

    def in_home(name: str, *args: object, expect: int = 0):
        options = ["--home", tmp_path / name, "--db", db_url, "--media", s3_url]
        result = runner.invoke(cli, [str(a) for a in (*options, *args)])
        assert result.exit_code == expect, result.output
        return result

    in_home("a", "signing", "init")
    clip = generate(lambda *a: in_home("a", *a), still)
    assert not (tmp_path / "b").exists()
    assert not (tmp_path / "a" / "media").exists()

    shown = json.loads(in_home("b", "show", clip["id"], "--json").stdout)
    assert shown["video"]["path"].startswith(s3_url)
    in_home("b", "verify", clip["id"])
    assert json.loads(in_home("b", "audit", "--json").stdout)["clean"]

    # and the other way: a job submitted from A is finished by a worker in B
    args = ("submit", still, "-p", "tilt up", "--seconds", "1", "--size", "640x360", "--json")
    queued = json.loads(in_home("a", *args).stdout)
    in_home("b", "worker", "--until-idle")
    finished = json.loads(in_home("a", "show", queued["id"], "--json").stdout)
    assert finished["status"] == "completed"
    assert finished["video"]["path"].startswith(s3_url)
    assert queued["id"] in in_home("a", "lineage", queued["id"]).stdout
    assert json.loads(in_home("a", "audit", "--json").stdout)["clean"]

    app_b = Reelvault(Settings.load(home=tmp_path / "b", db_url=db_url, media=s3_url))
    try:
        with TestClient(create_app(app_b), base_url="http://127.0.0.1") as client:
            url = f"/media/{clip['video']['id']}"
            whole = client.get(url)
            part = client.get(url, headers={"range": "bytes=100-199"})
            tail = client.get(url, headers={"range": "bytes=-50"})
            beyond = client.get(url, headers={"range": f"bytes={len(whole.content)}-"})
    finally:
        app_b.close()
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert hashlib.sha256(whole.content).hexdigest() == clip["video"]["sha256"]
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert tail.status_code == 206 and tail.content == whole.content[-50:]
    assert beyond.status_code == 416


def test_wrong_credentials_are_one_clear_line_and_store_nothing(
    run, home: Path, db_url: str, still: Path, s3_url: str, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "not-the-secret")
    result = run(
        "--media", s3_url, "generate", still, "-p", "pan right", "--seconds", "1", expect=1
    )
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "refused the credentials" in lines[0], result.stderr
    assert "not-the-secret" not in result.output
    assert asset_rows(db_url) == 0


def test_a_missing_bucket_is_one_clear_line_naming_it(
    run, still: Path, s3_url: str, s3_server: SeaweedServer, db_url: str
):
    result = run("--media", "s3://no-such-bucket-here/x", "generate", still, "-p", "pan", expect=1)
    assert result.stderr.splitlines() == [
        f"Error: bucket 'no-such-bucket-here' does not exist at {s3_server.endpoint}"
    ]
    assert asset_rows(db_url) == 0


@pytest.mark.slow
def test_the_server_stopped_during_an_upload_leaves_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, db_url: str, run, home: Path, still: Path
):
    """Killed after the first part: no object under the final key, and no row."""
    with SeaweedServer(tmp_path / "weed") as server:
        server.create_bucket("fault")
        point_at(monkeypatch, server)
        monkeypatch.setattr(s3_module, "MULTIPART_THRESHOLD", 1 << 20)
        monkeypatch.setattr(s3_module, "PART_SIZE", 5 << 20)
        store = s3_module.S3Store.from_url(
            "s3://fault/lib", cache_dir=tmp_path / "cache", cache_bytes=1 << 30
        )

        def pull_the_plug(number: int) -> None:
            if number == 2:
                server.stop()

        store.on_part = pull_the_plug
        big = tmp_path / "big.bin"
        big.write_bytes(bytes(range(251)) * 60_000)
        with pytest.raises(StorageError, match="storage server"):
            store.put_file(big)

        result = run("--media", "s3://fault/lib", "generate", still, "-p", "pan", expect=1)
        assert "cannot reach the storage server" in result.stderr
        assert asset_rows(db_url) == 0

        server.start()
        store.on_part = None
        assert list(store.digests()) == []
        assert not server.client().list_objects_v2(Bucket="fault").get("Contents")
        stored = store.put_file(big)  # the same upload, tried again, goes through
        assert store.size_of(stored.sha256) == big.stat().st_size


def test_import_into_a_bucket_and_the_media_environment_variable(
    run, home: Path, still: Path, s3_url: str, s3_server: SeaweedServer,
    monkeypatch: pytest.MonkeyPatch,
):  # fmt: skip
    monkeypatch.setenv("REELVAULT_MEDIA", s3_url)
    assert run("media", "where").stdout.strip() == s3_url
    imported = json.loads(run("import", still, "--json").stdout)
    assert imported["counts"] == {"imported": 1}
    sha = hashlib.sha256(still.read_bytes()).hexdigest()
    key = f"{s3_url.removeprefix(f's3://{BUCKET}/')}/{sha[:2]}/{sha}"
    assert s3_server.client().head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0
    assert not (home / "media").exists()
    again = json.loads(run("import", still, "--json").stdout)
    assert again["counts"] == {"already": 1}


@pytest.mark.slow
def test_a_job_the_bucket_fails_is_left_for_a_retry_then_finished(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, run, home: Path, db_url: str, still: Path
):
    """The bucket goes away while workers hold a job: a worker in another home, which
    cannot fetch the still, leaves it unsent; the submitting home's worker renders it but
    cannot upload it. Neither fails it for good nor stores anything; once the server is
    back, the worker that rendered it finishes it."""
    with SeaweedServer(tmp_path / "weed") as server:
        server.create_bucket("jobs")
        point_at(monkeypatch, server)
        media = ("--media", "s3://jobs/lib")
        other = ("--home", tmp_path / "other", "--db", db_url, *media)
        args = ("submit", still, "-p", "pan", "--seconds", "1", "--size", "640x360", "--json")
        job = json.loads(run(*media, *args).stdout)["id"]
        server.stop()
        retry = f"{job} left for a retry"
        unreachable = "s3://jobs/lib: cannot reach the storage server"
        out = run(*other, "worker", "--until-idle", "--lease", "1", expect=1).output
        assert f"{retry}: not sent yet: {unreachable}" in out
        time.sleep(1.5)  # that worker's lease runs out
        out = run(*media, "worker", "--until-idle", "--lease", "1", expect=1).output
        assert f"{retry}: {unreachable}" in out
        stuck = json.loads(run(*media, "show", job, "--json").stdout)
        assert stuck["status"] not in ("completed", "failed") and stuck["output_asset_id"] is None

        server.start()
        time.sleep(1.5)
        # the local backend's render lives in the home that ran it: that home finishes
        assert f"{job} completed" in run(*media, "worker", "--until-idle").output
        done = json.loads(run(*media, "show", job, "--json").stdout)
        assert done["status"] == "completed" and done["video"]["path"].startswith("s3://jobs/")
        assert json.loads(run(*media, "audit", "--json").stdout)["clean"]


def test_doctor_and_an_emptied_catalog_with_the_files_in_a_bucket(
    run, home: Path, still: Path, s3_url: str, s3_server: SeaweedServer
):
    """Issue 10's library checks read the store through its interface: a bucket's
    objects count as stored files for doctor's orphans and for an emptied catalog."""
    import io

    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'media = "{s3_url}"\n')
    generate(run, still)
    assert json.loads(run("doctor", "--json").stdout)["healthy"] is True
    app = Reelvault(Settings.load(home=home))
    try:
        orphan = app.store.put_stream(io.BytesIO(b"an object no row names"))
    finally:
        app.close()
    report = json.loads(run("doctor", "--json", expect=1).stdout)
    assert report["orphans"] == [orphan.sha256]
    assert run("doctor", "--fix", expect=1).output.count("orphan files: 1") == 1
    prefix = s3_url.removeprefix(f"s3://{BUCKET}/")
    key = f"{prefix}/{orphan.sha256[:2]}/{orphan.sha256}"
    assert s3_server.client().head_object(Bucket=BUCKET, Key=key)  # never deleted by --fix

    if sa.make_url(Settings.load(home=home).db_url).get_backend_name() != "sqlite":
        return  # an emptied catalog file is SQLite's own fault
    catalog = home / "catalog.db"
    catalog.write_bytes(b"")
    for wal in home.glob("catalog.db-*"):
        wal.unlink()
    result = run("list", expect=2)
    assert result.stderr.splitlines() == [
        f"Error: the catalog {catalog} is empty (0 bytes) while the media store {s3_url} "
        "holds files: restore the catalog from a backup, or move it aside and "
        "`reelvault import` your clips into a new one"
    ]
