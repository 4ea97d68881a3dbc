"""A library whose files are in a bucket (a loopback SeaweedFS): the commands, the web
app, the faults, and two homes that share nothing but the catalog and the bucket."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from httpx import Response
from starlette.testclient import TestClient

from catalog.models import Asset
from core.api.errors import StorageError
from core.api.settings import Settings
from core.cli import cli
from core.host.app import Reelvault
from core.media import s3 as s3_module
from core.testing.seaweed import SeaweedServer
from core.web.app import create_app
from tests.conftest import BUCKET, point_at, textured_image
from tests.lease_support import lapse_lease


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


def serve_media(home: Path, db_url: str, media: str, asset_id: str) -> dict[str, Response]:
    """``serve`` in ``home``: the whole file, a middle range, the tail and a range past
    its end, as a browser seeking in the video asks for them."""
    app = Reelvault(Settings.load(home=home, db_url=db_url, media=media))
    try:
        with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
            url = f"/media/{asset_id}"
            whole = client.get(url)
            return {
                "whole": whole,
                "part": client.get(url, headers={"range": "bytes=100-199"}),
                "tail": client.get(url, headers={"range": "bytes=-50"}),
                "beyond": client.get(url, headers={"range": f"bytes={len(whole.content)}-"}),
            }
    finally:
        app.close()


def assert_served(served: dict[str, Response], sha256: str) -> None:
    whole, part, tail = served["whole"], served["part"], served["tail"]
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert hashlib.sha256(whole.content).hexdigest() == sha256
    assert part.status_code == 206 and part.content == whole.content[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(whole.content)}"
    assert tail.status_code == 206 and tail.content == whole.content[-50:]
    assert served["beyond"].status_code == 416


def test_two_homes_share_only_the_catalog_and_the_bucket(
    tmp_path: Path, db_url: str, still: Path, s3_url: str
):
    """Two homes that share no folder, only the catalog and the bucket: a clip made in
    home A is shown, verified, audited and served from home B; a job submitted from home
    A is finished by a worker in home B, then home A shows, gets, traces, audits, serves
    and derives from that clip."""
    runner = CliRunner()
    home_a, home_b = tmp_path / "a", tmp_path / "b"

    def in_home(home: Path, *args: object, expect: int = 0):
        options = ["--home", home, "--db", db_url, "--media", s3_url]
        result = runner.invoke(cli, [str(a) for a in (*options, *args)])
        assert result.exit_code == expect, result.output
        return result

    in_home(home_a, "signing", "init")
    clip = generate(lambda *a: in_home(home_a, *a), still)
    assert not home_b.exists()
    assert not (home_a / "media").exists()

    shown = json.loads(in_home(home_b, "show", clip["id"], "--json").stdout)
    assert shown["video"]["path"].startswith(s3_url)
    in_home(home_b, "verify", clip["id"])
    assert json.loads(in_home(home_b, "audit", "--json").stdout)["clean"]
    assert_served(serve_media(home_b, db_url, s3_url, clip["video"]["id"]), clip["video"]["sha256"])

    # and the other way: a job submitted from A is finished by a worker in B
    args = ("submit", still, "-p", "tilt up", "--seconds", "1", "--size", "640x360", "--json")
    queued = json.loads(in_home(home_a, *args).stdout)
    assert "completed" in in_home(home_b, "worker", "--until-idle").output
    rendered_in_b = set(home_b.rglob("*"))
    finished = json.loads(in_home(home_a, "show", queued["id"], "--json").stdout)
    assert finished["status"] == "completed"
    video = finished["video"]
    assert video["path"] == f"{s3_url}/{video['sha256'][:2]}/{video['sha256']}"
    assert not any(home_a.rglob(video["sha256"]))  # home A has never held it

    got = Path(in_home(home_a, "get", queued["id"], "-o", tmp_path / "got.mp4").stdout.strip())
    assert hashlib.sha256(got.read_bytes()).hexdigest() == video["sha256"]
    assert queued["id"] in in_home(home_a, "lineage", queued["id"]).stdout
    assert json.loads(in_home(home_a, "audit", "--json").stdout)["clean"]
    assert_served(serve_media(home_a, db_url, s3_url, video["id"]), video["sha256"])

    remix = ("remix", queued["id"], "-p", "zoom out", "--json")
    derived = json.loads(in_home(home_a, *remix).stdout)
    assert derived["status"] == "completed" and derived["video"]["path"].startswith(s3_url)
    tree = json.loads(in_home(home_a, "lineage", derived["id"], "--json").stdout)
    assert queued["id"] in json.dumps(tree)
    assert json.loads(in_home(home_a, "audit", "--json").stdout)["clean"]
    assert set(home_b.rglob("*")) == rendered_in_b  # home A wrote nothing into B


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


def lapse_job_lease(home: Path, job: str) -> None:
    app = Reelvault(Settings.load(home=home))
    try:
        lapse_lease(app, job)
    finally:
        app.close()


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
        lapse_job_lease(home, job)  # that worker's lease runs out
        out = run(*media, "worker", "--until-idle", "--lease", "1", expect=1).output
        assert f"{retry}: {unreachable}" in out
        stuck = json.loads(run(*media, "show", job, "--json").stdout)
        assert stuck["status"] not in ("completed", "failed") and stuck["output_asset_id"] is None

        server.start()
        lapse_job_lease(home, job)  # and so does this one's, which kept the job for a retry
        # the local backend's render lives in the home that ran it: that home finishes
        assert f"{job} completed" in run(*media, "worker", "--until-idle").output
        done = json.loads(run(*media, "show", job, "--json").stdout)
        assert done["status"] == "completed" and done["video"]["path"].startswith("s3://jobs/")
        assert json.loads(run(*media, "audit", "--json").stdout)["clean"]


def test_serve_can_redirect_to_a_short_lived_presigned_url(
    run, home: Path, db_url: str, still: Path, s3_url: str, s3_server: SeaweedServer
):
    """With ``media_presign_seconds`` the browser reads the bucket itself: ``/media/ID``
    is a 307 to a URL signed for that long, which the real server answers (ranges too)
    with the file's type; the pages let media load from there, and nothing else."""
    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'media = "{s3_url}"\nmedia_presign_seconds = 300\n')
    clip = generate(run, still)
    video = clip["video"]
    app = Reelvault(Settings.load(home=home, db_url=db_url))
    try:
        with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
            redirect = client.get(f"/media/{video['id']}", follow_redirects=False)
            page = client.get(f"/clips/{clip['id']}")
            missing = client.get(f"/media/{'vid_' + '0' * 64}", follow_redirects=False)
    finally:
        app.close()
    assert redirect.status_code == 307 and redirect.headers["cache-control"] == "no-store"
    signed = redirect.headers["location"]
    assert signed.startswith(f"{s3_server.endpoint}/{BUCKET}/") and "X-Amz-Expires=300" in signed
    assert s3_server.secret_key not in signed
    policy = page.headers["content-security-policy"]
    assert f"media-src 'self' {s3_server.endpoint};" in policy
    assert f"img-src 'self' {s3_server.endpoint};" in policy
    assert "default-src 'none'" in policy
    assert missing.status_code == 404

    whole = httpx.get(signed)
    assert whole.status_code == 200 and whole.headers["content-type"] == "video/mp4"
    assert hashlib.sha256(whole.content).hexdigest() == video["sha256"]
    part = httpx.get(signed, headers={"range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == whole.content[100:200]

    (home / "config.toml").write_text(f'media = "{s3_url}"\nmedia_presign_seconds = "soon"\n')
    result = run("list", expect=1)
    assert "media_presign_seconds must be a whole number of seconds" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_named_aws_profile_gives_the_endpoint_and_credentials(
    run, home: Path, tmp_path: Path, still: Path, s3_url: str, s3_server: SeaweedServer,
    monkeypatch: pytest.MonkeyPatch,
):  # fmt: skip
    """The standard AWS files, not only the variables: AWS_PROFILE names a profile whose
    config holds the endpoint and region and whose credentials file holds the keys."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    aws = tmp_path / "aws"
    aws.mkdir()
    (aws / "config").write_text(
        f"[profile studio]\nregion = us-east-1\nendpoint_url = {s3_server.endpoint}\n"
    )
    (aws / "credentials").write_text(
        f"[studio]\naws_access_key_id = {s3_server.access_key}\n"
        f"aws_secret_access_key = {s3_server.secret_key}\n"
    )
    monkeypatch.setenv("AWS_CONFIG_FILE", str(aws / "config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(aws / "credentials"))
    monkeypatch.setenv("AWS_PROFILE", "studio")
    imported = json.loads(run("--media", s3_url, "import", still, "--json").stdout)
    assert imported["counts"] == {"imported": 1}

    monkeypatch.setenv("AWS_PROFILE", "nobody")
    result = run("--media", s3_url, "generate", still, "-p", "pan", expect=1)
    assert result.stderr.splitlines() == [
        f"Error: {s3_url}: the AWS profile 'nobody' is in neither {aws / 'config'} "
        f"nor {aws / 'credentials'}"
    ]

    monkeypatch.delenv("AWS_PROFILE")
    sha = hashlib.sha256(still.read_bytes()).hexdigest()
    key = f"{s3_url.removeprefix(f's3://{BUCKET}/')}/{sha[:2]}/{sha}"
    assert s3_server.client().head_object(Bucket=BUCKET, Key=key)["ContentLength"] > 0


def test_get_rm_and_gc_with_media_in_a_bucket(
    run, home: Path, still: Path, s3_url: str, s3_server: SeaweedServer,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
):  # fmt: skip
    """The library commands on a bucket: ``get`` copies the object out under the clip's
    name, ``rm`` leaves the objects, and ``gc`` deletes exactly those no row refers to."""
    from core.media import leftovers

    home.mkdir(parents=True, exist_ok=True)
    (home / "config.toml").write_text(f'media = "{s3_url}"\n')
    other = textured_image(tmp_path / "other.jpg", 640, 360, seed=9)
    kept, removed = generate(run, other), generate(run, still)
    prefix = s3_url.removeprefix(f"s3://{BUCKET}/")

    def key(sha: str) -> str:
        return f"{prefix}/{sha[:2]}/{sha}"

    def in_bucket(sha: str) -> bool:
        listed = s3_server.client().list_objects_v2(Bucket=BUCKET, Prefix=key(sha))
        return bool(listed.get("Contents"))

    video = removed["video"]["sha256"]
    body = s3_server.client().get_object(Bucket=BUCKET, Key=key(video))["Body"].read()
    written = Path(run("get", removed["id"], "-o", tmp_path).stdout.strip())
    assert written == tmp_path / f"{removed['id']}-pan-right.mp4" and written.read_bytes() == body

    run("rm", removed["id"])
    assert json.loads(run("gc", "--json").stdout)["files"] == []  # an hour's grace
    assert in_bucket(video)
    monkeypatch.setattr(leftovers, "LEFTOVER_GRACE_SECONDS", 0.0)
    dry = json.loads(run("gc", "--dry-run", "--json").stdout)
    own = {removed[f]["sha256"] for f in ("video", "thumbnail")}  # the still stays
    assert sorted(dry["files"]) == sorted(f"{s3_url}/{sha[:2]}/{sha}" for sha in own)
    assert dry["bytes"] >= len(body) and in_bucket(video)
    assert "freed" in run("gc").stdout
    assert not any(in_bucket(sha) for sha in own) and in_bucket(removed["source"]["sha256"])
    for asset in ("video", "thumbnail", "source"):
        assert in_bucket(kept[asset]["sha256"])
    assert json.loads(run("audit", "--json").stdout)["clean"]


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
