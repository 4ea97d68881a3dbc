"""fal and Replicate webhooks through the one receiver: signed deliveries finish jobs once.

Each test submits through the CLI with ``webhook_url`` configured, lets ``generate`` give
up polling (the stand-in holds the job), then releases the job: the stand-in posts its
signed delivery to the receiver, which finishes the job (poll, download, catalog) with no
``resume``. Forged and unsigned deliveries are refused before that, a replay after it.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from core.api.errors import WebhookRejected
from core.api.settings import Settings
from core.host.app import Reelvault
from core.host.plugins import load_host
from core.remote.deliveries import FalKeys, fal_delivery
from core.remote.webhooks import WebhookReceiver
from core.testing import new_webhook_secret
from core.testing.fal_api import FalQueueServer
from core.testing.replicate_api import ReplicateServer
from core.testing.webhook_sender import Sent
from tests import hosted_support
from tests.hosted_support import Hosted, jobs, show, write_config

REP = Hosted("replicate", "kwaivgi/kling-v2.1", "rep", "r8_Wq3Lm8Zt5Xv2Nc7Bk4Hd9Jf", "REP_TOKEN")
FAL = Hosted("fal", "fal-ai/kling-video/v2.1/standard/image-to-video", "falqueue",
             "fal-key-id-3Hs8:Vb6Nm2Qw9Zx4", "FAL_TOKEN")  # fmt: skip
still_720p = hosted_support.still_720p


@pytest.fixture
def open_app(home: Path) -> Iterator[Callable[[], Reelvault]]:
    """The receiver's application, opened once the test has written its config."""
    write_config(home, "poll_timeout = 0.3\n")  # generate gives up; the webhook finishes
    opened: list[Reelvault] = []

    def opener() -> Reelvault:
        opened.append(Reelvault(Settings.load(home=home), host=load_host()))
        return opened[-1]

    yield opener
    for application in opened:
        application.close()


def accepted(sent: list[Sent]) -> list[Sent]:
    return [s for s in sent if s.status == 200]


def in_flight_clip(run, hosted: Hosted, still: Path) -> str:
    """``generate`` that stops polling before the held job ends; the clip's id."""
    hosted.make(run, still, expect=1)
    (job,) = jobs(run)
    assert job["status"] in ("queued", "in_progress")
    return str(job["id"])


def test_a_replicate_delivery_finishes_the_job_once_and_forgeries_are_refused(
    run, home: Path, open_app, monkeypatch: pytest.MonkeyPatch, still_720p: Path
):
    with ReplicateServer(api_key=REP.key) as api:
        REP.connect(home, monkeypatch, api.base_url)  # no secret stored: asked of Replicate
        with WebhookReceiver(open_app(), "rep") as receiver:
            assert api.count("GET", r"^/v1/webhooks/default/secret$") == 1
            write_config(home, f'[plugins.replicate]\nwebhook_url = "{receiver.url}"\n')
            api.hold = True
            clip = in_flight_clip(run, REP, still_720p)
            ((prediction_id, prediction),) = api.predictions.items()
            assert api.creates[0]["webhook"] == receiver.url
            assert api.creates[0]["webhook_events_filter"] == ["completed"]

            assert api.deliver(prediction_id, url=receiver.url, secret=new_webhook_secret()) == 401
            unsigned = httpx.post(receiver.url, content=json.dumps({"id": prediction_id}))
            assert unsigned.status_code == 401
            receiver.wait_idle()
            assert show(run, clip)["status"] != "completed"  # nothing forged got through

            api.release()
            api.wait_for(lambda: accepted(api.announcer.delivered(prediction_id)) != [])
            receiver.wait_idle()
            shown = show(run, clip)
            assert shown["status"] == "completed" and shown["video"]["width"] == 1280
            assert jobs(run) == []

            (sent,) = accepted(api.announcer.delivered(prediction_id))
            replay = httpx.post(receiver.url, content=sent.body, headers=sent.headers)
            assert replay.status_code == 409
            receiver.wait_idle()
            assert api.count("GET", r"^/deliveries/") == 1  # downloaded once
            assert len(api.creates) == 1 and prediction.webhook == receiver.url
    messages = [d.message for d in receiver.deliveries]
    assert [m.split(":")[0] for m in messages] == [
        "refused a delivery", "refused a delivery",
        f"accepted prediction succeeded ({sent.headers['webhook-id']})",
        f"refused a replayed delivery {sent.headers['webhook-id']}",
    ]  # fmt: skip


