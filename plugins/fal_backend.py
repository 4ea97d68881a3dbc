"""The fal backend: image-to-video apps on fal's queue API.

Models are fal app ids (``fal-ai/kling-video/v2.1/standard/image-to-video``). A request
is submitted to the app (``POST {queue}/{app id}``) with the input its mapping table
(:mod:`core.api.input_maps`) builds, the still inline as a data URI; the request id
is recorded at once as the job id (``OWNER/APP:REQUEST_ID@PROVIDER``: fal's status and
result URLs name only the owner and app), so any later process polls
``.../requests/{id}/status`` and fetches the result, then downloads the video from fal's
CDN without the key.

A model error comes back as the result: a ``content_policy_violation`` is recorded as
a refusal with fal's words; other validation errors name the field (``loc``). Results
are kept for a limited time (an hour, less for large ones); once gone, the job is
reported as expired. Add an app with a ``[plugins.fal.models."APP"]`` table in config.toml.

A request can be cancelled (``PUT .../requests/{id}/cancel``: ``generate --cancel-remote``).
With ``webhook_url`` in ``[plugins.fal]``, the submit carries ``fal_webhook`` pointing at
``reelvault webhooks serve``, with ``?app=OWNER/APP`` added: fal's delivery names only the
request, and the job id needs the app too.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from core.api import (
    Backend,
    BackendError,
    DerivedRequest,
    GenerationRequest,
    JobState,
    JobStatus,
    ModelInfo,
    RequestError,
    Settings,
    Variant,
    hookimpl,
)
from core.api.deferred import deferred_import
from core.api.http_backend import HttpBackend
from core.api.input_maps import InputMap, mapped_models
from core.api.providers import ProviderProfile
from core.api.remote import ErrorFields, RemoteService, expired_error, redact
from core.api.sniff import still_mime

if TYPE_CHECKING:
    import httpx
else:  # imported at first use (core.api.deferred): loading the plugins stays quick
    httpx = deferred_import("httpx")

NAME = "fal"
_JOB = re.compile(
    r"^(?P<app>[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+):(?P<id>[A-Za-z0-9_-]{1,100})"
    r"@(?P<provider>[a-z][a-z0-9_-]{0,39})$"
)
LANDSCAPE_PORTRAIT: dict[str, dict[str, Any]] = {"1280x720": {}, "720x1280": {}}

MAPS: tuple[InputMap, ...] = (
    InputMap(
        "fal-ai/kling-video/v2.1/standard/image-to-video",
        "image_url",
        seconds={5: {"duration": "5"}, 10: {"duration": "10"}},
        sizes=LANDSCAPE_PORTRAIT,  # the still's shape decides; 720p
        description="Kling 2.1 Standard, 5 or 10 s at 720p in the still's shape",
    ),
    InputMap(
        "fal-ai/minimax/hailuo-02/standard/image-to-video",
        "image_url",
        seconds={6: {"duration": "6"}, 10: {"duration": "10"}},
        sizes={"1366x768": {"resolution": "768P"}, "768x1366": {"resolution": "768P"}},
        description="MiniMax Hailuo 02 Standard, 6 or 10 s at 768P",
    ),
    InputMap(
        "fal-ai/wan-i2v",
        "image_url",
        seconds={5: {"num_frames": 81, "frames_per_second": 16}},
        sizes={
            "1280x720": {"resolution": "720p", "aspect_ratio": "16:9"},
            "720x1280": {"resolution": "720p", "aspect_ratio": "9:16"},
            "854x480": {"resolution": "480p", "aspect_ratio": "16:9"},
            "480x854": {"resolution": "480p", "aspect_ratio": "9:16"},
        },
        description="Wan 2.1 image-to-video, 81 frames at 16 fps (5 s), 480p or 720p",
    ),
    InputMap(
        "fal-ai/veo3.1/image-to-video",
        "image_url",
        seconds={8: {"duration": "8s"}, 4: {"duration": "4s"}, 6: {"duration": "6s"}},
        sizes={
            "1280x720": {"aspect_ratio": "16:9", "resolution": "720p"},
            "720x1280": {"aspect_ratio": "9:16", "resolution": "720p"},
            "1920x1080": {"aspect_ratio": "16:9", "resolution": "1080p"},
            "1080x1920": {"aspect_ratio": "9:16", "resolution": "1080p"},
        },
        description="Google Veo 3.1 on fal, 4, 6 or 8 s with audio",
    ),
    InputMap(
        "fal-ai/bytedance/seedance/v1/pro/image-to-video",
        "image_url",
        seconds={n: {"duration": str(n)} for n in (5, *range(2, 5), *range(6, 13))},
        sizes={
            "1280x720": {"resolution": "720p", "aspect_ratio": "16:9"},
            "720x1280": {"resolution": "720p", "aspect_ratio": "9:16"},
            "1920x1080": {"resolution": "1080p", "aspect_ratio": "16:9"},
            "1080x1920": {"resolution": "1080p", "aspect_ratio": "9:16"},
        },
        description="ByteDance Seedance 1 Pro, 2 to 12 s, 720p or 1080p",
    ),
)
REFUSAL_TYPES = ("content_policy_violation",)


class _FalService(RemoteService):
    """fal's model errors carry a ``type``; a refusal keeps it on the error."""

    def error(self, response: httpx.Response, fields: ErrorFields, **kwargs: Any) -> BackendError:
        error = super().error(response, fields, **kwargs)
        if fields.code in REFUSAL_TYPES:
            return BackendError(redact(fields.message, self.key), code=fields.code)
        return error


