"""The stand-in server itself: its state, lifecycle, scripting, webhooks and HTTP plumbing.

Requests are answered by the methods it inherits from
:class:`core.testing.videos_api.routes.VideosAPIRoutes`; see the package docstring for
what the stand-in does and how tests script it.
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from standardwebhooks.webhooks import Webhook

from core.testing.videos_api.routes import VideosAPIRoutes
from core.testing.videos_api.state import (
    ROUTES,
    Fault,
    RecordedRequest,
    Request,
    Video,
    WebhookDelivery,
)

CONTENT = "/videos/{id}/content"


class _HTTPServer(ThreadingHTTPServer):
    # A provider takes hundreds of connections at once; the stdlib default backlog of 5
    # would reset a burst of concurrent clients before they were ever served.
    request_queue_size = 1024
    daemon_threads = True


class VideosAPIServer(VideosAPIRoutes):
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
        self.truncated_variants: dict[str, int] = {}
        """Variants (``thumbnail``, ``spritesheet``, ``video``) served cut to this many
        bytes with a 200, as a provider with a damaged output would."""
        self.failing_variants: dict[str, int] = {}
        """Variants whose download is answered with this HTTP status and no content, as
        a provider that lost (404) or cannot serve (5xx) one output would."""
        self.retired = False
        """Answer every route like a shut-down endpoint (404 ``Invalid URL``)."""
        self.hold = False
        """New jobs stay ``in_progress`` until :meth:`release`."""
        self.requests: list[RecordedRequest] = []
        self.webhook_deliveries: list[WebhookDelivery] = []
        self._videos: dict[str, Video] = {}
        self._characters: dict[str, dict[str, Any]] = {}
        self._faults: list[Fault] = []
        self._download_faults: list[Fault] = []
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

    # --- the scripting the conformance kit relies on (core.testing.conformance) --------

    @property
    def created(self) -> int:
        """How many jobs the service accepted (derived ones included)."""
        with self._lock:
            return len(self._videos)

    def refuse_next(self, reason: str) -> None:
        """The next job ends blocked by moderation, with ``reason`` as the service's words."""
        self.fail_next("moderation_blocked", reason)

    def expire_all(self) -> None:
        """Every job's outputs gone, as after retention; a released job ends its render now."""
        with self._lock:
            for video in self._videos.values():
                if video.ready_at is not None and not video.final:
                    video.ready_at = time.monotonic()
                video.advance(self.ttl_seconds)
                if video.final:
                    self.expire(video.id)

    def storm(self, times: int, seconds: float) -> None:
        """The next ``times`` creates and ``times`` polls answer 429, asking to wait."""
        for method, route in (("POST", "/videos"), ("GET", "/videos/{id}")):
            self.inject(method, route, 429, times=times, headers={"retry-after": str(seconds)})

    def fail_downloads(self, times: int, status: int = 503) -> None:
        """The next ``times`` content downloads answer ``status`` before any byte."""
        self._download_faults.append(self.inject("GET", CONTENT, status, times=times))

    def cut_next_download(self, after: int) -> None:
        """The next content download is cut after ``after`` bytes."""
        self._download_faults.append(self.inject("GET", CONTENT, drop_after=after))

    def download_faults_left(self) -> int:
        with self._lock:
            return sum(f.times for f in self._download_faults)

    def video(self, video_id: str) -> dict[str, Any]:
        with self._lock:
            video = self._videos[video_id]
            video.advance(self.ttl_seconds)
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

    def _tick(self) -> None:
        while not self._stop.wait(0.01):
            announce = []
            with self._lock:
                for video in self._videos.values():
                    video.advance(self.ttl_seconds)
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
                "webhook-signature": webhook_signature(key, webhook_id, stamp, payload),
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


def _handler(server: VideosAPIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # An answer goes out in one send: headers and body are buffered together and
        # flushed once the handler returns (a body larger than the buffer is written
        # straight through). With Nagle's algorithm on and two sends, the body would
        # wait for the client's delayed ACK of the headers (~40 ms per answer); with it
        # off, an answer split in two still costs a packet and a wake-up more.
        disable_nagle_algorithm = True
        wbufsize = 1 << 16

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            request = Request(
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
                self.wfile.flush()
                return
            self.wfile.write(response.body[: response.drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        do_GET = do_POST = do_DELETE = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # requests are recorded on the server object instead

    return Handler


def webhook_signature(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """A delivery's ``v1,<base64>`` signature, made by the Standard Webhooks reference library.

    A ``whsec_`` secret is base64 after its prefix, as the service issues them; any other
    secret is used as raw UTF-8 bytes, as receivers (reelvault's included) read it. The
    library signs text, so ``body`` must be UTF-8.
    """
    key: str | bytes = secret if secret.startswith("whsec_") else secret.encode()
    when = datetime.fromtimestamp(timestamp, tz=UTC)
    return Webhook(key).sign(webhook_id, when, body.decode())


def new_webhook_secret() -> str:
    """A secret in the service's ``whsec_`` form, for tests."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()
