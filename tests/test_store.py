from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest

from core.media.store import MediaStore, hash_file


def test_put_file_names_the_file_by_its_hash_and_stores_it_once(tmp_path: Path) -> None:
    data = b"frame data " * 100_000
    source = tmp_path / "a.bin"
    source.write_bytes(data)
    store = MediaStore(tmp_path / "media")

    first = store.put_file(source)
    second = store.put_stream(io.BytesIO(data))

    expected = hashlib.sha256(data).hexdigest()
    assert first.sha256 == second.sha256 == expected
    assert first.size == len(data)
    assert first.path == store.path_for(expected) and first.path.name == expected
    assert first.path.read_bytes() == data
    stored = [p for p in (tmp_path / "media").rglob("*") if p.is_file()]
    assert stored == [first.path]


def test_a_failed_write_leaves_no_file_behind(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media")
    with pytest.raises(RuntimeError), store.writer() as incoming:
        incoming.write(b"half a video")
        raise RuntimeError("download dropped")
    assert [p for p in (tmp_path / "media").rglob("*") if p.is_file()] == []
    assert incoming.stored is None


def test_stored_files_are_read_only(tmp_path: Path) -> None:
    store = MediaStore(tmp_path / "media")
    stored = store.put_stream(io.BytesIO(b"x"))
    assert stored.path.stat().st_mode & 0o222 == 0


def test_hash_file_matches_hashlib_on_a_multi_chunk_file(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    path.write_bytes(bytes(range(256)) * 20_000)  # 5 MB: several read chunks
    assert hash_file(path) == (hashlib.sha256(path.read_bytes()).hexdigest(), 5_120_000)


@pytest.mark.parametrize("bad", ["", "abc", "../" + "0" * 61, "G" * 64])
def test_path_for_accepts_only_sha256_digests(tmp_path: Path, bad: str) -> None:
    with pytest.raises(ValueError):
        MediaStore(tmp_path).path_for(bad)
