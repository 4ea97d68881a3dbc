"""What every loopback stand-in of a provider needs: a server, faults, real videos.

A stand-in (:mod:`core.testing.gemini_api`, ...) subclasses :class:`LoopbackService` and
writes only its routes: ``route(request) -> Reply``. This module serves them on
127.0.0.1 in a thread, records every request (never its credentials), answers scripted
faults first (:meth:`LoopbackService.inject`: a 429 storm with ``Retry-After``, a 5xx,
a download cut short), and renders real H.264 MP4s so the code under test probes,
signs and catalogs what it would get from the provider.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

import av
import numpy as np
from PIL import Image

FPS = 4
_RENDER_LOCK = threading.Lock()
"""One encoder at a time: libx264 under PyAV is not to be driven from threads at once."""
CREDENTIAL_HEADERS = ("authorization", "x-goog-api-key", "api-key")


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        try:
            return json.loads(self.body or b"null")
        except ValueError:
            return None


@dataclass
class Reply:
    status: int
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    drop_after: int | None = None

    @classmethod
    def json(cls, status: int, data: Any, headers: Mapping[str, str] | None = None) -> Reply:
        body = json.dumps(data).encode()
        return cls(status, body, {"content-type": "application/json", **(headers or {})})


@dataclass
class Fault:
    """Answer the next ``times`` requests whose path matches ``path`` with ``reply``
    (or, with ``drop_after``, the real answer cut off after that many bytes)."""

    method: str
    path: re.Pattern[str]
    reply: Reply | None
    times: int = 1
    drop_after: int | None = None


@dataclass(frozen=True)
class Recorded:
    method: str
    path: str
    query: dict[str, str]
    body: bytes


class LoopbackService:
    """A threaded HTTP server on loopback; subclasses implement :meth:`route`.

    A subclass names the routes a download takes: ``download_route`` (a regex of the
    path the backend asks for a finished video; a 5xx is answered there) and
    ``media_route`` (where the bytes come from, when that is another path: a redirect's
    target, a CDN URL; a cut is made there).
    """

    download_route = ""
    media_route = ""

    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.faults: list[Fault] = []
        self._download_faults: list[Fault] = []
        self.lock = threading.RLock()
        self._server = _Server(("127.0.0.1", 0), _handler(self))
        self._thread: threading.Thread | None = None

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> LoopbackService:
        self._thread = threading.Thread(
            target=self._server.serve_forever, args=(0.05,), daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=10)

    def __enter__(self) -> Any:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    # --- scripting ---------------------------------------------------------------------

    def inject(
        self,
        method: str,
        path: str,
        status: int = 500,
        *,
        times: int = 1,
        body: Any = None,
        headers: Mapping[str, str] | None = None,
        drop_after: int | None = None,
    ) -> Fault:
        """Answer ``method`` requests whose path matches the regex ``path`` with an error."""
        reply = None if drop_after is not None else Reply.json(status, body, headers)
        return self.inject_reply(method, path, reply, times=times, drop_after=drop_after)

    def inject_reply(
        self,
        method: str,
        path: str,
        reply: Reply | None,
        *,
        times: int = 1,
        drop_after: int | None = None,
    ) -> Fault:
        """Answer the next ``times`` matching requests (``method`` ``"*"``: any) so."""
        fault = Fault(method, re.compile(path), reply, times, drop_after)
        with self.lock:
            self.faults.append(fault)
        return fault

    def count(self, method: str, path: str) -> int:
        pattern = re.compile(path)
        with self.lock:
            return sum(1 for r in self.requests if r.method == method and pattern.search(r.path))

    def wait_for(self, predicate: Callable[[], bool], timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() > deadline:
                raise TimeoutError("the stand-in never reached the expected state")
            time.sleep(0.01)

    # --- the scripting every stand-in offers (core.testing.conformance relies on it) -----

    @property
    def created(self) -> int:  # pragma: no cover - each stand-in answers
        """How many jobs the service accepted (creates that made a job)."""
        raise NotImplementedError

    def refuse_next(self, reason: str) -> None:  # pragma: no cover - each stand-in answers
        """End the next job refused on policy grounds, with ``reason`` as the service's words."""
        raise NotImplementedError

    def expire_all(self) -> None:  # pragma: no cover - each stand-in answers
        """Make every job's outputs gone, as after the service's retention."""
        raise NotImplementedError

    def storm(self, times: int, seconds: float) -> None:  # pragma: no cover
        """Answer the next ``times`` requests with the service's 429, asking to wait."""
        raise NotImplementedError

    def fail_downloads(self, times: int, status: int = 503) -> None:
        """Answer the next ``times`` download requests with ``status`` (before any byte)."""
        assert self.download_route, f"{type(self).__name__} names no download_route"
        body = {"error": {"message": "The service is temporarily unavailable."}}
        fault = self.inject("GET", self.download_route, status, times=times, body=body)
        self._download_faults.append(fault)

    def cut_next_download(self, after: int) -> None:
        """Cut the connection of the next download after ``after`` bytes of the video."""
        route = self.media_route or self.download_route
        assert route, f"{type(self).__name__} names no download_route"
        self._download_faults.append(self.inject("GET", route, drop_after=after))

    def download_faults_left(self) -> int:
        """How many scripted download faults were not met yet (0: all were)."""
        with self.lock:
            return sum(f.times for f in self._download_faults)

    @property
    def cancelled(self) -> int:  # pragma: no cover - a stand-in of a backend that cancels
        """How many jobs the service stopped on request."""
        raise NotImplementedError

    # --- serving -----------------------------------------------------------------------

    def route(self, request: Request) -> Reply:  # pragma: no cover - subclasses answer
        raise NotImplementedError

    def handle(self, request: Request) -> Reply:
        with self.lock:
            self.requests.append(Recorded(request.method, request.path, request.query, b""))
            fault = next(
                (
                    f
                    for f in self.faults
                    if f.times > 0
                    and f.method in (request.method, "*")
                    and f.path.search(request.path)
                ),
                None,
            )
            if fault is not None:
                fault.times -= 1
        if fault is not None and fault.reply is not None:
            return fault.reply
        reply = self.route(request)
        if fault is not None:
            reply.drop_after = fault.drop_after
        return reply


