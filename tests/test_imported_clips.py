"""Imported videos are clips like any other: probed, given a thumbnail, listed, derivable."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
from PIL import Image

from core.host.app import Reelvault
from tests.provenance_support import stored_path


def plain_mp4(path: Path, width: int = 320, height: int = 180, frames: int = 12) -> Path:
    """A video with no Content Credentials, whose first frame is red with a green corner."""
    with av.open(str(path), "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=12)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for number in range(frames):
            pixels = np.zeros((height, width, 3), np.uint8)
            pixels[:, :, 0] = 220 if number == 0 else 20
            pixels[: height // 2, : width // 2, 1] = 200
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


def test_an_imported_video_is_probed_given_its_first_frame_and_listed(
    run, app: Reelvault, tmp_path: Path
):
    video = plain_mp4(tmp_path / "harbor.mp4")
    [outcome] = json.loads(run("import", video, "--json").stdout)["files"]
    assert outcome["kind"] == "video" and outcome["generation_id"]
    [listed] = json.loads(run("list", "--json").stdout)
    assert (listed["id"], listed["status"]) == (outcome["generation_id"], "imported")
    assert (listed["size"], listed["seconds"]) == ("320x180", 1)
    assert listed["output_asset_id"] == outcome["asset_id"]
    assert outcome["generation_id"] in run("list").stdout
    with Image.open(stored_path(app, listed["thumbnail_asset_id"])) as frame:
        assert frame.size == (320, 180)
        red, green, _ = frame.convert("RGB").getpixel((240, 150))  # outside the corner
        assert red > 180 and green < 60  # the first frame (red), not a later one
    shown = json.loads(run("show", listed["id"], "--json").stdout)
    assert shown["video"]["duration"] == 1.0 and shown["video"]["width"] == 320
    from starlette.testclient import TestClient

    from core.web.app import create_app

    with TestClient(create_app(app), base_url="http://127.0.0.1") as client:
        grid = client.get("/").text
        assert listed["id"] in grid and listed["thumbnail_asset_id"] in grid
    again = json.loads(run("import", video, "--json").stdout)["files"]
    assert [o["status"] for o in again] == ["already"]
    assert len(json.loads(run("list", "--json").stdout)) == 1


def test_the_local_backend_remixes_an_imported_clip_from_its_first_frame(run, tmp_path: Path):
    [outcome] = json.loads(run("import", plain_mp4(tmp_path / "a.mp4"), "--json").stdout)["files"]
    clip = outcome["generation_id"]
    made = json.loads(
        run("remix", clip, "-p", "zoom in", "--seconds", "1", "--size", "640x360", "--json").stdout
    )
    assert (made["status"], made["backend"], made["parent_id"]) == ("completed", "local", clip)
    assert made["relation"] == "remix_of"
    imported = json.loads(run("show", clip, "--json").stdout)
    assert made["input"]["id"] == imported["thumbnail"]["id"]  # the first frame was sent
    assert made["video"]["width"] == 640
    family = json.loads(run("lineage", made["id"], "--json").stdout)
    assert family["clips"][0]["id"] == clip
    assert family["clips"][0]["children"][0]["id"] == made["id"]


def test_a_remote_backend_says_it_needs_the_providers_own_video_id(run, tmp_path: Path):
    [outcome] = json.loads(run("import", plain_mp4(tmp_path / "a.mp4"), "--json").stdout)["files"]
    clip = outcome["generation_id"]
    result = run("remix", clip, "-p", "zoom in", "--backend", "sora", expect=2)
    assert "needs the provider's own video id" in result.output
    assert "--backend local" in result.output
    assert len(json.loads(run("list", "--json").stdout)) == 1  # nothing was written
