"""A loopback HTTP server that speaks the OpenAI Videos API, for tests.

reelvault's own suite runs its sora backend against this, and plugin authors can run
theirs against it too: it is a real HTTP server on 127.0.0.1 with the API's routes,
multipart parsing, JSON shapes and error bodies, so the code under test does exactly
what it would do against a provider, minus the network and the bill::

    from core.testing.videos_api import VideosAPIServer

    with VideosAPIServer(api_key="sk-test") as server:
        client = OpenAI(api_key="sk-test", base_url=server.base_url)
        video = client.videos.create_and_poll(prompt="a harbour at dawn", seconds="4")

What it does, per the API's reference (``shared/reference/openai-videos-api.md``):

- ``POST /videos`` (multipart, urlencoded or JSON) validates ``prompt``, ``model``,
  ``seconds`` (strings ``"4"``, ``"8"``, ``"12"``; an integer is a 400), ``size`` per
  model, and ``input_reference`` (JPEG, PNG or WebP of exactly ``size``).
- Jobs move ``queued`` → ``in_progress`` → ``completed`` over ``render_seconds`` with a
  rising ``progress``; ``GET /videos/{id}`` answers with an ``openai-poll-after-ms`` hint.
- ``GET /videos/{id}/content?variant=video|thumbnail|spritesheet`` serves a real H.264 MP4
  of the job's size and length (its first frame is the input still), a WebP thumbnail
  and a JPEG spritesheet; optionally through a redirect, as the service may.
- Remix, edits and extensions (stitched ``seconds``), ``GET /videos`` with cursor
  pagination, ``DELETE``, characters, and Azure's ``/openai/v1`` path with ``api-version``.
- Outputs expire ``ttl_seconds`` after completion (``expire()`` forces it).
- Webhooks: ``video.completed`` / ``video.failed`` delivered to ``webhook_url``, signed the
  Standard Webhooks way with ``webhook_secret``; ``deliver()`` sends hand-made (forged,
  stale, replayed) deliveries.

Faults are scripted: ``inject()`` answers a route with an error (429 with
``Retry-After``, 5xx, before or after doing the work) or cuts a download short;
``fail_next()`` makes the next job fail (a moderation refusal, say); ``hold`` keeps jobs
running until ``release()``; ``max_running`` answers creates with 429 "Too many running
tasks" like Azure; ``retired`` answers every route like a shut-down endpoint. Every
request is recorded in ``requests`` (never its credentials).
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import secrets
import socket
import threading
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import httpx
import numpy as np
from PIL import Image, UnidentifiedImageError
from python_multipart import create_form_parser

from core.remote.webhooks import sign

MODELS: Mapping[str, tuple[str, ...]] = {
    "sora-2": ("720x1280", "1280x720"),
    "sora-2-2025-10-06": ("720x1280", "1280x720"),
    "sora-2-2025-12-08": ("720x1280", "1280x720"),
    "sora-2-pro": ("720x1280", "1280x720", "1024x1792", "1792x1024"),
    "sora-2-pro-2025-10-06": ("720x1280", "1280x720", "1024x1792", "1792x1024"),
}
SECONDS = ("4", "8", "12")
EXTENSION_SECONDS = ("4", "8", "12", "16", "20")
MAX_EXTENSIONS = 6
MAX_TOTAL_SECONDS = 120
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")
VARIANTS = {"video": "video/mp4", "thumbnail": "image/webp", "spritesheet": "image/jpeg"}
FPS = 4
_ID = r"[A-Za-z0-9_-]+"
ROUTES: tuple[tuple[str, str, re.Pattern[str]], ...] = tuple(
    (method, template, re.compile("^" + template.replace("{id}", f"(?P<id>{_ID})") + "$"))
    for method, template in (
        ("POST", "/videos"),
        ("GET", "/videos"),
        ("POST", "/videos/edits"),
        ("POST", "/videos/extensions"),
        ("POST", "/videos/characters"),
        ("GET", "/videos/characters/{id}"),
        ("GET", "/videos/{id}"),
        ("DELETE", "/videos/{id}"),
        ("GET", "/videos/{id}/content"),
        ("POST", "/videos/{id}/remix"),
    )
)


class ApiError(Exception):
    """An error answer in the API's shape."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        code: str | None = None,
        param: str | None = None,
        kind: str = "invalid_request_error",
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = {"error": {"message": message, "type": kind, "param": param, "code": code}}
        self.headers = dict(headers or {})


