"""The sora backend against the loopback Videos API: requests, retries, errors, lifecycle."""

from __future__ import annotations

import io
import re
import time
from datetime import UTC, date, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import httpx
import pytest

from core.api.errors import BackendError, RequestError
from core.api.remote import DEFAULT_MAX_RETRIES
from core.api.settings import Settings
from core.api.types import DerivedRequest, GenerationRequest, JobState, Relation, Variant
from core.host.app import Reelvault
from core.testing import VideosAPIServer
from plugins.sora_backend import SoraBackend
from tests import sora_support
from tests.conftest import textured_image
from tests.sora_support import write_config

KEY = sora_support.KEY
api = sora_support.api
still_720p = sora_support.still_720p
AFTER_SHUTDOWN = date(2026, 11, 25)
BEFORE_SHUTDOWN = date(2026, 6, 1)


class Sleeps(list[float]):
    """A stand-in for time.sleep that records what the backend waited."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


@pytest.fixture
def sleeps() -> Sleeps:
    return Sleeps()


@pytest.fixture
def sora(home: Path, api: VideosAPIServer, sleeps: Sleeps) -> SoraBackend:
    return SoraBackend(Settings.load(home=home), today=lambda: AFTER_SHUTDOWN, sleep=sleeps)


def request(image: Path | None = None, **fields: object) -> GenerationRequest:
    values: dict = {"model": "sora-2", "prompt": "a harbour", "seconds": 4, "size": "1280x720"}
    values.update(fields)
    return GenerationRequest(input_image=image, **values)


def finish(sora: SoraBackend, job_id: str) -> None:
    for _ in range(300):
        if sora.poll(job_id).state.is_terminal:
            return
        time.sleep(0.01)
    raise AssertionError("the job did not finish")


def test_models_allow_what_the_api_allows(sora: SoraBackend):
    models = {m.name: m for m in sora.models()}
    assert set(models) == {
        "sora-2", "sora-2-pro", "sora-2-2025-10-06", "sora-2-2025-12-08", "sora-2-pro-2025-10-06",
    }  # fmt: skip
    assert models["sora-2"].sizes == ("720x1280", "1280x720")
    assert set(models["sora-2-pro"].sizes) == {"720x1280", "1280x720", "1024x1792", "1792x1024"}
    assert all(m.seconds == (4, 8, 12) for m in models.values())
    assert all(not m.fits_input_image and m.supports_extension for m in models.values())
    assert models["sora-2"].variants == (Variant.VIDEO, Variant.THUMBNAIL, Variant.SPRITESHEET)
    with pytest.raises(RequestError, match="allowed: 720x1280, 1280x720"):
        models["sora-2"].validate(4, "1792x1024")


def test_model_status_follows_the_default_provider_and_the_calendar(
    home: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)

    def status(today: date) -> str:
        return SoraBackend(Settings.load(home=home), today=lambda: today).models()[0].status

    assert status(AFTER_SHUTDOWN) == (
        "retired at api.openai.com since 2026-09-24; add a provider (`reelvault providers add`)"
    )
    assert status(BEFORE_SHUTDOWN) == (
        "available via openai (api.openai.com); retiring at api.openai.com on 2026-09-24"
    )
    write_config(home, '[providers.cometapi]\nbase_url = "https://api.cometapi.com/v1"\n')
    assert status(AFTER_SHUTDOWN) == (
        "retired at api.openai.com since 2026-09-24; served by cometapi (--provider)"
    )
    config = (home / "config.toml").read_text()
    (home / "config.toml").write_text('default_provider = "cometapi"\n' + config)
    assert status(AFTER_SHUTDOWN) == (
        "available via cometapi (api.cometapi.com); retired at api.openai.com since 2026-09-24"
    )


def test_a_retired_endpoint_is_refused_before_anything_is_sent(
    home: Path, monkeypatch: pytest.MonkeyPatch, still_720p: Path
):
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    write_config(home, '[providers.cometapi]\nbase_url = "https://api.cometapi.com/v1"\n')

    def no_network(request: httpx.Request) -> httpx.Response:
        raise AssertionError(f"sent {request.method} {request.url}")

    sora = SoraBackend(
        Settings.load(home=home),
        transport=httpx.MockTransport(no_network),
        today=lambda: AFTER_SHUTDOWN,
    )
    with pytest.raises(BackendError) as refused:
        sora.submit(request(still_720p))
    assert refused.value.code == "retired"
    message = str(refused.value)
    assert "retired at api.openai.com since 2026-09-24" in message
    assert "--provider cometapi" in message and "--backend local" in message
    assert "reelvault providers add azure" in message  # a known provider not yet added
    with pytest.raises(BackendError, match="retired"):
        sora.poll("video_123@openai")


def test_an_endpoint_that_answers_like_a_retired_one_names_the_alternatives(
    sora: SoraBackend, api: VideosAPIServer
):
    api.retired = True
    with pytest.raises(BackendError) as refused:
        sora.submit(request())
    assert refused.value.code == "retired"
    assert "Invalid URL" not in str(refused.value) and "--backend local" in str(refused.value)


def test_submit_sends_a_multipart_create_with_seconds_as_a_string(
    sora: SoraBackend, api: VideosAPIServer, still_720p: Path
):
    status = sora.submit(request(still_720p, seconds=8))
    video_id, provider = status.job_id.split("@")
    assert provider == "openai" and video_id.startswith("video_")
    assert status.state in (JobState.QUEUED, JobState.IN_PROGRESS)
    (create,) = [r for r in api.requests if r.route == "/videos" and r.method == "POST"]
    assert create.fields == {"prompt": "a harbour", "model": "sora-2", "seconds": "8",
                             "size": "1280x720"}  # fmt: skip
    assert create.files == {"input_reference": still_720p.stat().st_size}
    finish(sora, status.job_id)
    done = sora.poll(status.job_id)
    assert done.state == JobState.COMPLETED and done.progress == 100
    assert done.poll_after == 0.01 and done.expires_at and done.expires_at > time.time()
    assert done.details["video"]["seconds"] == "8" and done.details["provider"] == "openai"


def test_the_still_must_be_an_accepted_type_and_the_exact_size(sora: SoraBackend, tmp_path: Path):
    with pytest.raises(RequestError, match="needs exactly 1280x720: pass --fit"):
        sora.submit(request(textured_image(tmp_path / "small.png", 640, 360)))
    bmp = tmp_path / "still.bmp"
    textured_image(bmp, 1280, 720)
    with pytest.raises(RequestError, match="JPEG, PNG or WebP"):
        sora.submit(request(bmp))


def test_downloads_stream_every_variant(sora: SoraBackend, api: VideosAPIServer):
    api.redirect_content = True  # the service may answer with a redirect
    status = sora.submit(request())
    finish(sora, status.job_id)
    outputs = {}
    for variant in Variant:
        out = io.BytesIO()
        sora.download(status.job_id, variant, out)
        outputs[variant] = out.getvalue()
    assert outputs[Variant.VIDEO][4:8] == b"ftyp"
    assert (
        outputs[Variant.THUMBNAIL][:4] == b"RIFF"
        and outputs[Variant.SPRITESHEET][:2] == b"\xff\xd8"
    )


def test_remix_edit_and_extension_go_to_their_routes(sora: SoraBackend, api: VideosAPIServer):
    parent = sora.submit(request())
    finish(sora, parent.job_id)
    made = {}
    for relation in filter(Relation.derives, Relation):  # a variant is a new submit
        derived = DerivedRequest(relation, parent.job_id, f"{relation} it", "sora-2", 8, "1280x720")
        made[relation] = api.video(sora.derive(derived).job_id.split("@")[0])
    assert made[Relation.REMIX_OF]["remixed_from_video_id"] == parent.job_id.split("@")[0]
    assert made[Relation.EXTENSION_OF]["seconds"] == "12"  # 4 + 8, stitched
    assert made[Relation.EDIT_OF]["seconds"] == "4"
    assert [api.count("POST", r) for r in ("/videos/{id}/remix", "/videos/edits",
            "/videos/extensions")] == [1, 1, 1]  # fmt: skip


def test_a_rate_limit_storm_is_waited_out_as_the_service_asks(
    sora: SoraBackend, api: VideosAPIServer, sleeps: Sleeps
):
    api.inject("POST", "/videos", 429, times=3, headers={"retry-after-ms": "30"})
    api.inject("GET", "/videos/{id}", 429, times=2, headers={"retry-after": "2"})
    status = sora.submit(request())
    sora.poll(status.job_id)
    assert api.count("POST", "/videos") == 4 and len(api.video_ids()) == 1  # made once
    assert sleeps == [0.03, 0.03, 0.03, 2.0, 2.0]


def test_a_storm_longer_than_the_retries_fails_clearly(
    sora: SoraBackend, api: VideosAPIServer, sleeps: Sleeps
):
    api.inject("GET", "/videos/{id}", 503, times=99)
    status = sora.submit(request())
    with pytest.raises(BackendError) as failed:
        sora.poll(status.job_id)
    assert failed.value.code == "server_error" and failed.value.transient
    assert "openai failed (HTTP 503): The engine is currently overloaded" in str(failed.value)
    assert api.count("GET", "/videos/{id}") == DEFAULT_MAX_RETRIES + 1
    assert len(sleeps) == DEFAULT_MAX_RETRIES and all(0 < s <= 8 for s in sleeps)
    assert sleeps[0] < sleeps[-1]  # exponential backoff without a hint


def test_a_long_retry_after_or_a_no_retry_header_stops_at_once(
    sora: SoraBackend, api: VideosAPIServer, sleeps: Sleeps
):
    later = format_datetime(datetime.now(UTC) + timedelta(hours=1), usegmt=True)
    api.inject("GET", "/videos", 429, headers={"retry-after": later})
    with pytest.raises(BackendError, match=r"asks to wait 3[56]\d\d s"):
        list(sora.list_jobs())
    api.inject("GET", "/videos", 500, headers={"x-should-retry": "false"})
    with pytest.raises(BackendError, match="HTTP 500"):
        list(sora.list_jobs())
    assert sleeps == [] and api.count("GET", "/videos") == 2


def test_a_create_that_may_have_arrived_is_never_sent_twice(
    sora: SoraBackend, api: VideosAPIServer
):
    api.inject("POST", "/videos", 500, when="after")  # the job was made, the answer lost
    with pytest.raises(BackendError) as failed:
        sora.submit(request())
    assert api.count("POST", "/videos") == 1 and len(api.video_ids()) == 1
    assert "not sent again" in str(failed.value) and "reelvault sync" in str(failed.value)


def test_api_errors_become_one_clear_line(
    sora: SoraBackend, api: VideosAPIServer, monkeypatch: pytest.MonkeyPatch
):
    with pytest.raises(BackendError) as bad:
        sora.submit(request(prompt="x" * 32_001))
    assert bad.value.code == "invalid_request"
    assert str(bad.value).startswith("openai refused the request: Invalid 'prompt'")
    assert "(field prompt)" in str(bad.value) and "\n" not in str(bad.value)

    with pytest.raises(BackendError) as vanished:
        sora.poll("video_0123456789abcdef@openai")
    assert vanished.value.code == "unknown_job" and "not known at openai" in str(vanished.value)

    api.inject("POST", "/videos", 403, message="Project proj_1 has no access to sora-2-pro.")
    with pytest.raises(BackendError) as forbidden:
        sora.submit(request())
    assert forbidden.value.code == "forbidden"
    assert "provider openai refused access (HTTP 403): Project proj_1" in str(forbidden.value)

    wrong = "sk-test-WRONGwrongWRONG9876"
    monkeypatch.setenv("OPENAI_API_KEY", wrong)
    with pytest.raises(BackendError) as auth:
        sora.submit(request())
    text = str(auth.value)
    assert auth.value.code == "auth" and "provider openai" in text and "$OPENAI_API_KEY" in text
    assert wrong not in text and wrong[-4:] not in text and KEY not in text


def test_a_missing_key_is_reported_before_sending(
    sora: SoraBackend, api: VideosAPIServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.delenv("OPENAI_API_KEY")
    with pytest.raises(BackendError, match=r"no API key for provider openai: missing \(set"):
        sora.submit(request())
    assert api.requests == []


def test_download_failures_are_told_apart(sora: SoraBackend, api: VideosAPIServer):
    api.hold = True
    status = sora.submit(request())
    with pytest.raises(BackendError) as early:
        sora.download(status.job_id, Variant.VIDEO, io.BytesIO())
    assert early.value.code == "not_ready"
    api.release()
    finish(sora, status.job_id)
    api.inject("GET", "/videos/{id}/content", drop_after=50)
    with pytest.raises(BackendError) as cut:
        sora.download(status.job_id, Variant.VIDEO, io.BytesIO())
    assert cut.value.code == "download_interrupted" and cut.value.transient
    api.inject("GET", "/videos/{id}/content", 500)  # before any byte: retried in place
    out = io.BytesIO()
    sora.download(status.job_id, Variant.VIDEO, out)
    assert out.getvalue()[4:8] == b"ftyp"
    api.expire(status.job_id.split("@")[0])
    with pytest.raises(BackendError) as expired:
        sora.download(status.job_id, Variant.THUMBNAIL, io.BytesIO())
    assert expired.value.code == "expired"
    assert re.search(r"expired at \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", str(expired.value))


def test_a_moderation_failure_is_a_refusal(sora: SoraBackend, api: VideosAPIServer):
    api.fail_next("moderation_blocked", "Your request was blocked by our moderation system.")
    status = sora.submit(request())
    finish(sora, status.job_id)
    failed = sora.poll(status.job_id)
    assert failed.state == JobState.FAILED and failed.refused
    assert failed.error_code == "moderation_blocked"
    api.fail_next("internal_error", "The render crashed.")
    other = sora.submit(request())
    finish(sora, other.job_id)
    assert not sora.poll(other.job_id).refused


def test_azure_profiles_use_their_path_version_and_header(
    home: Path, api: VideosAPIServer, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("AZURE_KEY", KEY)
    write_config(
        home,
        f'[providers.azure]\nbase_url = "{api.root_url}"\nazure = true\nkey_env = "AZURE_KEY"\n',
    )
    sora = SoraBackend(Settings.load(home=home))
    status = sora.submit(request(parameters={"provider": "azure"}))
    assert status.job_id.endswith("@azure")
    assert sora.poll(status.job_id).state in (JobState.QUEUED, JobState.IN_PROGRESS)
    assert all(r.query.get("api-version") == "preview" for r in api.requests)
    assert all(r.path.startswith("/openai/v1/") and r.authorized for r in api.requests)


def test_list_jobs_follows_every_page(sora: SoraBackend, api: VideosAPIServer):
    made = [sora.submit(request(prompt=f"clip {i}")).job_id for i in range(5)]
    sora.page_size = 2
    listed = list(sora.list_jobs())
    assert [j.status.job_id for j in listed] == made
    assert api.count("GET", "/videos") == 3
    assert listed[0].seconds == 4 and listed[0].size == "1280x720" and listed[0].prompt == "clip 0"


def test_a_create_retried_as_the_service_asked_does_not_claim_it_was_sent_once(
    sora: SoraBackend, api: VideosAPIServer, sleeps: Sleeps
):
    api.inject("POST", "/videos", 500, times=99, headers={"x-should-retry": "true"})
    with pytest.raises(BackendError) as failed:
        sora.submit(request())
    assert api.count("POST", "/videos") == DEFAULT_MAX_RETRIES + 1
    assert "not sent again" not in str(failed.value)
    assert "sent again as the service asked (x-should-retry)" in str(failed.value)


AZURE_KEY = "AZ-Zq8w3RkT0pLm5Vn1Xb7Yc4HdQe"


@pytest.fixture
def azure(home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An Azure profile ``az``: its key travels in an ``api-key`` header, not Authorization."""
    monkeypatch.setenv("AZ_KEY", AZURE_KEY)
    write_config(
        home,
        '[providers.az]\nbase_url = "https://res.openai.azure.com"\nazure = true\n'
        'key_env = "AZ_KEY"\n',
    )  # fmt: skip
    return home


