"""``reelvault media migrate``: a local library moves into a bucket, checked and resumable."""

from __future__ import annotations

import json
import tomllib
from pathlib import Path

import pytest

from core.media import s3 as s3_module
from core.media.store import MediaStore


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
