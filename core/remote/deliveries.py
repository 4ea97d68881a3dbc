"""What each provider's webhook delivery says, and how fal's deliveries are trusted.

The receiver (:mod:`core.remote.webhooks`) serves one provider profile; its kind says how
deliveries are signed and what they carry:

- ``sora`` (the Videos API): Standard Webhooks signatures; a ``video.completed`` or
  ``video.failed`` event with the video's id.
- ``replicate``: Standard Webhooks signatures too (``webhook-id``/``-timestamp``/
  ``-signature``, the account's ``whsec_`` secret from ``GET /v1/webhooks/default/secret``);
  the body is the Prediction, as ``GET /predictions/{id}`` answers it. Only a finished
  prediction is acted on (reelvault asks for ``webhook_events_filter: ["completed"]``).
- ``fal``: Ed25519. fal signs ``request id \\n user id \\n timestamp \\n sha256(body) hex``
  and publishes its public keys as a JWKS (``webhook_jwks_url`` in ``[plugins.fal]``;
  fal's own by default). The body (``{request_id, status, payload}``) does not name the
  app, which fal's job ids need, so reelvault's webhook URL carries it (``?app=OWNER/APP``).

Whatever a delivery says, it only tells the receiver *which* job to finish: the job is
then polled and downloaded from the provider with the key, exactly as ``resume`` does, so
a delivery can never put content or an outcome of its own into the catalog.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from catalog.queries import generations_by_job_ids
from catalog.statuses import ENDED
from core.api.errors import ReelvaultError, WebhookRejected
from core.api.providers import ProviderProfile, Secret, api_key, key_source
from core.api.providers import job_id as video_job_id
from core.api.remote import RemoteService
from core.api.settings import Settings
from core.generation import run_job
from core.host.app import Reelvault

FAL_JWKS_URL = "https://rest.alpha.fal.ai/.well-known/jwks.json"
"""Where fal publishes its webhook keys, as fal's verification guide and clients use it."""
JWKS_CACHE_SECONDS = 24 * 3600
JWKS_REFRESH_SECONDS = 60.0
"""A signature no cached key matches fetches the key set again, at most this often (fal
may have rotated its keys); more often would let anyone make us fetch on demand."""
TOLERANCE_SECONDS = 300
VIDEO_EVENTS = ("video.completed", "video.failed")
FINISHED_PREDICTIONS = ("succeeded", "failed", "canceled", "aborted")
_PREDICTION_ID = re.compile(r"^[a-z0-9]{8,64}$")
_FAL_REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,100}$")
_FAL_APP = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+$")


@dataclass(frozen=True)
class Announced:
    """A trusted delivery: which job it is about (``None``: nothing to do) and how to
    name it in the receiver's log."""

    delivery_id: str
    what: str
    name: str
    job_id: str | None
    hint: str = ""
    """What to do when the job is not in the catalog."""


def video_event(event: Mapping[str, Any], webhook_id: str, provider: str) -> Announced:
    """A verified Videos API event."""
    kind = str(event.get("type"))
    data = event.get("data")
    video_id = data.get("id") if isinstance(data, Mapping) else None
    if kind not in VIDEO_EVENTS or not isinstance(video_id, str):
        return Announced(webhook_id, kind, str(video_id), None)
    return Announced(webhook_id, kind, video_id, video_job_id(video_id, provider),
                     "`reelvault sync` imports it")  # fmt: skip


def replicate_secret(settings: Settings, profile: ProviderProfile) -> Secret | None:
    """The account's signing secret, asked of Replicate (``GET /webhooks/default/secret``)
    with the profile's API key, for a profile that has none stored; ``None`` without a key.

    It is held in memory only: keys.toml keeps what the user put there, nothing else.
    """
    key = api_key(settings, profile)
    if key is None:
        return None
    service = RemoteService(
        profile.name,
        profile.api_root,
        key,
        profile.auth_headers(key),
        key_source=key_source(settings, profile),
        key_fix=f"reelvault keys set {profile.name}",
        config=settings.section("replicate"),
    )
    try:
        answer = service.json(service.call("GET", "webhooks/default/secret"))
    finally:
        service.close()
    value = answer.get("key")
    if not isinstance(value, str) or not value.startswith("whsec_"):
        raise WebhookRejected(f"{profile.name} sent no whsec_ webhook secret")
    return Secret(value)


def replicate_prediction(body: bytes, webhook_id: str, provider: str) -> Announced:
    """A verified Replicate delivery: the Prediction."""
    prediction = _json_object(body)
    prediction_id, status = prediction.get("id"), prediction.get("status")
    if not isinstance(prediction_id, str) or not _PREDICTION_ID.match(prediction_id):
        raise WebhookRejected("the body is not a prediction")
    what = f"prediction {status}"
    if status not in FINISHED_PREDICTIONS:
        return Announced(webhook_id, what, prediction_id, None)
    return Announced(webhook_id, what, prediction_id, f"{prediction_id}@{provider}")


def finish_from_event(app: Reelvault, provider: str, event: Mapping[str, Any]) -> str:
    """Finish the job a video event is about; returns a line saying what happened."""
    return finish_announced(app, video_event(event, "", provider))