def redirected(home: Path, location: str, hops: int = 1) -> tuple[SoraBackend, list]:
    """A backend whose downloads answer with ``hops`` redirects, and the requests it sent."""
    seen: list[httpx.Request] = []

    def answer(sent: httpx.Request) -> httpx.Response:
        seen.append(sent)
        if len(seen) <= hops:
            return httpx.Response(302, headers={"location": location})
        return httpx.Response(200, content=b"the video")

    backend = SoraBackend(Settings.load(home=home), transport=httpx.MockTransport(answer))
    return backend, seen


def test_a_cross_origin_redirect_never_carries_the_key(azure: Path):
    sora, seen = redirected(azure, "https://cdn.example.net/blob/v.mp4")
    out = io.BytesIO()
    sora.download("video_abc@az", Variant.VIDEO, out)
    assert out.getvalue() == b"the video"
    first, second = seen
    assert first.headers["api-key"] == AZURE_KEY and first.url.host == "res.openai.azure.com"
    assert second.url.host == "cdn.example.net" and second.headers["host"] == "cdn.example.net"
    assert "api-key" not in second.headers and "authorization" not in second.headers
    sora.close()


def test_a_same_origin_redirect_keeps_the_key_and_loops_are_cut_short(azure: Path):
    sora, seen = redirected(azure, "/openai/v1/files/v.mp4")
    sora.download("video_abc@az", Variant.VIDEO, io.BytesIO())
    assert [r.headers.get("api-key") for r in seen] == [AZURE_KEY, AZURE_KEY]
    looping, _ = redirected(azure, "/again", hops=99)
    with pytest.raises(BackendError, match="more than 5 redirects") as failed:
        looping.download("video_abc@az", Variant.VIDEO, io.BytesIO())
    assert AZURE_KEY not in str(failed.value)


def test_closing_the_backend_closes_its_connections(sora: SoraBackend):
    sora.poll(sora.submit(request()).job_id)
    (service,) = sora._pool._services.values()
    client = service.client
    sora.close()
    assert client.is_closed
    sora.poll(sora.submit(request()).job_id)  # usable again: a new pool is opened


def test_the_application_closes_its_backends(home: Path, api: VideosAPIServer):
    app = Reelvault(Settings.load(home=home))
    sora = app.backend("sora")
    sora.submit(request())
    (service,) = sora._pool._services.values()
    client = service.client
    app.close()
    assert client.is_closed and app.backend("sora") is not sora
    app.close()