def test_a_fal_delivery_signed_with_fals_key_finishes_the_job_once(
    run, home: Path, open_app, monkeypatch: pytest.MonkeyPatch, still_720p: Path
):
    with FalQueueServer(api_key=FAL.key) as api:
        FAL.connect(home, monkeypatch, api.base_url)
        write_config(home, f'[plugins.fal]\nwebhook_jwks_url = "{api.jwks_url}"\n')
        with WebhookReceiver(open_app(), "falqueue") as receiver:
            write_config(home, f'webhook_url = "{receiver.url}"\n')  # into [plugins.fal]
            api.hold = True
            clip = in_flight_clip(run, FAL, still_720p)
            ((request_id, job),) = api.jobs.items()
            assert job.webhook == f"{receiver.url}?app=fal-ai%2Fkling-video"

            stranger = Ed25519PrivateKey.generate()
            assert api.deliver(request_id, url=job.webhook, key=stranger) == 401
            assert httpx.post(job.webhook, content=b'{"request_id": "x"}').status_code == 401
            receiver.wait_idle()
            assert show(run, clip)["status"] != "completed"

            api.release()
            api.wait_for(lambda: accepted(api.announcer.delivered(request_id)) != [])
            receiver.wait_idle()
            shown = show(run, clip)
            assert shown["status"] == "completed" and shown["video"]["height"] == 720

            (sent,) = accepted(api.announcer.delivered(request_id))
            assert httpx.post(sent.url, content=sent.body, headers=sent.headers).status_code == 409
            receiver.wait_idle()
            assert api.count("GET", r"^/cdn/") == 1 and len(api.submits) == 1


def test_a_provider_without_webhooks_is_refused_in_one_line(run):
    result = run("webhooks", "serve", "--port", "9", "--provider", "gemini", expect=1)
    assert result.output.strip().splitlines()[-1] == (
        "Error: provider gemini is a veo provider, which sends no webhooks: its jobs are "
        "finished by polling (`reelvault resume`)"
    )


# --- fal's signatures, piece by piece ----------------------------------------------------


def fal_signed(key: Ed25519PrivateKey, body: bytes, request_id: str = "req-1", stamp=None):
    stamp = str(int(time.time()) if stamp is None else stamp)
    message = "\n".join((request_id, "user-1", stamp, hashlib.sha256(body).hexdigest()))
    return {"X-Fal-Webhook-Request-Id": request_id, "X-Fal-Webhook-User-Id": "user-1",
            "X-Fal-Webhook-Timestamp": stamp,
            "X-Fal-Webhook-Signature": key.sign(message.encode()).hex()}  # fmt: skip


def jwks_serving(*keys: Ed25519PrivateKey) -> tuple[FalKeys, list[int]]:
    """A key set at a mock URL, and a list counting how often it was fetched."""
    fetched: list[int] = []

    def answer(_request: httpx.Request) -> httpx.Response:
        fetched.append(1)
        entries = [{"kty": "OKP", "crv": "Ed25519", "x": base64.urlsafe_b64encode(
            k.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)).decode().rstrip("=")}
            for k in keys]  # fmt: skip
        return httpx.Response(200, json={"keys": [{"kty": "RSA", "n": "x"}, *entries]})

    return FalKeys("https://jwks.test/keys", transport=httpx.MockTransport(answer)), fetched


FAL_BODY = b'{"request_id": "req-1", "status": "OK", "payload": {"video": {"url": "u"}}}'
APP = {"app": "fal-ai/kling-video"}


def test_a_fal_delivery_names_its_job_and_the_keys_are_fetched_once():
    key = Ed25519PrivateKey.generate()
    keys, fetched = jwks_serving(key)
    announced = fal_delivery(keys, FAL_BODY, fal_signed(key, FAL_BODY), APP, "falqueue")
    assert announced.job_id == "fal-ai/kling-video:req-1@falqueue"
    assert announced.what == "fal request OK" and announced.delivery_id == "req-1"
    fal_delivery(keys, FAL_BODY, fal_signed(key, FAL_BODY), APP, "falqueue")
    assert len(fetched) == 1  # kept, not fetched per delivery
    no_app = fal_delivery(keys, FAL_BODY, fal_signed(key, FAL_BODY), {}, "falqueue")
    assert no_app.job_id is None and "?app=" in no_app.hint


@pytest.mark.parametrize(
    ("delivery", "reason"),
    [
        (lambda k: (FAL_BODY.replace(b"OK", b"ER"), fal_signed(k, FAL_BODY)), "no signature"),
        (lambda k: (FAL_BODY, fal_signed(Ed25519PrivateKey.generate(), FAL_BODY)), "no signature"),
        (lambda k: (FAL_BODY, fal_signed(k, FAL_BODY, stamp=int(time.time()) - 301)), "300 s off"),
        (
            lambda k: (FAL_BODY, {**fal_signed(k, FAL_BODY), "X-Fal-Webhook-Signature": "zz"}),
            "no signature",
        ),
        (lambda k: (FAL_BODY, {}), "missing header x-fal-webhook-request-id"),
        (lambda k: (FAL_BODY, fal_signed(k, FAL_BODY, request_id="req-2")), "another request"),
    ],
    ids=["tampered", "stranger", "stale", "not-hex", "unsigned", "other-request"],
)
def test_tampered_forged_stale_or_mismatched_fal_deliveries_are_refused(delivery, reason):
    key = Ed25519PrivateKey.generate()
    keys, _ = jwks_serving(key)
    body, headers = delivery(key)
    with pytest.raises(WebhookRejected, match=reason):
        fal_delivery(keys, body, headers, APP, "falqueue")


def test_an_unreachable_key_set_refuses_the_delivery_in_one_line():
    def down(_request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    keys = FalKeys("https://jwks.test/keys", transport=httpx.MockTransport(down))
    key = Ed25519PrivateKey.generate()
    with pytest.raises(WebhookRejected, match=r"could not be fetched from https://jwks.test"):
        fal_delivery(keys, FAL_BODY, fal_signed(key, FAL_BODY), APP, "falqueue")
