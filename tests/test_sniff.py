"""``verify`` tells a file's type from its first bytes, without decoding it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.api.sniff import file_mime, sniff_mime
from tests.conftest import REPO, textured_image


@pytest.mark.parametrize(
    ("head", "mime"),
    [
        (b"\xff\xd8\xff\xe0\x00\x10JFIF", "image/jpeg"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "image/png"),
        (b"GIF89a\x01\x00", "image/gif"),
        (b"RIFF\x24\x00\x00\x00WEBPVP8 ", "image/webp"),
        (b"RIFF\x24\x00\x00\x00WAVEfmt ", "audio/wav"),
        (b"II*\x00\x08\x00", "image/tiff"),
        (b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00", "video/mp4"),
        (b"\x00\x00\x00\x14ftypqt  \x00\x00\x00\x00", "video/quicktime"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "image/heic"),
        (b"\x00\x00\x00\x1cftypavif\x00\x00\x00\x00", "image/avif"),
        (b"just some text", None),
        (b"", None),
    ],
)
def test_signatures(head: bytes, mime: str | None) -> None:
    assert sniff_mime(head) == mime


def test_a_file_is_known_by_its_bytes_before_its_name(tmp_path: Path) -> None:
    jpeg = textured_image(tmp_path / "still.jpg", 64, 48)
    misnamed = jpeg.rename(tmp_path / "still.png")
    assert file_mime(misnamed) == "image/jpeg"
    damaged = tmp_path / "clip.mp4"
    damaged.write_bytes(b"\x00" * 10)  # no signature: the name is all there is
    assert file_mime(damaged) == "video/mp4"
    (tmp_path / "notes").write_bytes(b"plain text")
    assert file_mime(tmp_path / "notes") is None


def test_verifying_a_file_needs_no_media_library(tmp_path: Path, still: Path) -> None:
    """The whole ``verify PATH`` command: type sniffed, c2pa asked, no PIL or PyAV loaded."""
    code = (
        "import sys, json\nfrom click.testing import CliRunner\nfrom core.cli import cli\n"
        f"result = CliRunner().invoke(cli, ['verify', {str(still)!r}, '--json'])\n"
        "print(json.dumps({'mime': json.loads(result.stdout)['mime'],"
        " 'loaded': [m for m in ('av', 'PIL') if m in sys.modules]}))\n"
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "REELVAULT_HOME": str(tmp_path / "h")}
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout.splitlines()[-1]) == {"mime": "image/jpeg", "loaded": []}
