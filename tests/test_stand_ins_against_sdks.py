"""The stand-ins, checked once against each provider's official Python SDK.

reelvault's backends speak these APIs with httpx alone; the stand-ins they are tested
against must stay honest, so each is driven here by the SDK its provider ships
(google-genai, fal-client, replicate), installed by the test extra only.

google-genai is held below 3.0: version 3.0.0 dropped ``generate_videos`` for the Gemini
API (it now raises "only supported in Gemini Enterprise Agent Platform mode"), so 2.x is
the last SDK that speaks the API the veo backend uses.
"""

from __future__ import annotations

import io
import time
from pathlib import Path

import av
import pytest

from core.testing.fal_api import FalQueueServer
from core.testing.gemini_api import GeminiAPIServer
from core.testing.replicate_api import ReplicateServer
from tests import sora_support

still_720p = sora_support.still_720p


def video_shape(data: bytes) -> tuple[int, int, float]:
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        seconds = float(stream.duration * stream.time_base) if stream.duration else 0.0
        return stream.width, stream.height, seconds


def test_google_genai_generates_polls_and_downloads_a_veo_video(still_720p: Path):
    from google import genai
    from google.genai import errors, types

    key = "AIzaSyStandInCheck-0123456789abcdef"
    with GeminiAPIServer(api_key=key, render_seconds=0.1) as server:
        client = genai.Client(api_key=key, http_options=types.HttpOptions(base_url=server.root_url))
        operation = client.models.generate_videos(
            model="veo-3.0-generate-001",
            source=types.GenerateVideosSource(
                prompt="a harbour at dawn",
                image=types.Image(image_bytes=still_720p.read_bytes(), mime_type="image/png"),
            ),
            config=types.GenerateVideosConfig(
                duration_seconds=6, aspect_ratio="16:9", resolution="720p"
            ),
        )
        for _ in range(100):
            if operation.done:
                break
            time.sleep(0.05)
            operation = client.operations.get(operation)
        assert operation.done and operation.error is None
        (generated,) = operation.response.generated_videos
        data = client.files.download(file=generated.video)
        width, height, seconds = video_shape(data)
        assert (width, height) == (1280, 720) and seconds == pytest.approx(6, abs=0.3)
        assert server.creates[0]["parameters"]["durationSeconds"] == 6

        with pytest.raises(errors.ClientError) as refused:
            client.models.generate_videos(
                model="veo-2.0-generate-001", source=types.GenerateVideosSource(prompt="x"),
                config=types.GenerateVideosConfig(resolution="1080p"),
            )  # fmt: skip
        assert refused.value.code == 400 and "resolution" in str(refused.value)
        with pytest.raises(errors.ClientError) as unknown:
            client.models.generate_videos(
                model="veo-9", source=types.GenerateVideosSource(prompt="x")
            )
        assert unknown.value.code == 404 and "is not found for API version v1beta" in str(
            unknown.value
        )


def test_fal_client_submits_polls_and_fetches_a_kling_result(
    still_720p: Path, monkeypatch: pytest.MonkeyPatch
):
    import fal_client
    import fal_client.client
    import httpx

    key = "fal-standin:check-0123456789"
    with FalQueueServer(api_key=key) as server:
        monkeypatch.setattr(fal_client.client, "QUEUE_URL_FORMAT", f"{server.root_url}/")
        client = fal_client.SyncClient(key=key)
        image = fal_client.encode(still_720p.read_bytes(), "image/png")
        app = "fal-ai/kling-video/v2.1/standard/image-to-video"
        handle = client.submit(app, arguments={"prompt": "a harbour", "image_url": image,
                                               "duration": "5"})  # fmt: skip
        statuses = {type(s).__name__ for s in handle.iter_events(interval=0.02)}
        assert "Completed" in statuses
        result = handle.get()
        data = httpx.get(result["video"]["url"]).content
        assert video_shape(data)[:2] == (1280, 720)
        assert client.status(app, handle.request_id).__class__.__name__ == "Completed"

        with pytest.raises(fal_client.client.FalClientHTTPError) as invalid:
            client.submit(app, arguments={"prompt": "x", "image_url": image, "duration": "7"})
        assert invalid.value.status_code == 422


def test_replicate_uploads_creates_waits_and_downloads(still_720p: Path):
    import httpx
    import replicate

    key = "r8_StandInCheck0123456789abcdef"
    with ReplicateServer(api_key=key) as server:
        client = replicate.Client(api_token=key, base_url=server.root_url)
        with still_720p.open("rb") as fh:
            uploaded = client.files.create(fh)
        prediction = client.models.predictions.create(
            model="kwaivgi/kling-v2.1",
            input={"start_image": uploaded.urls["get"], "prompt": "a harbour", "duration": 5},
        )
        prediction.wait()
        assert prediction.status == "succeeded"
        width, height, seconds = video_shape(httpx.get(prediction.output).content)
        assert (width, height) == (1280, 720) and seconds == pytest.approx(5, abs=0.3)

        with pytest.raises(replicate.exceptions.ReplicateError) as invalid:
            client.models.predictions.create(
                model="kwaivgi/kling-v2.1", input={"start_image": uploaded.urls["get"],
                                                   "duration": 7},
            )  # fmt: skip
        assert invalid.value.status == 422 and "duration" in str(invalid.value)
