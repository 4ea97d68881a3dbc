"""A loopback stand-in for fal's queue API with image-to-video apps, for tests.

It follows ``shared/reference/fal-queue.md`` (fal-client, fal-js and fal's docs):

- ``POST /{owner}/{app}[/{path}]`` validates the app's input (required ``prompt`` and
  ``image_url`` as an http(s) URL or a data URI; the app's string enums for
  ``duration``, ``resolution``, ``aspect_ratio``; Wan's frame counts) and answers
  ``request_id`` with absolute ``status_url``/``response_url``/``cancel_url``; a bad
  input is a 422 ``{"detail": [{"loc", "msg", "type"}]}``.
- ``GET /{owner}/{app}/requests/{id}/status``: 202 ``IN_QUEUE`` (with a falling
  ``queue_position``), 202 ``IN_PROGRESS``, then 200 ``COMPLETED`` (``metrics``; an
  ``error``/``error_type`` when the run failed).
- ``GET /{owner}/{app}/requests/{id}``: the app's output, ``{"video": {url, ...}}``, or
  the model's error (422, e.g. ``content_policy_violation``); 404 once expired.
- ``PUT /{owner}/{app}/requests/{id}/cancel``: 202 ``CANCELLATION_REQUESTED`` while queued
  or running (the request then never renders), 400 ``ALREADY_COMPLETED`` after. How fal
  reports a cancelled request afterwards is not documented; here its status is
  ``COMPLETED`` with ``error``/``error_type`` ``request_cancelled`` and its result a 400.
- ``GET /cdn/{token}/output.mp4``: the video (a real MP4 of the still's shape), no key.
- Webhooks: a submit with ``?fal_webhook=URL`` posts ``{request_id, gateway_request_id,
  status: OK|ERROR, payload}`` there once the request ends, signed as fal signs
  (Ed25519 over request id, user id, timestamp and the body's SHA-256 hex, a line each; headers
  ``X-Fal-Webhook-*``), retried on a non-2xx answer; the public key is served as a JWKS
  at ``GET /.well-known/jwks.json``. :meth:`FalQueueServer.deliver` sends one by hand.

``Authorization: Key ...`` is required (401 otherwise). ``hold``/:meth:`release` keep
requests queued; :meth:`refuse_next` ends the next one refused; :meth:`expire` removes a
result and its media; ``inject()`` scripts 429s and 5xx (see :mod:`core.testing.loopback`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import io
import json
import re
import secrets
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from PIL import Image, UnidentifiedImageError

from core.testing.loopback import LoopbackService, Reply, Request, render_mp4
from core.testing.webhook_sender import Announcer

USER_ID = "stand-in-user"


def _enum(name: str, values: tuple[Any, ...]) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        if name in body and body[name] not in values:
            allowed = ", ".join(repr(v) for v in values)
            raise Unprocessable(name, f"Input should be {allowed}", "enum")

    return check


def _range(name: str, low: int, high: int) -> Callable[[dict[str, Any]], None]:
    def check(body: dict[str, Any]) -> None:
        value = body.get(name)
        if name in body and (not isinstance(value, int) or not low <= value <= high):
            raise Unprocessable(name, f"Input should be between {low} and {high}", "range")

    return check


@dataclass(frozen=True)
class App:
    checks: tuple[Callable[[dict[str, Any]], None], ...]
    seconds: Callable[[dict[str, Any]], int]


APPS: Mapping[str, App] = {
    "fal-ai/kling-video/v2.1/standard/image-to-video": App(
        (_enum("duration", ("5", "10")),), lambda b: int(b.get("duration", "5"))
    ),
    "fal-ai/minimax/hailuo-02/standard/image-to-video": App(
        (_enum("duration", ("6", "10")), _enum("resolution", ("512P", "768P"))),
        lambda b: int(b.get("duration", "6")),
    ),
    "fal-ai/wan-i2v": App(
        (
            _range("num_frames", 81, 100),
            _range("frames_per_second", 5, 24),
            _enum("resolution", ("480p", "720p")),
            _enum("aspect_ratio", ("auto", "16:9", "9:16", "1:1")),
        ),
        lambda b: round(b.get("num_frames", 81) / b.get("frames_per_second", 16)),
    ),
    "fal-ai/wan/v2.2-5b/image-to-video": App(  # the reference gives it Wan's inputs
        (
            _range("num_frames", 81, 100),
            _range("frames_per_second", 5, 24),
            _enum("resolution", ("480p", "720p")),
            _enum("aspect_ratio", ("auto", "16:9", "9:16", "1:1")),
        ),
        lambda b: round(b.get("num_frames", 81) / b.get("frames_per_second", 16)),
    ),
    "fal-ai/veo3.1/image-to-video": App(
        (
            _enum("duration", ("4s", "6s", "8s")),
            _enum("resolution", ("720p", "1080p", "4k")),
            _enum("aspect_ratio", ("auto", "16:9", "9:16")),
        ),
        lambda b: int(b.get("duration", "8s").removesuffix("s")),
    ),
    "fal-ai/bytedance/seedance/v1/pro/image-to-video": App(
        (
            _enum("duration", tuple(str(n) for n in range(2, 13))),
            _enum("resolution", ("480p", "720p", "1080p")),
        ),
        lambda b: int(b.get("duration", "5")),
    ),
}
_SUBMIT = re.compile(r"^/(?P<app>[\w.-]+/[\w.-]+(?:/[\w.-]+)*)$")
_REQUEST = re.compile(
    r"^/(?P<owner>[\w.-]+)/(?P<name>[\w.-]+)/requests/(?P<id>[a-f0-9-]+)(?P<tail>/status|/cancel)?$"
)
_CDN = re.compile(r"^/cdn/(?P<token>[\w-]+)/output\.mp4$")


class Unprocessable(Exception):
    def __init__(self, field: str, message: str, kind: str) -> None:
        super().__init__(message)
        detail = [{"loc": ["body", field], "msg": message, "type": kind}]
        self.reply = Reply.json(422, {"detail": detail})


@dataclass
class Job:
    id: str
    app: str
    seconds: int
    image: bytes
    created: float
    held: bool = False
    refusal: str | None = None
    expired: bool = False
    cancelled: bool = False
    webhook: str | None = None
    token: str = ""
    video: bytes | None = None


class FalQueueServer(LoopbackService):
    """fal's queue API on 127.0.0.1; see the module docstring."""

    download_route = _CDN.pattern

    def __init__(self, api_key: str, *, queue_seconds: float = 0.05, render_seconds: float = 0.2):
        super().__init__()
        self.api_key = api_key
        self.queue_seconds = queue_seconds
        self.render_seconds = render_seconds
        self.hold = False
        self.jobs: dict[str, Job] = {}
        self.submits: list[tuple[str, dict[str, Any]]] = []
        self._refusals: list[str] = []
        self.signing_key = Ed25519PrivateKey.generate()
        self.announcer = Announcer()

    def stop(self) -> None:
        self.announcer.stop()
        super().stop()

    @property
    def jwks_url(self) -> str:
        return f"{self.root_url}/.well-known/jwks.json"

    def deliver(
        self,
        request_id: str,
        *,
        url: str | None = None,
        key: Ed25519PrivateKey | None = None,
        timestamp: int | None = None,
        retries: int = 0,
    ) -> int:
        """Post the request's delivery now (to its webhook unless ``url`` is given), signed
        with ``key`` (default: the one the JWKS publishes); the receiver's status code."""
        with self.lock:
            job = self.jobs[request_id]
        try:
            result = self._result(job, True)
        except Unprocessable as exc:  # the model's error is what the delivery carries
            result = exc.reply
        ok = result.status == 200
        delivery: dict[str, Any] = {
            "request_id": job.id, "gateway_request_id": job.id,
            "status": "OK" if ok else "ERROR", "payload": json.loads(result.body),
        }  # fmt: skip
        if not ok:
            delivery["error"] = f"Invalid status code: {result.status}"
        body = json.dumps(delivery).encode()
        stamp = str(int(time.time()) if timestamp is None else timestamp)
        message = "\n".join((job.id, USER_ID, stamp, hashlib.sha256(body).hexdigest()))
        signature = (key or self.signing_key).sign(message.encode()).hex()
        headers = {"content-type": "application/json", "x-fal-webhook-request-id": job.id,
                   "x-fal-webhook-user-id": USER_ID, "x-fal-webhook-timestamp": stamp,
                   "x-fal-webhook-signature": signature}  # fmt: skip
        target = url or job.webhook
        assert target is not None, "the request has no webhook"
        return self.announcer.post(job.id, target, body, headers, retries)

    def _jwks(self) -> Reply:
        raw = self.signing_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        x = base64.urlsafe_b64encode(raw).decode().rstrip("=")
        key = {"kty": "OKP", "crv": "Ed25519", "x": x, "kid": "stand-in", "use": "sig"}
        return Reply.json(200, {"keys": [key]})

    def _done(self, job: Job) -> bool:
        elapsed = -1.0 if job.held else time.monotonic() - job.created
        return job.cancelled or elapsed >= self.queue_seconds + self.render_seconds

    @property
    def base_url(self) -> str:
        return self.root_url

    def refuse_next(self, message: str) -> None:
        """The next request ends with a ``content_policy_violation`` from the model."""
        self._refusals.append(message)

    @property
    def created(self) -> int:
        with self.lock:
            return len(self.jobs)

    @property
    def cancelled(self) -> int:
        """How many requests a ``PUT …/cancel`` stopped before they finished."""
        with self.lock:
            return sum(1 for job in self.jobs.values() if job.cancelled)

    def expire_all(self) -> None:
        with self.lock:
            for job in self.jobs.values():
                job.expired = True

    def storm(self, times: int, seconds: float) -> None:
        busy = {"detail": "Rate limit exceeded"}
        self.inject("*", r"^/", 429, times=times, body=busy, headers={"Retry-After": str(seconds)})

    def release(self) -> None:
        with self.lock:
            self.hold = False
            for job in self.jobs.values():
                if job.held:
                    job.held = False
                    job.created = time.monotonic() - self.render_seconds - self.queue_seconds

    def expire(self, request_id: str) -> None:
        with self.lock:
            self.jobs[request_id].expired = True

    # --- routes ------------------------------------------------------------------------

    def route(self, request: Request) -> Reply:
        if match := _CDN.match(request.path):
            return self._media(match["token"])
        if request.method == "GET" and request.path == "/.well-known/jwks.json":
            return self._jwks()
        if request.headers.get("authorization") != f"Key {self.api_key}":
            return Reply.json(401, {"detail": "Invalid API key"})
        try:
            match = _REQUEST.match(request.path)
            if match is not None:
                app = f"{match['owner']}/{match['name']}"
                return self._on_request(request.method, app, match["id"], match["tail"])
            if request.method == "POST" and (match := _SUBMIT.match(request.path)):
                return self._submit(match["app"], request.json(), request.query.get("fal_webhook"))
        except Unprocessable as exc:
            return exc.reply
        return Reply.json(404, {"detail": f"Application not found: {request.path}"})

    def _submit(self, app_id: str, body: Any, webhook: str | None = None) -> Reply:
        app = APPS.get(app_id)
        if app is None:
            return Reply.json(404, {"detail": f"Application '{app_id}' not found"})
        if not isinstance(body, dict):
            raise Unprocessable("body", "Input should be a valid dictionary", "dict_type")
        if not isinstance(body.get("prompt"), str) or not body["prompt"].strip():
            raise Unprocessable("prompt", "Field required", "missing")
        image = _image(body.get("image_url"))
        for check in app.checks:
            check(body)
        job = Job(secrets.token_hex(8) + "-" + secrets.token_hex(4), app_id, app.seconds(body),
                  image, time.monotonic(), held=self.hold, webhook=webhook)  # fmt: skip
        with self.lock:
            if self._refusals:
                job.refusal = self._refusals.pop(0)
            self.jobs[job.id] = job
            self.submits.append((app_id, body))
        if webhook:
            self.announcer.when_done(
                job.id, lambda: self._done(job), lambda: self.deliver(job.id, retries=3)
            )
        owner_app = "/".join(app_id.split("/")[:2])
        base = f"{self.root_url}/{owner_app}/requests/{job.id}"
        return Reply.json(200, {
            "request_id": job.id, "response_url": base, "status_url": f"{base}/status",
            "cancel_url": f"{base}/cancel", "status": "IN_QUEUE", "queue_position": 0,
        })  # fmt: skip

    def _on_request(self, method: str, app: str, request_id: str, tail: str | None) -> Reply:
        with self.lock:
            job = self.jobs.get(request_id)
        if job is None or not job.app.startswith(app):
            return Reply.json(404, {"detail": "Request not found"})
        elapsed = -1.0 if job.held else time.monotonic() - job.created
        done = self._done(job)
        if tail == "/cancel" and method == "PUT":
            if done:
                return Reply.json(400, {"status": "ALREADY_COMPLETED"})
            with self.lock:
                job.cancelled = True
            return Reply.json(202, {"status": "CANCELLATION_REQUESTED"})
        if tail == "/status" and method == "GET" and job.cancelled:
            body = {"status": "COMPLETED", "logs": None, "error": "Request was cancelled",
                    "error_type": "request_cancelled"}  # fmt: skip
            return Reply.json(200, body)
        if tail == "/status" and method == "GET":
            if not done and elapsed < self.queue_seconds:
                return Reply.json(202, {"status": "IN_QUEUE", "queue_position": 1})
            if not done:
                return Reply.json(202, {"status": "IN_PROGRESS", "logs": []})
            error = job.refusal and "Invalid status code: 422"
            body = {"status": "COMPLETED", "logs": None, "error": error, "error_type": None}
            return Reply.json(200, {**body, "metrics": {"inference_time": 1.0}})
        if tail is None and method == "GET":
            return self._result(job, done)
        return Reply.json(405, {"detail": "Method not allowed"})

    def _result(self, job: Job, done: bool) -> Reply:
        if not done:
            return Reply.json(400, {"detail": "Request is still in progress"})
        if job.cancelled:
            return Reply.json(400, {"detail": "Request was cancelled",
                                    "error_type": "request_cancelled"})  # fmt: skip
        if job.expired:
            return Reply.json(404, {"detail": "Request not found"})
        if job.refusal is not None:
            raise Unprocessable("prompt", job.refusal, "content_policy_violation")
        with self.lock:
            if not job.token:
                job.token = secrets.token_urlsafe(12)
        url = f"{self.root_url}/cdn/{job.token}/output.mp4"
        video = {"url": url, "content_type": "video/mp4", "file_name": "output.mp4"}
        return Reply.json(200, {"video": video})

    def _media(self, token: str) -> Reply:
        with self.lock:
            job = next((j for j in self.jobs.values() if j.token == token), None)
        if job is None or job.expired:
            return Reply(404, b"Not Found", {"content-type": "text/plain"})
        if job.video is None:
            with Image.open(io.BytesIO(job.image)) as still:
                width, height = (n - n % 2 for n in still.size)
            job.video = render_mp4(width, height, job.seconds, job.image, token)
        return Reply(200, job.video, {"content-type": "video/mp4"})


def _image(value: Any) -> bytes:
    """An ``image_url``: a data URI is decoded; an http(s) URL cannot be fetched here."""
    if not isinstance(value, str):
        raise Unprocessable("image_url", "Field required", "missing")
    match = re.fullmatch(r"data:(image/(?:png|jpeg|webp));base64,(.+)", value, re.S)
    if match is None:
        raise Unprocessable("image_url", "Only data URIs are served by this stand-in", "url")
    try:
        data = base64.b64decode(match[2], validate=True)
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (binascii.Error, UnidentifiedImageError, OSError):
        raise Unprocessable("image_url", "Could not read the image", "image_load_error") from None
    return data
