"""The loopback Videos API server speaks the API faithfully (checked with the official SDK too)."""

from __future__ import annotations

import contextlib
import io
import json
import threading
import time
import warnings
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import av
import httpx
import numpy as np
import openai
import pytest
from PIL import Image

from core.testing import VideosAPIServer, new_webhook_secret
from tests import sora_support
from tests.conftest import textured_image

KEY = sora_support.KEY
api = sora_support.api
still_720p = sora_support.still_720p

AUTH = {"Authorization": f"Bearer {KEY}"}
VIDEO_KEYS = {
    "id", "object", "created_at", "completed_at", "expires_at", "model", "status", "progress",
    "prompt", "remixed_from_video_id", "seconds", "size", "error",
}  # fmt: skip


def client(server: VideosAPIServer) -> httpx.Client:
    return httpx.Client(base_url=server.base_url + "/", headers=AUTH, timeout=10)


def create(c: httpx.Client, **fields: str) -> dict:
    data = {"prompt": "a harbour at dawn", "model": "sora-2", "size": "1280x720", **fields}
    response = c.post("videos", files={k: (None, v) for k, v in data.items()})
    assert response.status_code == 200, response.text
    return response.json()


def wait_done(c: httpx.Client, video_id: str) -> dict:
    for _ in range(500):
        video = c.get(f"videos/{video_id}").json()
        if video["status"] in ("completed", "failed"):
            return video
        time.sleep(0.01)
    raise AssertionError("the job never finished")


def test_the_official_sdk_creates_polls_and_downloads(api: VideosAPIServer, still_720p: Path):
    sdk = openai.OpenAI(api_key=KEY, base_url=api.base_url, max_retries=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the SDK marks Sora deprecated
        with still_720p.open("rb") as fh:
            video = sdk.videos.create_and_poll(
                model="sora-2", prompt="a harbour", seconds="8", size="1280x720",
                input_reference=fh, poll_interval_ms=10,
            )  # fmt: skip
        content = sdk.videos.download_content(video.id).content
        thumbnail = sdk.videos.download_content(video.id, variant="thumbnail").content
        remix = sdk.videos.remix(video.id, prompt="at dusk")
    assert video.status == "completed" and video.progress == 100
    assert video.model_fields_set == VIDEO_KEYS  # every key present, as the SDK reads them
    assert (video.seconds, video.size, video.error) == ("8", "1280x720", None)
    assert video.expires_at > video.completed_at >= video.created_at
    upload = next(r for r in api.requests if r.route == "/videos" and r.method == "POST")
    assert upload.fields["seconds"] == "8" and upload.files["input_reference"] > 0
    with av.open(io.BytesIO(content)) as container:
        stream = container.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(stream)]
    assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 1280, 720)
    assert len(frames) == 8 * 4

    def coarse(image: Image.Image) -> np.ndarray:  # compression keeps the picture, not noise
        return np.asarray(image.convert("RGB").reduce(16), dtype=np.int16)

    first, last = (coarse(Image.fromarray(f)) for f in (frames[0], frames[-1]))
    still = coarse(Image.open(still_720p))
    assert np.abs(first - still).mean() < 6 < np.abs(last - still).mean()  # the still is frame 1
    assert Image.open(io.BytesIO(thumbnail)).format == "WEBP"
    assert remix.remixed_from_video_id == video.id


def test_video_objects_move_through_their_states_with_rising_progress(api: VideosAPIServer):
    api.render_seconds = 0.4
    with client(api) as c:
        video = create(c)
        assert set(video) == VIDEO_KEYS and video["status"] == "queued"
        seen = []
        while (current := c.get(f"videos/{video['id']}")).json()["status"] != "completed":
            assert current.headers["openai-poll-after-ms"] == "10"
            seen.append((current.json()["status"], current.json()["progress"]))
            time.sleep(0.02)
    assert ("in_progress" in {s for s, _ in seen}) and seen == sorted(seen, key=lambda p: p[1])
    assert current.json()["progress"] == 100