def finish_announced(app: Reelvault, announced: Announced) -> str:
    """Finish the job a trusted delivery is about, as ``resume`` would (poll, download,
    catalog), once; returns a line saying what happened."""
    name, remote = announced.name, announced.job_id
    if remote is None:
        return f"ignored {announced.what} event" + (
            f" ({announced.hint})" if announced.hint else ""
        )
    with app.session() as session:
        generation = generations_by_job_ids(session, [remote]).get(remote)
    if generation is None:
        return f"{name}: not in the catalog" + (f" ({announced.hint})" if announced.hint else "")
    if generation.status in ENDED:
        return f"{name}: {generation.id} was already {generation.status}"
    try:
        finished = run_job(app, generation.id).generation
    except ReelvaultError as exc:
        return f"{name}: {generation.id} could not be finished: {exc}"
    if finished.status not in ENDED:
        return f"{name}: {generation.id} is being finished by {finished.lease_owner}"
    outcome = finished.status
    if finished.error_code:
        outcome += f" ({finished.error_code}: {finished.error_message})"
    return f"{name}: {generation.id} {outcome}"


# --- fal ---------------------------------------------------------------------------------


class FalKeys:
    """fal's webhook public keys, fetched from a JWKS URL and kept for a day."""

    def __init__(self, url: str, *, transport: httpx.BaseTransport | None = None) -> None:
        self.url = url
        self._transport = transport
        self._keys: list[Ed25519PublicKey] = []
        self._fetched = float("-inf")
        self._lock = threading.Lock()

    def keys(self, *, refresh: bool = False) -> list[Ed25519PublicKey]:
        with self._lock:
            age = time.monotonic() - self._fetched
            if age > JWKS_CACHE_SECONDS or (refresh and age > JWKS_REFRESH_SECONDS):
                self._keys = self._fetch()
                self._fetched = time.monotonic()
            return list(self._keys)

    def _fetch(self) -> list[Ed25519PublicKey]:
        try:
            with httpx.Client(transport=self._transport, timeout=10.0) as client:
                answer = client.get(self.url)
                answer.raise_for_status()
                document = answer.json()
        except (httpx.HTTPError, ValueError) as exc:
            raise WebhookRejected(
                f"fal's webhook keys could not be fetched from {self.url} ({type(exc).__name__})"
            ) from None
        found = []
        for entry in document.get("keys", []) if isinstance(document, dict) else []:
            if not isinstance(entry, dict) or entry.get("kty") != "OKP":
                continue
            if entry.get("crv") != "Ed25519" or not isinstance(entry.get("x"), str):
                continue
            try:
                raw = base64.urlsafe_b64decode(entry["x"] + "=" * (-len(entry["x"]) % 4))
                found.append(Ed25519PublicKey.from_public_bytes(raw))
            except (binascii.Error, ValueError):
                continue
        return found


def fal_delivery(
    keys: FalKeys,
    body: bytes,
    headers: Mapping[str, str],
    query: Mapping[str, str],
    provider: str,
) -> Announced:
    """Check a fal delivery's Ed25519 signature and time; the job it is about."""
    lower = {k.lower(): v for k, v in headers.items()}
    names = ("request-id", "user-id", "timestamp", "signature")
    missing = [f"x-fal-webhook-{n}" for n in names if not lower.get(f"x-fal-webhook-{n}")]
    if missing:
        raise WebhookRejected(f"missing header {', '.join(missing)}")
    request_id = lower["x-fal-webhook-request-id"]
    stamp = lower["x-fal-webhook-timestamp"].strip()
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
        raise WebhookRejected("x-fal-webhook-timestamp is not a number of seconds")
    if abs(time.time() - int(stamp)) > TOLERANCE_SECONDS:
        raise WebhookRejected(f"the delivery is more than {TOLERANCE_SECONDS} s off")
    try:
        signature = bytes.fromhex(lower["x-fal-webhook-signature"].strip())
    except ValueError:
        raise WebhookRejected("no signature matches") from None
    message = "\n".join(
        (request_id, lower["x-fal-webhook-user-id"], stamp, hashlib.sha256(body).hexdigest())
    ).encode()
    if not _any_key_signed(keys, signature, message):
        raise WebhookRejected("no signature matches")
    delivery = _json_object(body)
    if delivery.get("request_id") != request_id or not _FAL_REQUEST_ID.match(request_id):
        raise WebhookRejected("the body is about another request than the signature")
    what = f"fal request {delivery.get('status')}"
    app = query.get("app", "")
    if not _FAL_APP.match(app):
        return Announced(request_id, what, request_id, None, "the webhook URL names no ?app=")
    return Announced(request_id, what, request_id, f"{app}:{request_id}@{provider}")


def _any_key_signed(keys: FalKeys, signature: bytes, message: bytes) -> bool:
    for refresh in (False, True):
        for key in keys.keys(refresh=refresh):
            try:
                key.verify(signature, message)
            except InvalidSignature:
                continue
            return True
    return False


def _json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise WebhookRejected("the body is not JSON") from None
    if not isinstance(value, dict):
        raise WebhookRejected("the body is not a JSON object")
    return value
