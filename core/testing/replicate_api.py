"""A loopback stand-in for Replicate's predictions API with image-to-video models.

It follows ``shared/reference/replicate.md`` (replicate-python, the OpenAPI-generated
client and Replicate's docs):

- ``POST /v1/files`` (multipart ``content``, ``filename``, ``type``) stores a still and
  answers the file object with ``urls.get``; inputs may carry that URL or a data URL.
- ``POST /v1/models/{owner}/{name}/predictions`` (``{input}``) and ``POST /v1/predictions``
  (``{version, input}``) validate the model's input (its image field, integer
  ``duration`` enums, ``resolution``/``mode`` enums, Wan's frame counts) and answer 201
  with a Prediction; a bad input is a 422 problem with ``invalid_fields``, an unknown
  model a 404.
- ``GET /v1/predictions/{id}``: ``starting`` → ``processing`` → ``succeeded`` (``output``
  is a delivery URL, ``metrics.predict_time``) or ``failed`` (``error``); after
  :meth:`expire`, ``output`` is null and ``data_removed`` true, and the URL is a 404.
- ``POST /v1/predictions/{id}/cancel`` → the Prediction, ``canceled`` unless finished.
- ``GET /deliveries/{token}/output.mp4``: a real MP4 of the still's shape, no key.
- Webhooks: a create with ``webhook`` (and ``webhook_events_filter`` including
  ``completed``, or none) posts the finished Prediction there, signed the Standard Webhooks
  way with the account's secret (``GET /v1/webhooks/default/secret`` → ``{"key":
  "whsec_..."}``), retried on a non-2xx answer; :meth:`ReplicateServer.deliver` sends one
  by hand (forged, stale, replayed). Only ``completed`` deliveries are made here.

``Authorization: Bearer`` (or ``Token``) is required: a 401 problem otherwise.
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
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import python_multipart
from PIL import Image, UnidentifiedImageError

from core.testing.loopback import LoopbackService, Reply, Request, render_mp4
from core.testing.videos_api.server import new_webhook_secret, webhook_signature
from core.testing.webhook_sender import Announcer

EVENTS = ("start", "output", "logs", "completed")
FINISHED = ("succeeded", "failed", "canceled")


@dataclass(frozen=True)
class ModelRules:
    image_field: str
    enums: Mapping[str, tuple[Any, ...]] = field(default_factory=dict)
    default_seconds: int = 5


MODELS: Mapping[str, ModelRules] = {
    "kwaivgi/kling-v2.1": ModelRules(
        "start_image", {"duration": (5, 10), "mode": ("standard", "pro")}
    ),
    "google/veo-3.1": ModelRules(
        "image",
        {"duration": (4, 6, 8), "aspect_ratio": ("16:9", "9:16"), "resolution": ("720p", "1080p")},
        default_seconds=8,
    ),
    "minimax/hailuo-2.3": ModelRules(
        "first_frame_image", {"duration": (6, 10), "resolution": ("768p", "1080p")}, 6
    ),
    "wan-video/wan-2.2-i2v-fast": ModelRules(
        "image",
        {
            "num_frames": tuple(range(81, 122)),
            "frames_per_second": tuple(range(5, 31)),
            "resolution": ("480p", "720p"),
        },
    ),
    "bytedance/seedance-1-pro": ModelRules(
        "image", {"duration": tuple(range(2, 13)), "resolution": ("480p", "720p", "1080p")}
    ),
}
_ID = r"[a-z0-9]+"
_CREATE_ON_MODEL = re.compile(r"^/v1/models/(?P<model>[\w.-]+/[\w.-]+)/predictions$")
_PREDICTION = re.compile(rf"^/v1/predictions/(?P<id>{_ID})(?P<cancel>/cancel)?$")
_FILE = re.compile(rf"^/v1/files/(?P<id>{_ID})$")
_DELIVERY = re.compile(r"^/deliveries/(?P<token>[\w-]+)/output\.mp4$")


class Problem(Exception):
    def __init__(self, status: int, title: str, detail: str, field: str | None = None) -> None:
        super().__init__(detail)
        body: dict[str, Any] = {"title": title, "detail": detail, "status": status}
        if field is not None:
            body["invalid_fields"] = [{"type": "enum", "field": field, "description": detail}]
        self.reply = Reply.json(status, body, {"content-type": "application/problem+json"})


@dataclass
class Prediction:
    id: str
    model: str
    input: dict[str, Any]
    seconds: int
    image: bytes
    created: float = field(default_factory=time.monotonic)
    held: bool = False
    error: str | None = None
    canceled: bool = False
    data_removed: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    video: bytes | None = None
    webhook: str | None = None


class ReplicateServer(LoopbackService):
    """Replicate's predictions API on 127.0.0.1; see the module docstring."""

    download_route = _DELIVERY.pattern

    def __init__(self, api_key: str, *, start_seconds: float = 0.05, render_seconds: float = 0.2):
        super().__init__()
        self.api_key = api_key
        self.start_seconds = start_seconds
        self.render_seconds = render_seconds
        self.hold = False
        self.predictions: dict[str, Prediction] = {}
        self.files: dict[str, bytes] = {}
        self.creates: list[dict[str, Any]] = []
        self._failures: list[str] = []
        self.webhook_secret = new_webhook_secret()
        self.announcer = Announcer()

    def stop(self) -> None:
        self.announcer.stop()
        super().stop()

    def deliver(
        self,
        prediction_id: str,
        *,
        url: str | None = None,
        secret: str | None = None,
        webhook_id: str | None = None,
        timestamp: int | None = None,
        retries: int = 0,
    ) -> int:
        """Post the prediction's delivery now (to its webhook unless ``url`` is given),
        signed with ``secret`` (default: the account's); the receiver's status code."""
        with self.lock:
            prediction = self.predictions[prediction_id]
            body = json.dumps(self._json(prediction)).encode()
        target = url or prediction.webhook
        assert target is not None, "the prediction has no webhook"
        webhook_id = webhook_id or f"msg_{secrets.token_hex(12)}"  # the same for every retry
        stamp = int(time.time()) if timestamp is None else timestamp
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id,
            "webhook-timestamp": str(stamp),
            "webhook-signature": webhook_signature(
                secret or self.webhook_secret, webhook_id, stamp, body
            ),
        }
        return self.announcer.post(prediction_id, target, body, headers, retries)

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    def fail_next(self, error: str) -> None:
        self._failures.append(error)

    @property
    def created(self) -> int:
        with self.lock:
            return len(self.predictions)

    @property
    def cancelled(self) -> int:
        with self.lock:
            return sum(1 for p in self.predictions.values() if p.canceled)

    def refuse_next(self, reason: str) -> None:
        """The next prediction fails as flagged by the safety checker (E005)."""
        self.fail_next(f"The input or output was flagged as sensitive: {reason} (E005)")

    def expire_all(self) -> None:
        with self.lock:
            for prediction in self.predictions.values():
                prediction.data_removed = True

    def storm(self, times: int, seconds: float) -> None:
        throttled = {"detail": "Request was throttled. Your rate limit resets in ~1s."}
        self.inject("*", r"^/v1/", 429, times=times, body=throttled,
                    headers={"Retry-After": str(seconds)})  # fmt: skip

    def release(self) -> None:
        with self.lock:
            self.hold = False
            for prediction in self.predictions.values():
                if prediction.held:
                    prediction.held = False
                    prediction.created = time.monotonic() - self.render_seconds

    def expire(self, prediction_id: str) -> None:
        """As an hour after the end: the output is removed."""
        with self.lock:
            self.predictions[prediction_id].data_removed = True

    # --- routes ------------------------------------------------------------------------

    def route(self, request: Request) -> Reply:
        try:
            if match := _DELIVERY.match(request.path):
                return self._delivery(match["token"])
            auth = request.headers.get("authorization", "")
            if auth not in (f"Bearer {self.api_key}", f"Token {self.api_key}"):
                raise Problem(
                    401, "Unauthenticated", "You did not pass a valid authentication token"
                )
            if request.method == "GET" and request.path == "/v1/webhooks/default/secret":
                return Reply.json(200, {"key": self.webhook_secret})
            if request.method == "POST" and request.path == "/v1/files":
                return self._upload(request)
            if request.method == "POST" and (match := _CREATE_ON_MODEL.match(request.path)):
                return self._create(match["model"], request.json())
            if request.method == "POST" and request.path == "/v1/predictions":
                body = request.json() if isinstance(request.json(), dict) else {}
                version = str(body.get("version") or "")
                return self._create(version.partition(":")[0], body)
            if match := _PREDICTION.match(request.path):
                return self._prediction(match["id"], cancel=bool(match["cancel"]))
            raise Problem(404, "Not found", f"{request.method} {request.path} is not a route")
        except Problem as exc:
            return exc.reply

    def _upload(self, request: Request) -> Reply:
        parts: dict[str, bytes] = {}

        def on_field(item: Any) -> None:
            parts[item.field_name.decode()] = item.value or b""

        def on_file(item: Any) -> None:
            item.file_object.seek(0)
            parts[item.field_name.decode()] = item.file_object.read()

        headers = {"Content-Type": request.headers.get("content-type", "").encode(),
                   "Content-Length": str(len(request.body)).encode()}  # fmt: skip
        try:
            python_multipart.parse_form(headers, io.BytesIO(request.body), on_field, on_file)
        except Exception:
            raise Problem(400, "Bad request", "the body is not multipart/form-data") from None
        if "content" not in parts:
            raise Problem(422, "Input validation failed", "content is required", "content")
        file_id = secrets.token_hex(10)
        content = parts["content"]
        self.files[file_id] = content
        url = f"{self.base_url}/files/{file_id}"
        digest = hashlib.sha256(content).hexdigest()
        return Reply.json(201, {
            "id": file_id, "name": parts.get("filename", b"").decode() or "upload",
            "size": len(content),
            "content_type": parts.get("type", b"").decode() or "application/octet-stream",
            "etag": hashlib.md5(content).hexdigest(), "checksums": {"sha256": digest},
            "metadata": {}, "created_at": "2026-12-01T00:00:00.000000Z",
            "expires_at": "2026-12-02T00:00:00.000000Z", "urls": {"get": url},
        })  # fmt: skip

    def _create(self, model: str, body: Any) -> Reply:
        rules = MODELS.get(model)
        if rules is None:
            raise Problem(404, "Model not found", f"The model {model} does not exist")
        payload = body.get("input") if isinstance(body, dict) else None
        if not isinstance(payload, dict):
            raise Problem(422, "Input validation failed", "input is required", "input")
        image = self._image(payload.get(rules.image_field), f"input.{rules.image_field}")
        for name, allowed in rules.enums.items():
            if name in payload and payload[name] not in allowed:
                raise Problem(
                    422, "Input validation failed",
                    f"- input.{name}: {name} must be one of the following: {list(allowed)[:12]}",
                    f"input.{name}",
                )  # fmt: skip
        seconds = int(payload.get("duration") or 0) or round(
            payload.get("num_frames", 81) / payload.get("frames_per_second", 16)
        )
        webhook, events = body.get("webhook"), body.get("webhook_events_filter", list(EVENTS))
        if webhook is not None and not (isinstance(webhook, str) and webhook.startswith("http")):
            raise Problem(422, "Input validation failed", "webhook must be a URL", "webhook")
        if not isinstance(events, list) or not set(events) <= set(EVENTS):
            raise Problem(
                422, "Input validation failed",
                f"webhook_events_filter items must be one of {list(EVENTS)}",
                "webhook_events_filter",
            )  # fmt: skip
        prediction = Prediction(secrets.token_hex(13), model, payload, seconds, image,
                                held=self.hold, webhook=webhook)  # fmt: skip
        with self.lock:
            if self._failures:
                prediction.error = self._failures.pop(0)
            self.predictions[prediction.id] = prediction
            self.creates.append(body)
        if webhook and "completed" in events:
            self.announcer.when_done(
                prediction.id,
                lambda: self._state(prediction) in FINISHED,
                lambda: self.deliver(prediction.id, retries=3),
            )
        return Reply.json(201, self._json(prediction))

    def _image(self, value: Any, where: str) -> bytes:
        if not isinstance(value, str):
            raise Problem(422, "Input validation failed", f"- {where}: required", where)
        if value.startswith(f"{self.base_url}/files/"):
            data = self.files.get(value.rsplit("/", 1)[-1])
        elif match := re.fullmatch(r"data:image/[a-z]+;base64,(.+)", value, re.S):
            try:
                data = base64.b64decode(match[1], validate=True)
            except binascii.Error:
                data = None
        else:
            data = None
        try:
            if data is None:
                raise OSError
            with Image.open(io.BytesIO(data)) as image:
                image.verify()
        except (OSError, UnidentifiedImageError):
            raise Problem(
                422, "Input validation failed", f"- {where}: not an image", where
            ) from None
        return data

    def _prediction(self, prediction_id: str, *, cancel: bool) -> Reply:
        with self.lock:
            prediction = self.predictions.get(prediction_id)
            if prediction is None:
                raise Problem(404, "Not found", "Prediction not found")
            if cancel and self._state(prediction) in ("starting", "processing"):
                prediction.canceled = True
            return Reply.json(200, self._json(prediction))

    def _state(self, prediction: Prediction) -> str:
        if prediction.canceled:
            return "canceled"
        elapsed = -1.0 if prediction.held else time.monotonic() - prediction.created
        if elapsed < self.start_seconds:
            return "starting"
        if elapsed < self.start_seconds + self.render_seconds:
            return "processing"
        return "failed" if prediction.error else "succeeded"

    def _json(self, prediction: Prediction) -> dict[str, Any]:
        state = self._state(prediction)
        output = None
        if state == "succeeded" and not prediction.data_removed:
            output = f"{self.root_url}/deliveries/{prediction.token}/output.mp4"
        return {
            "id": prediction.id, "model": prediction.model, "version": "hidden",
            "input": prediction.input, "logs": "", "output": output,
            "error": prediction.error if state == "failed" else None, "status": state,
            "data_removed": prediction.data_removed,
            "created_at": "2026-12-01T00:00:00.000000Z",
            "metrics": {"predict_time": 1.0} if state in ("succeeded", "failed") else {},
            "urls": {"get": f"{self.base_url}/predictions/{prediction.id}",
                     "cancel": f"{self.base_url}/predictions/{prediction.id}/cancel"},
        }  # fmt: skip

    def _delivery(self, token: str) -> Reply:
        with self.lock:
            found = next((p for p in self.predictions.values() if p.token == token), None)
        if found is None or found.data_removed or self._state(found) != "succeeded":
            return Reply(404, b"Not Found", {"content-type": "text/plain"})
        if found.video is None:
            with Image.open(io.BytesIO(found.image)) as still:
                width, height = (n - n % 2 for n in still.size)
            found.video = render_mp4(width, height, found.seconds, found.image, token)
        return Reply(200, found.video, {"content-type": "video/mp4"})
