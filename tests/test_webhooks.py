"""Standard Webhooks verification, and the receiver that finishes jobs exactly once."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO

import openai
import pytest
import standardwebhooks
from sqlmodel import select

from catalog.models import Asset, Generation
from core.api.errors import BackendError, ReelvaultError, WebhookRejected
from core.api.hookspecs import hookimpl
from core.api.settings import Settings
from core.api.types import ClipView, Variant
from core.generation import generate, run_job
from core.host.app import Reelvault
from core.host.plugins import load_host
from core.remote.deliveries import finish_from_event
from core.remote.webhooks import (
    DELIVERIES_KEPT,
    WebhookReceiver,
    sign,
    verify,
)
from core.testing import VideosAPIServer, new_webhook_secret
from tests import sora_support
from tests.conftest import REPO
from tests.sora_support import write_config

KEY = sora_support.KEY
api = sora_support.api
still_720p = sora_support.still_720p
SECRET = "whsec_" + "c2VjcmV0LWtleS1mb3ItdGVzdHMtb25seQ=="
BODY = b'{"id":"evt_1","object":"event","created_at":1,"type":"video.completed","data":{"id":"v"}}'


def headers(body: bytes = BODY, secret: str = SECRET, stamp: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if stamp is None else stamp
    return {
        "Webhook-Id": "wh_1",
        "Webhook-Timestamp": str(stamp),
        "Webhook-Signature": sign(secret, "wh_1", stamp, body),
    }


def test_a_signed_delivery_verifies_and_the_sdk_agrees():
    event = verify(SECRET, BODY, headers())
    assert event["type"] == "video.completed" and event["data"] == {"id": "v"}
    client = openai.OpenAI(api_key="unused", webhook_secret=SECRET)
    client.webhooks.verify_signature(BODY, headers())  # the official check passes too


def _now() -> int:
    return int(time.time())


@pytest.mark.parametrize(
    ("delivery", "reason"),
    [  # built when the test runs: a timestamp made at collection time would age
        (lambda: (BODY.replace(b'"v"', b'"w"'), headers()), "no signature matches"),
        (lambda: (BODY, headers(secret=new_webhook_secret())), "no signature matches"),
        (lambda: (BODY, headers(stamp=_now() - 301)), "older than 300 s"),
        (lambda: (BODY, headers(stamp=_now() + 301)), "in the future"),
        (lambda: (BODY, {k: v for k, v in headers().items() if k != "Webhook-Id"}), "webhook-id"),
        (lambda: (b"not json", headers(b"not json")), "not JSON"),
    ],
    ids=["tampered", "forged", "stale", "future", "incomplete", "not-json"],
)
def test_tampered_forged_stale_or_incomplete_deliveries_are_refused(delivery, reason):
    body, hdrs = delivery()
    with pytest.raises(WebhookRejected, match=reason):
        verify(SECRET, body, hdrs)


def test_any_of_several_signatures_may_match_and_raw_secrets_work():
    good = headers()["Webhook-Signature"]
    mixed = {**headers(), "Webhook-Signature": f"v1,AAAA {good}"}
    assert verify(SECRET, BODY, mixed)["id"] == "evt_1"
    raw = headers(secret="plain-secret")
    assert verify("plain-secret", BODY, raw)["id"] == "evt_1"


class Announcements:
    """A clip_cataloged plugin that counts how often each clip is announced."""

    def __init__(self) -> None:
        self.clips: list[str] = []

    @hookimpl
    def clip_cataloged(self, clip: ClipView) -> None:
        self.clips.append(clip.id)


@pytest.fixture
def announced() -> Announcements:
    return Announcements()


@pytest.fixture
def hooked_app(
    home: Path, api: VideosAPIServer, announced: Announcements, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Reelvault]:
    secret = new_webhook_secret()
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", secret)
    api.webhook_secret = secret
    host = load_host()
    host.register(announced, "announcements", "test")
    app = Reelvault(Settings.load(home=home), host=host)
    yield app
    app.close()


@pytest.fixture
def receiver(hooked_app: Reelvault, api: VideosAPIServer) -> Iterator[WebhookReceiver]:
    with WebhookReceiver(hooked_app) as running:
        api.webhook_url = running.url
        yield running


def only_generation(app: Reelvault) -> Generation:
    with app.session() as session:
        (row,) = session.exec(select(Generation)).all()
        return row


def test_a_webhook_finishes_a_job_nobody_is_polling(
    hooked_app: Reelvault,
    receiver: WebhookReceiver,
    api: VideosAPIServer,
    announced: Announcements,
    still_720p: Path,
    home: Path,
):
    write_config(home, "poll_timeout = 0.2\n")
    app = Reelvault(Settings.load(home=home), host=hooked_app.host)  # reads the timeout
    api.hold = True
    with pytest.raises(BackendError, match="resume"):
        generate(app, still_720p, "a harbour", model="sora-2", size="1280x720")
    waiting = only_generation(app)
    assert waiting.status == "in_progress" and announced.clips == []
    api.release()
    api.wait_for(lambda: len(api.webhook_deliveries) == 1)
    receiver.wait_idle()
    done = only_generation(app)
    assert done.status == "completed" and done.output_asset_id and done.spritesheet_asset_id
    assert announced.clips == [done.id]
    assert api.webhook_deliveries[0].status == 200
    app.close()


def test_polling_and_a_webhook_together_finish_a_job_once(
    hooked_app: Reelvault,
    receiver: WebhookReceiver,
    api: VideosAPIServer,
    announced: Announcements,
    still_720p: Path,
):
    api.hold = True
    results: list[Generation] = []
    polling = threading.Thread(
        target=lambda: results.append(
            generate(
                hooked_app, still_720p, "a harbour", model="sora-2", size="1280x720"
            ).generation
        )
    )
    polling.start()
    api.wait_for(lambda: api.count("GET", "/videos/{id}") >= 2)
    api.release()
    polling.join(timeout=30)
    api.wait_for(lambda: len(api.webhook_deliveries) == 1)
    receiver.wait_idle()
    (clip,) = results
    assert clip.status == "completed"
    assert announced.clips == [clip.id]  # announced once, whoever got there first
    assert only_generation(hooked_app).output_asset_id == clip.output_asset_id


def test_forged_stale_and_replayed_deliveries_are_refused(
    hooked_app: Reelvault, receiver: WebhookReceiver, api: VideosAPIServer, still_720p: Path
):
    api.hold = True
    api.webhook_url = None  # no automatic delivery: only the ones made here
    write_config(hooked_app.settings.home, "poll_timeout = 0.2\n")
    app = Reelvault(Settings.load(home=hooked_app.settings.home), host=hooked_app.host)
    with pytest.raises(BackendError):
        generate(app, still_720p, "a harbour", model="sora-2", size="1280x720")
    video_id = only_generation(app).remote_job_id.split("@")[0]
    api.release()
    api.wait_for(lambda: api.video(video_id)["status"] == "completed")
    assert api.deliver(video_id, url=receiver.url, secret=new_webhook_secret()) == 401
    stale = int(time.time()) - 600
    assert api.deliver(video_id, url=receiver.url, timestamp=stale) == 401
    receiver.wait_idle()
    assert only_generation(app).status == "in_progress"  # nothing forged got through

    assert api.deliver(video_id, url=receiver.url, webhook_id="wh_once") == 200
    assert api.deliver(video_id, url=receiver.url, webhook_id="wh_once") == 409
    receiver.wait_idle()
    assert only_generation(app).status == "completed"
    messages = [d.message for d in receiver.deliveries]
    assert sum("refused a delivery" in m for m in messages) == 2
    assert any("refused a replayed delivery wh_once" in m for m in messages)
    app.close()


def test_events_about_unknown_videos_or_other_types_change_nothing(hooked_app: Reelvault):
    unknown = {"type": "video.completed", "data": {"id": "video_nobody"}}
    assert "not in the catalog" in finish_from_event(hooked_app, "openai", unknown)
    other = {"type": "batch.completed", "data": {"id": "batch_1"}}
    assert finish_from_event(hooked_app, "openai", other) == "ignored batch.completed event"


def test_serving_without_a_webhook_secret_says_how_to_set_one(run, api: VideosAPIServer):
    result = run("webhooks", "serve", "--port", "9", expect=1)
    assert "no webhook secret for provider openai" in result.output
    assert "reelvault keys set openai --webhook-secret" in result.output


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.mark.slow
def test_the_webhooks_serve_command_finishes_a_job(
    run, home: Path, api: VideosAPIServer, still_720p: Path, monkeypatch: pytest.MonkeyPatch
):
    secret = new_webhook_secret()
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", secret)
    write_config(home, "poll_timeout = 0.2\n")
    api.hold = True
    run("generate", still_720p, "-p", "a harbour", "-m", "sora-2", "--size", "1280x720", expect=1)
    (job,) = json.loads(run("jobs", "--json").stdout)
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "core", "webhooks", "serve", "--port", str(port)],
        cwd=REPO, env={**os.environ, "REELVAULT_HOME": str(home)},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        api.webhook_url, api.webhook_secret = f"http://127.0.0.1:{port}/", secret
        deadline = time.monotonic() + 60
        while server.stderr and "listening on" not in server.stderr.readline():
            assert time.monotonic() < deadline and server.poll() is None
        api.release()
        api.wait_for(lambda: api.webhook_deliveries and api.webhook_deliveries[0].status == 200)
        api.wait_for(
            lambda: json.loads(run("show", job["id"], "--json").stdout)["status"] == "completed",
            timeout=60,
        )
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
    assert f"{job['id']} completed" in out


# --- finishing once, and a receiver that fails cleanly ----------------------------------


def test_two_finishers_download_and_sign_a_job_once(
    hooked_app: Reelvault,
    api: VideosAPIServer,
    announced: Announcements,
    still_720p: Path,
    home: Path,
):
    """A poller and a webhook (or a worker whose lease lapsed and its successor) finishing
    one job at the same moment: the second waits for the first instead of fetching,
    signing and cataloging a second copy."""
    write_config(home, "poll_timeout = 0.2\n")
    app = Reelvault(Settings.load(home=home), host=hooked_app.host)
    api.hold = True
    with pytest.raises(BackendError, match="resume"):
        generate(app, still_720p, "a harbour", model="sora-2", size="1280x720")
    job = only_generation(app)
    api.release()
    api.wait_for(lambda: api.video(job.remote_job_id.split("@")[0])["status"] == "completed")
    sora = app.backend("sora")
    fetched: list[str] = []
    real_download = sora.download

    def slow_download(job_id: str, variant: Variant, dest: BinaryIO) -> None:
        fetched.append(variant.value)
        time.sleep(0.2)  # both finishers are past polling before either is done
        real_download(job_id, variant, dest)

    sora.download = slow_download  # type: ignore[method-assign]
    results: list[Generation] = []
    finishers = [
        threading.Thread(target=lambda: results.append(run_job(app, job.id).generation))
        for _ in range(2)
    ]
    for thread in finishers:
        thread.start()
    for thread in finishers:
        thread.join(60)
    assert sorted(fetched) == ["spritesheet", "thumbnail", "video"]  # once each
    assert [r.status for r in results] == ["completed", "completed"]
    assert results[0].output_asset_id == results[1].output_asset_id
    assert announced.clips == [job.id]
    with app.session() as session:
        videos = session.exec(select(Asset).where(Asset.kind == "video")).all()
    assert [v.id for v in videos] == [results[0].output_asset_id]  # no orphan signed copy
    row = only_generation(app)
    assert (row.status, row.lease_owner, row.lease_expires_at) == ("completed", None, None)
    app.close()


def test_a_port_in_use_is_one_clear_error(
    run, hooked_app: Reelvault, monkeypatch: pytest.MonkeyPatch
):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ReelvaultError, match=f"cannot listen on 127.0.0.1:{port}"):
            WebhookReceiver(hooked_app, port=port)
        result = run("webhooks", "serve", "--port", port, expect=1)
    assert f"Error: cannot listen on 127.0.0.1:{port}" in result.output
    assert "another program uses that port" in result.output


def test_a_malformed_whsec_secret_is_refused_at_startup(
    app: Reelvault, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("OPENAI_WEBHOOK_SECRET", "whsec_not*base64!")
    with pytest.raises(ReelvaultError, match="webhook secret for provider openai") as refused:
        WebhookReceiver(app)
    assert "not*base64" not in str(refused.value)  # the message names where, never what


def test_a_non_ascii_signature_is_a_rejection_not_a_crash():
    with pytest.raises(WebhookRejected, match="no signature matches"):
        verify(SECRET, BODY, {**headers(), "Webhook-Signature": "v1,sïgnature"})


def raw_post(url: str, head: str) -> bytes:
    """A request the way a broken or hostile client might send it, answer included."""
    host, port = url.removeprefix("http://").rstrip("/").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(f"POST / HTTP/1.1\r\nHost: {host}\r\n{head}\r\n".encode())
        return conn.recv(4096)


@pytest.mark.parametrize("length", ["12abc", "-5", "１２"], ids=["garbage", "negative", "wide"])
def test_a_bad_content_length_is_a_400(receiver: WebhookReceiver, length: str):
    answer = raw_post(receiver.url, f"Content-Length: {length}\r\n")
    assert answer.startswith(b"HTTP/1.1 400"), answer
    assert raw_post(receiver.url, "Content-Length: 2\r\n\r\n{}").startswith(b"HTTP/1.1 401")


def test_the_receiver_remembers_recent_deliveries_only(receiver: WebhookReceiver):
    for _ in range(DELIVERIES_KEPT + 5):
        receiver.receive(BODY, {})
    assert len(receiver.deliveries) == DELIVERIES_KEPT


def test_malformed_signature_entries_beside_a_good_one_do_not_hide_it():
    """The reference library raises on an entry without one comma or with bad base64;
    such entries must only fail to match."""
    good = headers()["Webhook-Signature"]
    noisy = {**headers(), "Webhook-Signature": f"garbage v1,a,b v1,!!! v1,sïg {good}"}
    assert verify(SECRET, BODY, noisy)["id"] == "evt_1"
    with pytest.raises(WebhookRejected, match="no signature matches"):
        verify(SECRET, BODY, {**headers(), "Webhook-Signature": "garbage v1,a,b v1,!!!"})


def test_signatures_are_the_reference_library_s_both_ways():
    reference = standardwebhooks.Webhook(SECRET)
    assert reference.verify(BODY, headers()) == json.loads(BODY)  # ours pass its check
    stamp = int(time.time())
    theirs = reference.sign("wh_1", datetime.fromtimestamp(stamp, tz=UTC), BODY.decode())
    hdrs = {"webhook-id": "wh_1", "webhook-timestamp": str(stamp), "webhook-signature": theirs}
    assert verify(SECRET, BODY, hdrs)["id"] == "evt_1"  # its signatures pass ours


def test_a_non_utf8_body_or_an_empty_secret_is_a_rejection_not_a_crash():
    body = b"\xff\xfe not text"
    stamp = str(int(time.time()))
    hdrs = {"webhook-id": "wh_1", "webhook-timestamp": stamp, "webhook-signature": "v1,AAAA"}
    with pytest.raises(WebhookRejected, match="not JSON"):
        verify(SECRET, body, hdrs)
    with pytest.raises(WebhookRejected, match="secret is empty"):
        verify("whsec_", BODY, headers())
