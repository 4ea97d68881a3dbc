"""The stand-in's data model: the API's constants, its jobs, scripted faults and records.

Nothing here speaks HTTP or parses a body; :mod:`.forms` reads requests into the
:class:`Form` defined here and :mod:`.routes` answers them with a :class:`Response`.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

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
    connection after that many body bytes. ``delay`` holds the answer back that many
    seconds and then answers normally (a service that hangs; ``status`` is not used).
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
    delay: float = 0.0


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
class Video:
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

    def advance(self, ttl_seconds: int) -> None:
        """Bring the job's status up to now (call with the server's lock held).

        Progress is computed from the clock on every look rather than by a timer, so a
        client polling fast sees it rise smoothly and a held job never finishes.
        """
        if self.final:
            return
        now = time.monotonic()
        if self.ready_at is None:  # held: runs on, never quite finishes
            elapsed = now - self.started
            self.status = "in_progress"
            self.progress = min(90, 10 + int(elapsed * 20))
            return
        span = max(self.ready_at - self.started, 1e-6)
        fraction = (now - self.started) / span
        if fraction < 1:
            self.status = "queued" if fraction < 0.1 else "in_progress"
            self.progress = int(fraction * 100)
            return
        self.completed_at = int(time.time())
        if self.outcome is not None:
            self.status = "failed"
            self.error = dict(self.outcome)
        else:
            self.status = "completed"
            self.progress = 100
            self.expires_at = self.completed_at + ttl_seconds


@dataclass(frozen=True)
class WebhookDelivery:
    webhook_id: str
    type: str
    video_id: str
    status: int | None


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes


@dataclass
class Response:
    status: int
    body: bytes
    headers: dict[str, str]
    drop_after: int | None = None

    @classmethod
    def json(cls, status: int, data: Any, headers: Mapping[str, str] | None = None) -> Response:
        return cls(
            status,
            json.dumps(data).encode(),
            {"content-type": "application/json", **(headers or {})},
        )


@dataclass(frozen=True)
class Upload:
    filename: str
    data: bytes


@dataclass
class Form:
    fields: dict[str, Any] = field(default_factory=dict)
    files: dict[str, Upload] = field(default_factory=dict)

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        return value if isinstance(value, str) else None
