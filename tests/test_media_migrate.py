"""``reelvault media migrate``: a local library moves into a bucket, checked and resumable."""

from __future__ import annotations

import io
import json
import random
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from core.media import s3 as s3_module
from core.media.store import MediaStore
from core.testing.seaweed import SeaweedServer
from tests.conftest import BUCKET


def generate(run, still: Path) -> dict:
    args = ("generate", still, "-p", "pan right", "--seconds", "1", "--size", "640x360")
    return json.loads(run(*args, "--json").stdout)


def test_migrate_copies_checks_resumes_and_switches(
    run, home: Path, still: Path, s3_url: str, monkeypatch: pytest.MonkeyPatch
):
    clip = generate(run, still)
    local = MediaStore(home / "media")
    files = sorted(local.digests())
    assert len(files) >= 3  # still, video, thumbnail

    dry = json.loads(run("media", "migrate", "--to", s3_url, "--dry-run", "--json").stdout)
    assert dry["copied"] == len(files) and not dry["switched"]
    assert not (home / "config.toml").exists()

    sent = 0
    real_upload = s3_module.S3Store.upload

    def killed_after_two(self, path, sha256, size):  # the process dies mid-migration
        nonlocal sent
        if sent == 2:
            raise KeyboardInterrupt
        sent += 1
        return real_upload(self, path, sha256, size)

    monkeypatch.setattr(s3_module.S3Store, "upload", killed_after_two)
    assert "Aborted" in run("media", "migrate", "--to", s3_url, expect=1).output
    assert not (home / "config.toml").exists()  # still the local library
    monkeypatch.setattr(s3_module.S3Store, "upload", real_upload)

    done = json.loads(run("media", "migrate", "--to", s3_url, "--json").stdout)
    assert (done["already_there"], done["copied"]) == (2, len(files) - 2)
    assert done["switched"]
    config = tomllib.loads((home / "config.toml").read_text())
    assert config["media"] == s3_url
    assert run("media", "where").stdout.strip() == s3_url

    shown = json.loads(run("show", clip["id"], "--json").stdout)
    assert shown["video"]["path"].startswith(s3_url)
    assert json.loads(run("audit", "--json").stdout)["clean"]


def test_a_damaged_file_is_not_copied_and_nothing_switches(
    run, home: Path, still: Path, s3_url: str
):
    clip = generate(run, still)
    damaged = home / "media" / clip["video"]["sha256"][:2] / clip["video"]["sha256"]
    damaged.chmod(0o644)
    damaged.write_bytes(b"not the video any more")
    result = run("media", "migrate", "--to", s3_url, expect=1)
    assert "damaged, not copied" in result.stderr
    assert "could not be moved; the library stays where it is" in result.stderr
    assert not (home / "config.toml").exists()


@pytest.mark.slow
def test_a_migration_killed_outright_carries_on_when_run_again(
    run, home: Path, still: Path, s3_url: str, s3_server: SeaweedServer
):
    """SIGKILL, not an exception: the process gets no chance to tidy up. Every object
    in the bucket is then whole (each went up in one conditional PUT), config.toml still
    names the folder, and the next run sends only what is not there yet."""
    clip = generate(run, still)
    local = MediaStore(home / "media")
    rng = random.Random(13)
    for _ in range(40):  # enough files that the kill lands half-way
        local.put_stream(io.BytesIO(rng.randbytes(1 << 20)))
    files = set(local.digests())
    prefix = s3_url.removeprefix(f"s3://{BUCKET}/") + "/"
    bucket = s3_server.client()

    def in_bucket() -> dict[str, int]:
        listed = bucket.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        return {item["Key"].rsplit("/", 1)[1]: item["Size"] for item in listed}

    child = subprocess.Popen(
        [sys.executable, "-m", "core", "media", "migrate", "--to", s3_url],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        while not in_bucket() and child.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)
    finally:
        child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    # A PUT whose body arrived whole before the kill is still committed by the server a
    # moment later: read the bucket once it stops changing.
    sent, previous = in_bucket(), None
    while sent != previous and time.monotonic() < deadline:
        time.sleep(0.3)
        previous, sent = sent, in_bucket()
    assert 0 < len(sent) < len(files), "the kill should land half-way"
    assert all(size == local.size_of(sha) for sha, size in sent.items())  # none half-sent
    assert not (home / "config.toml").exists()  # still the local library
    assert run("media", "where").stdout.strip() == str(home / "media")

    done = json.loads(run("media", "migrate", "--to", s3_url, "--json").stdout)
    assert done["already_there"] == len(sent) and done["copied"] == len(files) - len(sent)
    assert done["switched"] and set(in_bucket()) == files
    assert run("media", "where").stdout.strip() == s3_url
    assert json.loads(run("show", clip["id"], "--json").stdout)["video"]["path"].startswith(s3_url)
    assert json.loads(run("audit", "--json").stdout)["clean"]