class _Server(ThreadingHTTPServer):
    # A burst of connections must queue, not be reset (the stdlib backlog is 5).
    request_queue_size = 1024
    daemon_threads = True


def _handler(service: LoopbackService) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def _serve(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            request = Request(
                method=self.command,
                path=parts.path,
                query={k: v[-1] for k, v in parse_qs(parts.query).items()},
                headers={k.lower(): v for k, v in self.headers.items()},
                body=self.rfile.read(length) if length else b"",
            )
            reply = service.handle(request)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(reply.body)))
            self.end_headers()
            if reply.drop_after is None:
                self.wfile.write(reply.body)
                return
            self.wfile.write(reply.body[: reply.drop_after])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)

        do_GET = do_POST = do_DELETE = do_PUT = _serve

        def log_message(self, format: str, *args: Any) -> None:
            pass  # requests are recorded on the service instead

    return Handler


def render_mp4(width: int, height: int, seconds: int, still: bytes | None, seed: str) -> bytes:
    """A real H.264 MP4 of that size and length; its first frame is ``still`` if given."""
    if still is not None:
        with Image.open(io.BytesIO(still)) as image:
            base = np.asarray(image.convert("RGB").resize((width, height)))
    else:
        rng = np.random.default_rng(int(hashlib.sha256(seed.encode()).hexdigest()[:8], 16))
        coarse = rng.integers(0, 256, (height // 64 + 1, width // 64 + 1, 3), dtype=np.uint8)
        base = np.asarray(Image.fromarray(coarse).resize((width, height)))
    with _RENDER_LOCK:
        return _encode(base, width, height, seconds)


def _encode(base: np.ndarray, width: int, height: int, seconds: int) -> bytes:
    count = max(1, seconds * FPS)
    step = max(1, width // (count * 4))
    buffer = io.BytesIO()
    with av.open(buffer, "w", format="mp4") as container:
        stream = container.add_stream("libx264", rate=FPS)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"preset": "ultrafast", "crf": "35"}
        for index in range(count):
            frame = av.VideoFrame.from_ndarray(np.roll(base, index * step, axis=1), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return buffer.getvalue()