@dataclass
class Fault:
    """A scripted answer for the next ``times`` requests to one route.

    ``when="before"`` answers instead of doing the work (a rate limiter, a crashed
    front end); ``"after"`` does the work and then answers with the error (the job was
    made but the answer was lost). ``drop_after`` sends the real answer but cuts the
    connection after that many body bytes.
    """

    method: str
    route: str
    status: int = 500
    times: int = 1
    headers: dict[str, str] = field(default_factory=dict)
    message: str | None = None
    code: str | None = None
    when: str = "before"
    drop_after: int | None = None


@dataclass
class RecordedRequest:
    method: str
    route: str | None
    path: str
    query: dict[str, str]
    fields: dict[str, Any]
    files: dict[str, int]  # upload sizes by field name
    status: int = 0
    authorized: bool = False
    uploads: dict[str, bytes] = field(default_factory=dict)  # the uploaded bytes themselves


@dataclass
class _Video:
    id: str
    model: str
    prompt: str
    seconds: str
    size: str
    created_at: int
    started: float
    ready_at: float | None
    input_reference: bytes | None = None
    remixed_from: str | None = None
    base_video: str | None = None  # edits and extensions start from this one
    extensions: int = 0
    outcome: dict[str, str] | None = None
    status: str = "queued"
    progress: int = 0
    completed_at: int | None = None
    expires_at: int | None = None
    error: dict[str, str] | None = None
    deleted: bool = False
    announced: bool = False
    content: dict[str, bytes] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "object": "video",
            "created_at": self.created_at,
            "completed_at": self.completed_at,
            "expires_at": self.expires_at,
            "model": self.model,
            "status": self.status,
            "progress": self.progress,
            "prompt": self.prompt,
            "remixed_from_video_id": self.remixed_from,
            "seconds": self.seconds,
            "size": self.size,
            "error": self.error,
        }

    @property
    def final(self) -> bool:
        return self.status in ("completed", "failed")


@dataclass(frozen=True)
class WebhookDelivery:
    webhook_id: str
    type: str
    video_id: str
    status: int | None


class _HTTPServer(ThreadingHTTPServer):
    # A provider takes hundreds of connections at once; the stdlib default backlog of 5
    # would reset a burst of concurrent clients before they were ever served.
    request_queue_size = 1024
    daemon_threads = True


