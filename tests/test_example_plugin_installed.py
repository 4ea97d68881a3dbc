"""The documented example plugin, installed as a real distribution and used by the CLI."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import av
import pytest

from tests.conftest import REPO, textured_image

EXAMPLE = REPO / "docs" / "examples" / "reelvault-fade"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The example installed with pip into a private folder, entry point and all."""
    target = tmp_path_factory.mktemp("site")
    build = tmp_path_factory.mktemp("build")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--target", str(target), str(EXAMPLE)],
        check=True, capture_output=True, text=True, env={**os.environ, "TMPDIR": str(build)},
    )  # fmt: skip
    assert list(target.glob("reelvault_fade-*.dist-info/entry_points.txt"))
    return target


def reelvault(site: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), str(REPO)]),
        "REELVAULT_HOME": str(home),
    }
    env.pop("REELVAULT_PLUGINS", None)
    return subprocess.run(
        [sys.executable, "-m", "core", *args], env=env, capture_output=True, text=True, timeout=120
    )


@pytest.mark.slow
def test_the_installed_example_is_found_through_its_entry_point(site: Path, tmp_path: Path):
    home = tmp_path / "home"
    plugins = json.loads(reelvault(site, home, "plugins", "--json").stdout)
    fade = next(p for p in plugins["plugins"] if p["name"] == "fade")
    assert "reelvault-fade" in fade["source"] and fade["hooks"] == ["register_backends"]
    models = json.loads(reelvault(site, home, "models", "--json").stdout)
    assert {"backend": "fade", "model": "fade-1"}.items() <= next(
        m for m in models if m["model"] == "fade-1"
    ).items()

    photo = textured_image(tmp_path / "photo.png", 800, 600)
    made = reelvault(site, home, "generate", str(photo), "-p", "a slow reveal", "--model",
                     "fade-1", "--seconds", "2", "--size", "640x360", "--json")  # fmt: skip
    assert made.returncode == 0, made.stderr
    clip = json.loads(made.stdout)
    assert clip["backend"] == "fade" and clip["status"] == "completed"
    with av.open(clip["video"]["path"]) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 48 and (frames[0].width, frames[0].height) == (640, 360)

    refused = reelvault(site, home, "remix", clip["id"], "-p", "again")
    assert refused.returncode == 2 and "does not support remix" in refused.stderr
    listed = json.loads(reelvault(site, home, "list", "--backend", "fade", "--json").stdout)
    assert [c["id"] for c in listed] == [clip["id"]]
