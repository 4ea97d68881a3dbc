"""core.api.write_atomic: a file is replaced whole or not at all, with its mode from the start."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest

from core.api import files, write_atomic

POSIX_MODES = pytest.mark.skipif(sys.platform == "win32", reason="Windows has no mode bits")


def mode_of(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_writes_bytes_or_text_and_creates_the_folder(tmp_path: Path):
    target = tmp_path / "deep" / "er" / "file.toml"
    write_atomic(target, "name = 'ünïcode'\n")
    assert target.read_bytes() == "name = 'ünïcode'\n".encode()
    write_atomic(target, b"\x00\x01")
    assert target.read_bytes() == b"\x00\x01"
    assert sorted(p.name for p in target.parent.iterdir()) == ["file.toml"]  # no temporaries


@POSIX_MODES
def test_the_mode_is_set_before_any_content_is_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    sizes_when_chmodded: list[int] = []
    real_chmod = os.chmod

    def watching_chmod(path: str | Path, mode: int) -> None:
        sizes_when_chmodded.append(Path(path).stat().st_size)
        real_chmod(path, mode)

    monkeypatch.setattr(files.os, "chmod", watching_chmod)
    write_atomic(tmp_path / "key.pem", b"secret key material", mode=0o600)
    assert sizes_when_chmodded == [0]
    assert mode_of(tmp_path / "key.pem") == 0o600


@POSIX_MODES
def test_without_a_mode_an_existing_file_keeps_its_own_and_a_new_one_gets_0644(tmp_path: Path):
    private = tmp_path / "keys.toml"
    private.write_text("old")
    private.chmod(0o600)
    write_atomic(private, "new")
    assert mode_of(private) == 0o600 and private.read_text() == "new"
    write_atomic(tmp_path / "fresh.toml", "x")
    assert mode_of(tmp_path / "fresh.toml") == 0o644


def test_a_failure_leaves_the_old_file_and_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    target = tmp_path / "config.toml"
    target.write_text("old content")

    def refuse(*_args: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(files.os, "replace", refuse)
    with pytest.raises(OSError, match="disk full"):
        write_atomic(target, "new content")
    assert target.read_text() == "old content"
    assert [p.name for p in tmp_path.iterdir()] == ["config.toml"]
