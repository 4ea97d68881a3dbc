"""A loopback stand-in of the Kite video API, for the backend's tests.

Built on reelvault's :class:`core.testing.loopback.LoopbackService`, which serves it on
127.0.0.1, records requests and answers scripted faults; this module writes only the
three routes and the scripting the conformance kit asks of every stand-in.
"""

from __future__ import annotations

import base64
import binascii
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from core.testing.loopback import LoopbackService, Reply, Request, render_mp4

_JOB = re.compile(r"^/v1/jobs/(?P<id>[a-z0-9_]+)$")
_MEDIA = re.compile(r"^/media/(?P<token>[\w-]+)\.mp4$")
_IMAGE = re.compile(r"data:image/[a-z]+;base64,(?P<data>.+)", re.S)


@dataclass
class Job:
    id: str
    size: str
    seconds: int
    image: bytes
    started: float = field(default_factory=time.monotonic)
    held: bool = False
    refusal: str | None = None
    expired: bool = False
    token: str = field(default_factory=lambda: secrets.token_urlsafe(12))
    video: bytes | None = None


def _error(status: int, message: str, code: str, param: str | None = None) -> Reply:
    return Reply.json(status, {"error": {"message": message, "code": code, "param": param}})


class KiteServer(LoopbackService):
    """The Kite video API on 127.0.0.1."""

    download_route = _MEDIA.pattern

    def __init__(self, api_key: str, *, render_seconds: float = 0.2) -> None:
        super().__init__()
        self.api_key = api_key
        self.render_seconds = render_seconds
        self.hold = False
        self.jobs: dict[str, Job] = {}
        self._refusals: list[str] = []

    @property
    def base_url(self) -> str:
        return f"{self.root_url}/v1"

    # --- what the conformance kit scripts ----------------------------------------------

    @property
    def created(self) -> int:
        with self.lock:
            return len(self.jobs)

    def refuse_next(self, reason: str) -> None:
        self._refusals.append(reason)

    def expire_all(self) -> None:
        with self.lock:
            for job in self.jobs.values():
                job.expired = True

    def storm(self, times: int, seconds: float) -> None:
        self.inject("*", r"^/v1/", 429, times=times, headers={"Retry-After": str(seconds)},
                    body={"error": {"message": "Slow down", "code": "rate_limited"}})  # fmt: skip

    def release(self) -> None:
        with self.lock:
            self.hold = False
            for job in self.jobs.values():
                if job.held:
                    job.held, job.started = False, time.monotonic()

    # --- routes ------------------------------------------------------------------------

    def route(self, request: Request) -> Reply:
        if match := _MEDIA.match(request.path):
            return self._media(match["token"])
        if request.headers.get("authorization") != f"Bearer {self.api_key}":
            return _error(401, "Invalid API key", "invalid_api_key")
        if request.method == "POST" and request.path == "/v1/jobs":
            return self._create(request.json())
        if request.method == "GET" and (match := _JOB.match(request.path)):
            with self.lock:
                job = self.jobs.get(match["id"])
            if job is None:
                return _error(404, "No such job", "not_found")
            return Reply.json(200, self._json(job))
        return _error(404, f"{request.method} {request.path} is not a route", "not_found")

    def _create(self, body: Any) -> Reply:
        if not isinstance(body, dict):
            return _error(400, "The body must be a JSON object", "invalid_request")
        if body.get("size") not in ("1280x720", "720x1280"):
            return _error(422, "size must be 1280x720 or 720x1280", "invalid_value", "size")
        if body.get("seconds") not in (4, 8):
            return _error(422, "seconds must be 4 or 8", "invalid_value", "seconds")
        match = _IMAGE.fullmatch(str(body.get("image") or ""))
        try:
            image = base64.b64decode(match["data"], validate=True) if match else b""
        except binascii.Error:
            image = b""
        if not image:
            return _error(422, "image must be a base64 data URI", "invalid_value", "image")
        job = Job(f"kj_{secrets.token_hex(8)}", body["size"], body["seconds"], image,
                  held=self.hold)  # fmt: skip
        with self.lock:
            if self._refusals:
                job.refusal = self._refusals.pop(0)
            self.jobs[job.id] = job
        return Reply.json(201, {"id": job.id, "state": "queued"})

    def _json(self, job: Job) -> dict[str, Any]:
        elapsed = 0.0 if job.held else time.monotonic() - job.started
        if job.held:  # runs on, never quite finishes
            return {"id": job.id, "state": "running", "progress": 40}
        if elapsed < self.render_seconds:
            progress = int(100 * elapsed / self.render_seconds)
            return {"id": job.id, "state": "running", "progress": progress}
        if job.refusal is not None:
            error = {"code": "content_refused", "message": job.refusal}
            return {"id": job.id, "state": "failed", "progress": 100, "error": error}
        url = None if job.expired else f"{self.root_url}/media/{job.token}.mp4"
        return {"id": job.id, "state": "succeeded", "progress": 100, "expired": job.expired,
                "video_url": url}  # fmt: skip

    def _media(self, token: str) -> Reply:
        with self.lock:
            job = next((j for j in self.jobs.values() if j.token == token), None)
        if job is None or job.expired:
            return Reply(404, b"Not Found", {"content-type": "text/plain"})
        if job.video is None:
            width, height = (int(n) for n in job.size.split("x"))
            job.video = render_mp4(width, height, job.seconds, job.image, token)
        return Reply(200, job.video, {"content-type": "video/mp4"})