@pytest.mark.parametrize(
    ("fields", "param", "text"),
    [
        ({"seconds": "5"}, "seconds", "Invalid value: '5'"),
        ({"size": "1792x1024"}, "size", "for sora-2"),
        ({"model": "sora-3"}, "model", "Invalid value: 'sora-3'"),
        ({"prompt": ""}, "prompt", "Missing required parameter: 'prompt'"),
    ],
)
def test_bad_creates_get_the_apis_400(api: VideosAPIServer, fields, param, text):
    with client(api) as c:
        data = {"prompt": "x", "model": "sora-2", "size": "1280x720", **fields}
        response = c.post("videos", files={k: (None, v) for k, v in data.items()})
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["param"] == param and text in error["message"]
    assert error["type"] == "invalid_request_error" and response.headers["x-request-id"]


def test_seconds_must_be_a_string_and_the_still_must_match_the_size(
    api: VideosAPIServer, tmp_path: Path
):
    with client(api) as c:
        as_int = c.post("videos", json={"prompt": "x", "seconds": 4})
        small = textured_image(tmp_path / "small.png", 640, 360)
        files = {"prompt": (None, "x"), "size": (None, "1280x720"),
                 "input_reference": ("s.png", small.read_bytes(), "image/png")}  # fmt: skip
        mismatch = c.post("videos", files=files)
    assert as_int.status_code == 400 and as_int.json()["error"]["code"] == "invalid_type"
    assert mismatch.status_code == 400
    assert mismatch.json()["error"]["message"] == (
        "Inpaint image must match the requested width and height"
    )
    assert api.video_ids() == []


def test_a_wrong_key_is_refused_with_a_masked_echo(api: VideosAPIServer):
    other = "sk-wrong-key-0123456789"
    with httpx.Client(base_url=api.base_url + "/") as c:
        wrong = c.get("videos", headers={"Authorization": f"Bearer {other}"})
        missing = c.get("videos")
    assert wrong.status_code == missing.status_code == 401
    assert wrong.json()["error"]["code"] == "invalid_api_key"
    assert other not in wrong.text and "sk-" in wrong.text and other[-4:] in wrong.text


def test_the_list_pages_with_a_cursor_in_either_order(api: VideosAPIServer):
    with client(api) as c:
        made = [create(c, prompt=f"clip {i}")["id"] for i in range(5)]
        seen, after = [], None
        while True:
            params = {"limit": 2, "order": "asc", **({"after": after} if after else {})}
            page = c.get("videos", params=params).json()
            assert page["object"] == "list" and page["first_id"] == page["data"][0]["id"]
            seen += [v["id"] for v in page["data"]]
            if not page["has_more"]:
                break
            after = page["last_id"]
        newest_first = c.get("videos", params={"limit": 100}).json()
        too_many = c.get("videos", params={"limit": 101})
    assert seen == made
    assert [v["id"] for v in newest_first["data"]] == made[::-1]
    assert not newest_first["has_more"] and too_many.status_code == 400


def test_remix_edit_and_extension_make_new_videos(api: VideosAPIServer):
    with client(api) as c:
        parent = create(c, seconds="4")
        early = c.post(f"videos/{parent['id']}/remix", json={"prompt": "again"})
        wait_done(c, parent["id"])
        remix = c.post(f"videos/{parent['id']}/remix", json={"prompt": "again"}).json()
        edit = c.post("videos/edits", json={"prompt": "red", "video": {"id": parent["id"]}})
        extension = c.post(
            "videos/extensions",
            files={
                "prompt": (None, "on"),
                "seconds": (None, "8"),
                "video[id]": (None, parent["id"]),
            },
        ).json()
        deleted = c.delete(f"videos/{parent['id']}").json()
        gone = c.get(f"videos/{parent['id']}")
    assert early.status_code == 400  # only a completed video can be remixed
    assert remix["remixed_from_video_id"] == parent["id"] and remix["seconds"] == "4"
    assert edit.status_code == 200 and edit.json()["remixed_from_video_id"] is None
    assert extension["seconds"] == "12"  # the stitched total
    assert deleted == {"id": parent["id"], "deleted": True, "object": "video.deleted"}
    assert gone.status_code == 404


def test_scripted_faults_rate_limits_and_cut_downloads(api: VideosAPIServer):
    api.inject("GET", "/videos", 429, times=2, headers={"retry-after": "1"})
    with client(api) as c:
        video = wait_done(c, create(c)["id"])
        first, second, third = (c.get("videos") for _ in range(3))
        api.inject("GET", "/videos/{id}/content", drop_after=100)
        with pytest.raises(httpx.RemoteProtocolError):
            c.get(f"videos/{video['id']}/content")
        whole = c.get(f"videos/{video['id']}/content", params={"variant": "spritesheet"})
    assert first.status_code == second.status_code == 429 and third.status_code == 200
    assert first.headers["retry-after"] == "1"
    assert first.json()["error"]["code"] == "rate_limit_exceeded"
    assert whole.status_code == 200 and Image.open(io.BytesIO(whole.content)).format == "JPEG"