class VideosAPIServer:
    """The Videos API on 127.0.0.1; use as a context manager or call start()/stop()."""

    def __init__(
        self,
        *,
        api_key: str = "sk-test-videos-api",
        render_seconds: float = 0.2,
        poll_after_ms: int | None = 20,
        ttl_seconds: int = 3600,
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
        max_running: int | None = None,
        redirect_content: bool = False,
        port: int = 0,
    ) -> None:
        self.api_key = api_key
        self.render_seconds = render_seconds
        self.poll_after_ms = poll_after_ms
        self.ttl_seconds = ttl_seconds
        self.webhook_url = webhook_url
        self.webhook_secret = webhook_secret
        self.max_running = max_running
        self.redirect_content = redirect_content
        self.retired = False
        """Answer every route like a shut-down endpoint (404 ``Invalid URL``)."""
        self.hold = False
        """New jobs stay ``in_progress`` until :meth:`release`."""
        self.requests: list[RecordedRequest] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._videos: dict[str, _Video] = {}
        self._characters: dict[str, dict[str, Any]] = {}
        self._faults: list[Fault] = []
        self._outcomes: list[dict[str, str]] = []
        self._downloads: dict[str, tuple[str, str]] = {}
        self._lock = threading.RLock()
        self._render_lock = threading.Lock()
        self._stop = threading.Event()
        self._httpd = _HTTPServer(("127.0.0.1", port), _handler(self))
        self._threads: list[threading.Thread] = []

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._httpd.server_address[1])

    @property
    def root_url(self) -> str:
        """The server itself: an Azure-style profile's base URL (it adds ``/openai/v1``)."""
        return f"http://127.0.0.1:{self.port}"

    @property
    def base_url(self) -> str:
        """What ``OPENAI_BASE_URL`` would be."""
        return f"{self.root_url}/v1"

    def start(self) -> VideosAPIServer:
        self._threads = [
            threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True),
            threading.Thread(target=self._tick, daemon=True),
        ]
        for thread in self._threads:
            thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._httpd.shutdown()
        self._httpd.server_close()
        for thread in self._threads:
            thread.join(timeout=10)

    def __enter__(self) -> VideosAPIServer:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- scripting -----------------------------------------------------------------------

    def inject(self, method: str, route: str, status: int = 500, **options: Any) -> Fault:
        """Script a fault for a route template such as ``"/videos/{id}/content"``."""
        if not any(m == method and t == route for m, t, _ in ROUTES):
            raise ValueError(f"no route {method} {route}")
        fault = Fault(method, route, status, **options)
        with self._lock:
            self._faults.append(fault)
        return fault

    def fail_next(self, code: str, message: str) -> None:
        """The next job created fails at the end with this ``error``."""
        with self._lock:
            self._outcomes.append({"code": code, "message": message})

    def release(self, video_id: str | None = None) -> None:
        """Let held jobs (all, or one) finish after their render time from now."""
        with self._lock:
            for video in self._videos.values():
                if video.ready_at is None and video_id in (None, video.id):
                    video.started = time.monotonic()
                    video.ready_at = video.started + self.render_seconds

    def expire(self, video_id: str) -> None:
        """Make a job's outputs expire now, as they do about an hour after completion."""
        with self._lock:
            video = self._videos[video_id]
            video.expires_at = int(time.time()) - 1
            video.content.clear()

    def video(self, video_id: str) -> dict[str, Any]:
        with self._lock:
            video = self._videos[video_id]
            self._advance(video)
            return video.to_json()

    def video_ids(self) -> list[str]:
        with self._lock:
            return [v.id for v in self._videos.values() if not v.deleted]

    def count(self, method: str, route: str) -> int:
        """How many requests reached a route (faults and errors included)."""
        return sum(1 for r in self.requests if r.method == method and r.route == route)

    def wait_for(self, predicate: Any, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the condition did not come true in time")
            time.sleep(0.01)

    def deliver(
        self,
        video_id: str,
        event_type: str | None = None,
        *,
        url: str | None = None,
        secret: str | None = None,
        timestamp: int | None = None,
        webhook_id: str | None = None,
        body: bytes | None = None,
    ) -> int:
        """Send one webhook delivery now and return the receiver's status code.

        Overrides make forged (another ``secret``), stale (an old ``timestamp``) and
        replayed (a repeated ``webhook_id``) deliveries.
        """
        with self._lock:
            status = self._videos[video_id].status
        kind = event_type or ("video.failed" if status == "failed" else "video.completed")
        return self._send_webhook(
            video_id, kind, url=url, secret=secret, timestamp=timestamp,
            webhook_id=webhook_id, body=body,
        )  # fmt: skip

    # --- job progress and webhooks -------------------------------------------------------

    def _advance(self, video: _Video) -> None:
        """Bring a job's status up to now (call with the lock held)."""
        if video.final:
            return
        now = time.monotonic()
        if video.ready_at is None:  # held: runs on, never quite finishes
            elapsed = now - video.started
            video.status = "in_progress"
            video.progress = min(90, 10 + int(elapsed * 20))
            return
        span = max(video.ready_at - video.started, 1e-6)
        fraction = (now - video.started) / span
        if fraction < 1:
            video.status = "queued" if fraction < 0.1 else "in_progress"
            video.progress = int(fraction * 100)
            return
        video.completed_at = int(time.time())
        if video.outcome is not None:
            video.status = "failed"
            video.error = dict(video.outcome)
        else:
            video.status = "completed"
            video.progress = 100
            video.expires_at = video.completed_at + self.ttl_seconds

    def _tick(self) -> None:
        while not self._stop.wait(0.01):
            announce = []
            with self._lock:
                for video in self._videos.values():
                    self._advance(video)
                    if video.final and not video.announced:
                        video.announced = True
                        if self.webhook_url and self.webhook_secret:
                            announce.append(video)
            for video in announce:
                kind = "video.failed" if video.status == "failed" else "video.completed"
                self._send_webhook(video.id, kind, retries=3)

    def _send_webhook(
        self,
        video_id: str,
        kind: str,
        *,
        url: str | None = None,
        secret: str | None = None,
        timestamp: int | None = None,
        webhook_id: str | None = None,
        body: bytes | None = None,
        retries: int = 0,
    ) -> int:
        target = url or self.webhook_url
        key = secret or self.webhook_secret
        if not target or not key:
            raise ValueError("no webhook_url or webhook_secret to deliver with")
        webhook_id = webhook_id or f"wh_{secrets.token_hex(16)}"
        event = {
            "id": f"evt_{secrets.token_hex(16)}",
            "object": "event",
            "created_at": int(time.time()),
            "type": kind,
            "data": {"id": video_id},
        }
        payload = body if body is not None else json.dumps(event).encode()
        status: int | None = None
        for attempt in range(retries + 1):
            stamp = timestamp if timestamp is not None else int(time.time())
            headers = {
                "content-type": "application/json",
                "user-agent": "OpenAI/1.0 (+https://platform.openai.com/docs/webhooks)",
                "webhook-id": webhook_id,
                "webhook-timestamp": str(stamp),
                "webhook-signature": sign(key, webhook_id, stamp, payload),
            }
            try:
                status = httpx.post(
                    target, content=payload, headers=headers, timeout=10
                ).status_code
            except httpx.HTTPError:
                status = None
            if status is not None and 200 <= status < 300:
                break
            if attempt < retries:
                time.sleep(0.05 * 2**attempt)
        self.webhook_deliveries.append(WebhookDelivery(webhook_id, kind, video_id, status))
        return status or 0

    # --- request handling ----------------------------------------------------------------

    def handle(self, request: _Request) -> _Response:
        """Route one request; every answer is JSON in the API's shape or content bytes."""
        record = RecordedRequest(request.method, None, request.path, request.query, {}, {})
        self.requests.append(record)
        try:
            response = self._dispatch(request, record)
        except ApiError as exc:
            response = _Response.json(exc.status, exc.body, exc.headers)
        record.status = response.status
        return response

    def _dispatch(self, request: _Request, record: RecordedRequest) -> _Response:
        if request.path.startswith("/files/"):
            return self._redirected_content(request.path.removeprefix("/files/"))
        path = _api_path(request)
        found = _route(request.method, path) if path is not None else None
        if found is None or self.retired:
            raise ApiError(404, f"Invalid URL ({request.method} {request.path})")
        template, match_id = found
        record.route = template
        record.authorized = self._authorized(request)
        fault = self._take_fault(request.method, template)
        if fault is not None and fault.when == "before" and fault.drop_after is None:
            raise _fault_error(fault)
        if not record.authorized:
            raise self._auth_error(request)
        form = _parse_body(request)
        record.fields = {k: v for k, v in form.fields.items()}
        record.files = {k: len(v.data) for k, v in form.files.items()}
        record.uploads = {k: v.data for k, v in form.files.items()}
        response = self._answer(request.method, template, match_id, request.query, form)
        if fault is not None and fault.drop_after is not None:
            response.drop_after = fault.drop_after
        elif fault is not None:
            raise _fault_error(fault)
        return response

    def _answer(
        self, method: str, template: str, video_id: str | None, query: dict[str, str], form: _Form
    ) -> _Response:
        if (method, template) == ("POST", "/videos"):
            return self._create(form)
        if (method, template) == ("GET", "/videos"):
            return self._list(query)
        if (method, template) == ("POST", "/videos/edits"):
            return self._derive(form, "edit")
        if (method, template) == ("POST", "/videos/extensions"):
            return self._derive(form, "extension")
        if (method, template) == ("POST", "/videos/characters"):
            return self._create_character(form)
        if (method, template) == ("GET", "/videos/characters/{id}"):
            return self._character(str(video_id))
        assert video_id is not None
        if (method, template) == ("GET", "/videos/{id}"):
            headers = {}
            if self.poll_after_ms is not None:
                headers["openai-poll-after-ms"] = str(self.poll_after_ms)
            return _Response.json(200, self.video_or_404(video_id).to_json(), headers)
        if (method, template) == ("DELETE", "/videos/{id}"):
            return self._delete(video_id)
        if (method, template) == ("POST", "/videos/{id}/remix"):
            return self._derive(form, "remix", video_id)
        return self._content(video_id, query)

    def _authorized(self, request: _Request) -> bool:
        given = _given_key(request.headers)
        return given is not None and secrets.compare_digest(given, self.api_key)

    def _auth_error(self, request: _Request) -> ApiError:
        given = _given_key(request.headers)
        if not given:
            return ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        masked = given[:3] + "*" * max(len(given) - 7, 4) + given[-4:]
        return ApiError(
            401,
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    def _take_fault(self, method: str, template: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method == method and fault.route == template and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def video_or_404(self, video_id: str) -> _Video:
        with self._lock:
            video = self._videos.get(video_id)
            if video is None or video.deleted:
                raise ApiError(404, f"Video with id '{video_id}' not found.", param="video_id")
            self._advance(video)
            return video

    def _create(self, form: _Form) -> _Response:
        model = form.text("model") or "sora-2"
        if model not in MODELS:
            allowed = ", ".join(f"'{m}'" for m in MODELS)
            raise ApiError(
                400,
                f"Invalid value: '{model}'. Supported values are: {allowed}.",
                code="invalid_value",
                param="model",
            )
        prompt = _prompt(form)
        seconds = _seconds(form, SECONDS, "4")
        size = form.text("size") or "720x1280"
        if size not in MODELS[model]:
            raise ApiError(
                400,
                f"Invalid value: '{size}'. Supported values for {model} are: "
                + ", ".join(f"'{s}'" for s in MODELS[model])
                + ".",
                code="invalid_value",
                param="size",
            )
        image = _input_reference(form, size)
        return self._start(model, prompt, seconds, size, input_reference=image)

    def _derive(self, form: _Form, kind: str, video_id: str | None = None) -> _Response:
        prompt = _prompt(form)
        if video_id is None:
            video_id = _video_reference(form)
        parent = self.video_or_404(video_id)
        if parent.status != "completed":
            raise ApiError(
                400,
                f"Video '{parent.id}' is {parent.status}; only a completed video can be used.",
                param="video",
            )
        seconds, extensions = parent.seconds, parent.extensions
        if kind == "extension":
            added = _seconds(form, EXTENSION_SECONDS, None)
            total = int(parent.seconds) + int(added)
            if parent.extensions >= MAX_EXTENSIONS or total > MAX_TOTAL_SECONDS:
                raise ApiError(
                    400,
                    f"A video can be extended at most {MAX_EXTENSIONS} times and up to "
                    f"{MAX_TOTAL_SECONDS} seconds in total.",
                    param="seconds",
                )
            seconds, extensions = str(total), parent.extensions + 1
        return self._start(
            parent.model,
            prompt,
            seconds,
            parent.size,
            input_reference=parent.input_reference,
            remixed_from=parent.id if kind == "remix" else None,
            base_video=parent.id,
            extensions=extensions,
        )

    def _start(self, model: str, prompt: str, seconds: str, size: str, **extra: Any) -> _Response:
        with self._lock:
            if self.max_running is not None:
                running = sum(1 for v in self._videos.values() if not v.final and not v.deleted)
                if running >= self.max_running:
                    raise ApiError(
                        429,
                        "Too many running tasks",
                        code="too_many_running_tasks",
                        kind="rate_limit_error",
                        headers={"retry-after": "1"},
                    )
            now = time.monotonic()
            video = _Video(
                id=f"video_{secrets.token_hex(16)}",
                model=model,
                prompt=prompt,
                seconds=seconds,
                size=size,
                created_at=int(time.time()),
                started=now,
                ready_at=None if self.hold else now + self.render_seconds,
                outcome=self._outcomes.pop(0) if self._outcomes else None,
                **extra,
            )
            self._videos[video.id] = video
            return _Response.json(200, video.to_json())

    def _list(self, query: dict[str, str]) -> _Response:
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            raise ApiError(400, "Invalid 'limit': expected an integer.", param="limit") from None
        if not 0 <= limit <= 100:
            raise ApiError(400, "Invalid 'limit': must be between 0 and 100.", param="limit")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(400, "Invalid 'order': expected 'asc' or 'desc'.", param="order")
        with self._lock:
            videos = [v for v in self._videos.values() if not v.deleted]
            for video in videos:
                self._advance(video)
            if order == "desc":
                videos.reverse()
            if after := query.get("after"):
                ids = [v.id for v in videos]
                if after not in ids:
                    raise ApiError(404, f"Video with id '{after}' not found.", param="after")
                videos = videos[ids.index(after) + 1 :]
            page = [v.to_json() for v in videos[:limit]]
        return _Response.json(
            200,
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(videos) > limit,
            },
        )

    def _delete(self, video_id: str) -> _Response:
        video = self.video_or_404(video_id)
        if not video.final:
            raise ApiError(400, "Only a completed or failed video can be deleted.")
        with self._lock:
            video.deleted = True
            video.content.clear()
        return _Response.json(200, {"id": video_id, "deleted": True, "object": "video.deleted"})

    def _content(self, video_id: str, query: dict[str, str]) -> _Response:
        variant = query.get("variant", "video")
        if variant not in VARIANTS:
            raise ApiError(
                400,
                f"Invalid value: '{variant}'. Supported values are: 'video', 'thumbnail' "
                "and 'spritesheet'.",
                code="invalid_value",
                param="variant",
            )
        video = self.video_or_404(video_id)
        if video.status != "completed":
            raise ApiError(
                400, f"Video '{video_id}' is {video.status}; its content is not ready yet."
            )
        if video.expires_at is not None and video.expires_at <= time.time():
            raise ApiError(404, f"The content of video '{video_id}' has expired.")
        if self.redirect_content:
            token = secrets.token_urlsafe(16)
            with self._lock:
                self._downloads[token] = (video_id, variant)
            return _Response(302, b"", {"location": f"{self.root_url}/files/{token}"})
        return self._bytes(video, variant)

    def _redirected_content(self, token: str) -> _Response:
        with self._lock:
            found = self._downloads.pop(token, None)
        if found is None:
            raise ApiError(404, "This download link is not valid or was used already.")
        return self._bytes(self.video_or_404(found[0]), found[1])

    def _bytes(self, video: _Video, variant: str) -> _Response:
        with self._render_lock:  # rendering is CPU-bound: one at a time keeps tests steady
            if not video.content:
                video.content.update(render_outputs(video, video.input_reference))
        data = video.content[variant]
        return _Response(200, data, {"content-type": VARIANTS[variant]})

    def _create_character(self, form: _Form) -> _Response:
        name = form.text("name")
        if not name or not 1 <= len(name) <= 80:
            raise ApiError(400, "'name' must be 1 to 80 characters.", param="name")
        if "video" not in form.files:
            raise ApiError(400, "Missing required parameter: 'video'.", param="video")
        character = {
            "id": f"char_{secrets.token_hex(8)}",
            "name": name,
            "created_at": int(time.time()),
        }
        with self._lock:
            self._characters[character["id"]] = character
        return _Response.json(200, character)

    def _character(self, character_id: str) -> _Response:
        with self._lock:
            character = self._characters.get(character_id)
        if character is None:
            raise ApiError(404, f"Character with id '{character_id}' not found.")
        return _Response.json(200, character)


# --- HTTP plumbing ---------------------------------------------------------------------------


@dataclass
class _Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class _Response:
    status: int
    body: bytes
    headers: dict[str, str]
    drop_after: int | None = None

    @classmethod
    def json(cls, status: int, data: Any, headers: Mapping[str, str] | None = None) -> _Response:
        return cls(
            status,
            json.dumps(data).encode(),
            {"content-type": "application/json", **(headers or {})},
        )


@dataclass(frozen=True)
class _Upload:
    filename: str
    data: bytes


@dataclass
class _Form:
    fields: dict[str, Any] = field(default_factory=dict)
    files: dict[str, _Upload] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        return value if isinstance(value, str) else None


def _handler(server: VideosAPIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = _Request(
                method=self.command,
                path=parts.path,
                query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=body,
            )
            response = server.handle(request)
            self.send_response(response.status)
            self.send_header("x-request-id", f"req_{secrets.token_hex(12)}")
            for name, value in response.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(response.body)))
            self.end_headers()
            if response.drop_after is None:
                self.wfile.write(response.body)
                return
            self.wfile.write(response.body[: response.drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # requests are recorded on the server object instead

    return Handler


def _api_path(request: _Request) -> str | None:
    """The path below the API root: ``/v1/...``, or Azure's ``/openai/v1/...``."""
    if request.path.startswith("/openai/v1/"):
        if "api-version" not in request.query:
            raise ApiError(
                400, "Missing required query parameter 'api-version'.", code="BadRequest"
            )
        return request.path.removeprefix("/openai/v1")
    if request.path.startswith("/v1/"):
        return request.path.removeprefix("/v1")
    return None


def _route(method: str, path: str) -> tuple[str, str | None] | None:
    for route_method, template, pattern in ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            return template, match.groupdict().get("id")
    return None


def _given_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get("api-key")


def _fault_error(fault: Fault) -> ApiError:
    defaults = {
        429: ("Rate limit reached for requests. Please try again later.", "rate_limit_exceeded"),
        500: ("The server had an error while processing your request. Sorry about that!", None),
        502: ("Bad gateway.", None),
        503: ("The engine is currently overloaded, please try again later.", None),
    }
    message, code = defaults.get(fault.status, (f"Injected error {fault.status}.", None))
    kind = "rate_limit_error" if fault.status == 429 else "server_error"
    return ApiError(
        fault.status,
        fault.message or message,
        code=fault.code or code,
        kind=kind if fault.status >= 429 else "invalid_request_error",
        headers=fault.headers,
    )


def _parse_body(request: _Request) -> _Form:
    content_type = request.headers.get("content-type", "")
    form = _Form()
    if not request.body:
        return form
    if content_type.startswith("application/json"):
        try:
            data = json.loads(request.body)
        except json.JSONDecodeError:
            raise ApiError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "The JSON body must be an object.")
        form.fields = data
        return form
    if content_type.startswith("multipart/form-data"):
        uploads: dict[str, _Upload] = {}

        def on_field(item: Any) -> None:
            name = item.field_name.decode()
            form.fields[name] = (item.value or b"").decode()

        def on_file(item: Any) -> None:
            item.file_object.seek(0)
            uploads[item.field_name.decode()] = _Upload(
                (item.file_name or b"").decode(), item.file_object.read()
            )

        headers = {"Content-Type": content_type.encode(), "Content-Length": str(len(request.body))}
        parser = create_form_parser(
            headers, on_field, on_file, config={"MAX_MEMORY_FILE_SIZE": float("inf")}
        )
        parser.write(request.body)
        parser.finalize()
        form.files = uploads
        return form
    if content_type.startswith("application/x-www-form-urlencoded"):
        pairs = parse_qs(request.body.decode(), keep_blank_values=True)
        form.fields = {k: v[-1] for k, v in pairs.items()}
        return form
    raise ApiError(400, f"Unsupported content type '{content_type}'.")


def _prompt(form: _Form) -> str:
    prompt = form.fields.get("prompt")
    if prompt is None or prompt == "":
        raise ApiError(
            400,
            "Missing required parameter: 'prompt'.",
            code="missing_required_parameter",
            param="prompt",
        )
    if not isinstance(prompt, str) or len(prompt) > 32000:
        raise ApiError(400, "Invalid 'prompt': a string of 1 to 32000 characters.", param="prompt")
    return prompt


def _seconds(form: _Form, allowed: tuple[str, ...], default: str | None) -> str:
    value = form.fields.get("seconds", default)
    choices = ", ".join(f"'{s}'" for s in allowed)
    if value is None:
        raise ApiError(
            400,
            "Missing required parameter: 'seconds'.",
            code="missing_required_parameter",
            param="seconds",
        )
    if not isinstance(value, str):
        raise ApiError(
            400,
            f"Invalid type for 'seconds': expected one of {choices}, but got "
            f"{type(value).__name__} instead.",
            code="invalid_type",
            param="seconds",
        )
    if value not in allowed:
        raise ApiError(
            400,
            f"Invalid value: '{value}'. Supported values are: {choices}.",
            code="invalid_value",
            param="seconds",
        )
    return value


def _input_reference(form: _Form, size: str) -> bytes | None:
    upload = form.files.get("input_reference")
    if upload is None:
        if isinstance(form.fields.get("input_reference"), dict):
            raise ApiError(
                400,
                "This test server takes input_reference as an uploaded file only.",
                param="input_reference",
            )
        return None
    try:
        with Image.open(io.BytesIO(upload.data)) as image:
            image.load()
            fmt, dims = image.format, image.size
    except (OSError, UnidentifiedImageError):
        raise ApiError(
            400, "The input_reference file is not a valid image.", param="input_reference"
        ) from None
    if fmt not in IMAGE_FORMATS:
        raise ApiError(
            400,
            f"Unsupported image format {fmt}: use JPEG, PNG or WebP.",
            param="input_reference",
        )
    width, height = (int(n) for n in size.split("x"))
    if dims != (width, height):
        raise ApiError(
            400,
            "Inpaint image must match the requested width and height",
            param="input_reference",
        )
    return upload.data


def _video_reference(form: _Form) -> str:
    video = form.fields.get("video")
    if isinstance(video, dict) and isinstance(video.get("id"), str):
        return str(video["id"])
    if isinstance(form.fields.get("video[id]"), str):
        return str(form.fields["video[id]"])
    if "video" in form.files:
        raise ApiError(400, "This test server takes a video reference ({id}) only.", param="video")
    raise ApiError(
        400,
        "Missing required parameter: 'video'.",
        code="missing_required_parameter",
        param="video",
    )


# --- content -----------------------------------------------------------------------------


def render_outputs(video: _Video, first_frame: bytes | None) -> dict[str, bytes]:
    """A real MP4 of the job's size and length, its WebP thumbnail and JPEG spritesheet.

    The first frame is the input still when there is one; the picture then drifts
    sideways, so frames differ and every job's bytes are its own.
    """
    width, height = (int(n) for n in video.size.split("x"))
    base = _first_frame(first_frame, width, height, video.id)
    frames = list(_frames(base, int(video.seconds) * FPS))
    return {
        "video": _encode_mp4(frames, width, height),
        "thumbnail": _image_bytes(Image.fromarray(frames[0]).reduce(4), "WEBP"),
        "spritesheet": _spritesheet(frames),
    }


def _first_frame(still: bytes | None, width: int, height: int, seed: str) -> np.ndarray:
    if still is not None:
        with Image.open(io.BytesIO(still)) as image:
            return np.asarray(image.convert("RGB").resize((width, height)))
    rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
    coarse = rng.integers(0, 256, (height // 64 + 1, width // 64 + 1, 3), dtype=np.uint8)
    image = Image.fromarray(coarse).resize((width, height), Image.Resampling.BILINEAR)
    return np.asarray(image)


def _frames(base: np.ndarray, count: int) -> Iterator[np.ndarray]:
    step = max(1, base.shape[1] // (count * 4 or 1))
    for index in range(count):
        yield np.roll(base, index * step, axis=1)


def _encode_mp4(frames: list[np.ndarray], width: int, height: int) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "35"}
        for array in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(array, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()


def _spritesheet(frames: list[np.ndarray], columns: int = 4, tiles: int = 8) -> bytes:
    picks = frames[:: max(1, len(frames) // tiles)][:tiles]
    thumbs = [Image.fromarray(f).reduce(8) for f in picks]
    w, h = thumbs[0].size
    rows = (len(thumbs) + columns - 1) // columns
    sheet = Image.new("RGB", (w * columns, h * rows))
    for i, thumb in enumerate(thumbs):
        sheet.paste(thumb, ((i % columns) * w, (i // columns) * h))
    return _image_bytes(sheet, "JPEG")


def _image_bytes(image: Image.Image, fmt: str) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, quality=80)
    return out.getvalue()


def new_webhook_secret() -> str:
    """A secret in the service's ``whsec_`` form, for tests."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