def fal_error_fields(response: httpx.Response) -> ErrorFields:
    """``{"detail": [{"loc": [...], "msg", "type"}]}`` or ``{"detail": "text"}``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = body.get("detail") if isinstance(body, dict) else None
    if isinstance(detail, list) and detail and isinstance(detail[0], dict):
        first = detail[0]
        loc = [str(part) for part in first.get("loc") or [] if part != "body"]
        return ErrorFields(
            message=str(first.get("msg") or response.reason_phrase),
            code=str(first.get("type") or "") or None,
            field=".".join(loc) or None,
        )
    if isinstance(detail, str):
        kind = body.get("error_type") if isinstance(body, dict) else None
        return ErrorFields(message=detail, code=kind if isinstance(kind, str) else None)
    return ErrorFields(message=response.text.strip() or response.reason_phrase)


class FalBackend(HttpBackend):
    """fal's queue API, at the built-in ``fal`` profile or a fal-kind profile."""

    name = NAME
    service_class = _FalService
    description = "image-to-video apps on fal's queue (Kling, Hailuo, Wan, Veo, Seedance)"

    def error_fields(self, response: httpx.Response) -> ErrorFields:
        return fal_error_fields(response)

    def maps(self) -> dict[str, InputMap]:
        return mapped_models(self.settings, NAME, MAPS)

    def models(self) -> Sequence[ModelInfo]:
        status = self.availability()
        return [table.model_info(status) for table in self.maps().values()]

    def submit(self, request: GenerationRequest) -> JobStatus:
        table = self.maps().get(request.model)
        if table is None:
            raise RequestError(f"fal has no mapping for app {request.model!r}")
        image = _data_uri(request.input_image) if request.input_image else None
        body = table.input_for(request, image)
        provider = request.parameters.get("provider")
        profile, service = self._pool.get(provider if isinstance(provider, str) else None)
        app = "/".join(request.model.split("/")[:2])
        hook = self.webhook_url()
        params = {"fal_webhook": _with_query(hook, app=app)} if hook else None
        answer = service.json(
            service.call("POST", request.model, create=True, json=body, params=params)
        )
        request_id = answer.get("request_id")
        if not isinstance(request_id, str) or not re.fullmatch(r"[A-Za-z0-9_-]{1,100}", request_id):
            raise BackendError(f"{profile.name} sent no request id", code="bad_response")
        details = {"provider": profile.name, "request_id": request_id, "explanation": [
            f"{request.model} at {profile.name} ({profile.host}) as {request_id}",
            "input: " + ", ".join(f"{k}={v}" for k, v in body.items()
                                  if k not in (table.image_field, table.prompt_field)),
        ]}  # fmt: skip
        return JobStatus(
            job_id=f"{app}:{request_id}@{profile.name}", state=JobState.QUEUED, details=details
        )

    def derive(self, request: DerivedRequest) -> JobStatus:
        raise BackendError("fal apps cannot remix, edit or extend here", code="unsupported")

    def poll(self, job_id: str) -> JobStatus:
        app, request_id, provider = _split(job_id)
        profile, service = self._pool.get(provider)
        base = f"{app}/requests/{request_id}"
        status = service.json(
            service.call("GET", f"{base}/status", job=job_id, timeout=service.poll_timeout)
        )
        details: dict[str, Any] = {"provider": profile.name, "request_id": request_id}
        state = status.get("status")
        if state == "IN_QUEUE":
            details["queue_position"] = status.get("queue_position")
            return JobStatus(job_id=job_id, state=JobState.QUEUED, details=details)
        if state == "IN_PROGRESS":
            return JobStatus(job_id=job_id, state=JobState.IN_PROGRESS, details=details)
        if state != "COMPLETED":
            raise BackendError(f"{profile.name} sent an unknown status {state!r}", "bad_response")
        try:
            result = service.json(service.call("GET", base, job=job_id))
        except BackendError as exc:
            return self._failed(job_id, profile, exc, details)
        video = result.get("video")
        if not isinstance(video, Mapping) or not isinstance(video.get("url"), str):
            raise BackendError(f"{profile.name} sent a result without a video", "bad_response")
        details["video"] = dict(video)
        return JobStatus(job_id=job_id, state=JobState.COMPLETED, progress=100, details=details)

    def cancel(self, job_id: str) -> JobStatus:
        """Ask fal to drop the request (``PUT .../cancel``): a queued one is removed, a
        running one signalled. One that already ended (``ALREADY_COMPLETED``, which may
        come as a 400) is reported as it stands, by polling it."""
        app, request_id, provider = _split(job_id)
        profile, service = self._pool.get(provider)
        try:
            answer = service.json(
                service.call("PUT", f"{app}/requests/{request_id}/cancel", job=job_id)
            )
        except BackendError as exc:
            if exc.code != "invalid_request":
                raise
            return self.poll(job_id)
        if answer.get("status") == "ALREADY_COMPLETED":
            return self.poll(job_id)
        details = {"provider": profile.name, "request_id": request_id}
        return JobStatus(job_id, JobState.FAILED, error_code="cancelled",
                         error_message=f"cancelled at {profile.name}", details=details)  # fmt: skip

    def download(self, job_id: str, variant: Variant, dest: BinaryIO) -> None:
        if variant != Variant.VIDEO:
            raise BackendError(f"fal has no {variant} variant", code="unsupported_variant")
        status = self.poll(job_id)
        if status.state != JobState.COMPLETED:
            if status.error_code == "expired":
                raise BackendError(status.error_message or "expired", code="expired")
            raise BackendError(f"{job_id} is {status.state}: nothing to download", "not_ready")
        _, _, provider = _split(job_id)
        profile, service = self._pool.get(provider)
        try:  # the CDN is another origin: the key never goes there
            service.download(status.details["video"]["url"], dest, job=job_id, authenticated=False)
        except BackendError as exc:
            if exc.code == "unknown_job":
                raise expired_error(job_id, profile.name, None) from None
            raise

    def _failed(
        self, job_id: str, profile: ProviderProfile, error: BackendError, details: dict[str, Any]
    ) -> JobStatus:
        """The result call answered with the model's error: a refusal, a fault or expiry."""
        if error.code == "unknown_job":
            gone = expired_error(job_id, profile.name, None)
            return JobStatus(job_id, JobState.FAILED, error_code="expired",
                             error_message=str(gone), details=details)  # fmt: skip
        if error.code in ("auth", "forbidden", "rate_limited", "network") or error.transient:
            raise error
        kind = error.code or "failed"
        return JobStatus(
            job_id,
            JobState.FAILED,
            error_code=kind,
            error_message=str(error),
            details=details,
            refused=kind in REFUSAL_TYPES,
        )


def _with_query(url: str, **values: str) -> str:
    """``url`` with ``values`` added to its query: fal's webhook URL names the app, which
    the delivery itself does not (the receiver needs it to find the job)."""
    parts = urlsplit(url)
    query = urlencode([*parse_qsl(parts.query), *values.items()])
    return urlunsplit(parts._replace(query=query))


def _data_uri(path: Path) -> str:
    mime = still_mime(path, "fal")
    return f"data:{mime};base64,{base64.b64encode(path.read_bytes()).decode()}"


def _split(job_id: str) -> tuple[str, str, str]:
    match = _JOB.match(job_id)
    if match is None:
        raise BackendError(f"{job_id!r} is not a fal job id (OWNER/APP:REQUEST@PROVIDER)")
    return match["app"], match["id"], match["provider"]


@hookimpl
def register_backends(register: Callable[[Backend], None], settings: Settings) -> None:
    register(FalBackend(settings))