def test_a_failure_injected_after_the_work_leaves_the_job_made(api: VideosAPIServer):
    api.inject("POST", "/videos", 500, when="after")
    with client(api) as c:
        response = c.post("videos", files={"prompt": (None, "x")})
    assert response.status_code == 500 and len(api.video_ids()) == 1


def test_jobs_can_fail_be_held_and_expire(api: VideosAPIServer):
    api.fail_next("moderation_blocked", "Your request was blocked by our moderation system.")
    with client(api) as c:
        failed = wait_done(c, create(c)["id"])
        api.hold = True
        held = create(c)
        time.sleep(0.3)
        assert c.get(f"videos/{held['id']}").json()["status"] == "in_progress"
        api.release()
        done = wait_done(c, held["id"])
        api.expire(done["id"])
        expired = c.get(f"videos/{done['id']}/content")
    assert failed["status"] == "failed" and failed["error"]["code"] == "moderation_blocked"
    assert done["status"] == "completed"
    assert expired.status_code == 404 and "expired" in expired.json()["error"]["message"]


def test_azure_paths_retired_mode_and_redirected_content(api: VideosAPIServer):
    api.redirect_content = True
    with httpx.Client(base_url=api.root_url, headers={"api-key": KEY}) as azure:
        no_version = azure.get("/openai/v1/videos")
        listed = azure.get("/openai/v1/videos", params={"api-version": "preview"})
        video = azure.post(
            "/openai/v1/videos", params={"api-version": "preview"}, files={"prompt": (None, "x")}
        ).json()
    with client(api) as c:
        wait_done(c, video["id"])
        redirect = c.get(f"videos/{video['id']}/content")
        followed = c.get(f"videos/{video['id']}/content", follow_redirects=True)
        api.retired = True
        retired = c.post("videos", files={"prompt": (None, "x")})
    assert no_version.status_code == 400 and listed.status_code == 200
    assert redirect.status_code == 302 and followed.content[4:8] == b"ftyp"
    assert retired.status_code == 404
    assert retired.json()["error"]["message"] == "Invalid URL (POST /v1/videos)"


@contextlib.contextmanager
def capture_server() -> Iterator[tuple[str, list[tuple[bytes, dict[str, str]]]]]:
    """A plain HTTP endpoint that keeps every POST it gets."""
    received: list[tuple[bytes, dict[str, str]]] = []

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append((body, dict(self.headers.items())))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/hook", received
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_webhook_deliveries_are_signed_as_the_sdk_verifies_them(api: VideosAPIServer):
    secret = new_webhook_secret()
    with capture_server() as (url, received):
        api.webhook_url, api.webhook_secret = url, secret
        with client(api) as c:
            video = wait_done(c, create(c)["id"])
        api.wait_for(lambda: len(received) == 1)
    ((body, headers),) = received
    sdk = openai.OpenAI(api_key=KEY, base_url=api.base_url, webhook_secret=secret)
    sdk.webhooks.verify_signature(body, headers)  # raises if the signature were off
    assert json.loads(body)["type"] == "video.completed"
    assert json.loads(body)["data"] == {"id": video["id"]}
    assert api.webhook_deliveries[0].status == 204
    with pytest.raises(openai.InvalidWebhookSignatureError):
        sdk.webhooks.verify_signature(body.replace(b"completed", b"failed"), headers)


def test_answers_on_a_kept_alive_connection_are_not_held_back_by_nagle(api: VideosAPIServer):
    """Headers and body leave in separate writes; with Nagle's algorithm on, each answer
    waited for the client's delayed ACK (~45 ms). Twenty polls took a second, not 50 ms."""
    with client(api) as c:
        video_id = create(c)["id"]
        start = time.perf_counter()
        for _ in range(20):
            assert c.get(f"videos/{video_id}").status_code == 200
        elapsed = time.perf_counter() - start
    assert elapsed < 0.5, f"20 polls took {elapsed:.2f} s"
