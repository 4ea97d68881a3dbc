"""The veo backend: Google's Veo models through the Gemini API.

A request becomes ``POST models/{model}:predictLongRunning`` with the still as inline
base64 image bytes; the answer names a long-running operation, recorded at once as the
job id (``MODEL/OPERATION@PROVIDER``), so any later process polls the operation to
``done`` and downloads the video from the Files API, with the key, as Google's SDK does.

What each model takes is checked before anything is sent: Veo 3 and 3.1 make 4, 6 or 8
seconds at 720p or 1080p (3.1 also 4k), the larger ones at 8 seconds only; Veo 2 makes
5, 6 or 8 seconds at 720p and takes no ``resolution`` at all. Reelvault's ``size`` maps
onto the API's ``aspectRatio`` (16:9 or 9:16) and ``resolution``.

A video the safety filter held back comes back as a finished operation with no samples
but ``raiMediaFilteredReasons``: that is recorded as a refusal with those reasons, not
as a failure of the service. Generated videos are kept for two days; a download after
that is reported as expired. Rate limits (429, with Google's ``RetryInfo``) and server
errors are retried by :class:`core.api.remote.RemoteService`.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

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
from core.api.lifecycle import BUILTIN, hint
from core.api.providers import ProviderProfile, Secret
from core.api.remote import (
    ErrorFields,
    expired_error,
    redact,
)
from core.api.sniff import still_mime

if TYPE_CHECKING:
    import httpx
else:  # imported at first use (core.api.deferred): loading the plugins stays quick
    httpx = deferred_import("httpx")

NAME = "veo"
RESOLUTION_HEIGHTS = {"720p": 720, "1080p": 1080, "4k": 2160}
LONG_ONLY = ("1080p", "4k")
"""Resolutions the API makes at 8 seconds only."""
REFUSAL = re.compile(r"safety|responsible ai|\brai\b|blocked|policy|prohibited", re.I)
_JOB = re.compile(
    r"^(?P<model>veo-[a-z0-9.-]+)/(?P<op>[A-Za-z0-9_-]{1,150})@(?P<provider>[a-z][a-z0-9_-]{0,39})$"
)
_OPERATION = re.compile(r"^models/(?P<model>[^/]+)/operations/(?P<op>[A-Za-z0-9_-]{1,150})$")
_FILE_ID = re.compile(r"files/([a-z0-9]+)")
_RPC_CODES = {1: "cancelled", 3: "invalid_argument", 4: "deadline_exceeded", 5: "not_found",
              7: "permission_denied", 8: "resource_exhausted", 9: "failed_precondition",
              13: "internal", 14: "unavailable"}  # fmt: skip


@dataclass(frozen=True)
class VeoModel:
    name: str
    seconds: tuple[int, ...]
    resolutions: tuple[str, ...]
    sends_resolution: bool
    description: str

    def sizes(self) -> tuple[str, ...]:
        sizes = []
        for resolution in self.resolutions:
            height = RESOLUTION_HEIGHTS[resolution]
            sizes += [f"{height * 16 // 9}x{height}", f"{height}x{height * 16 // 9}"]
        return tuple(sizes)


MODELS: tuple[VeoModel, ...] = (
    VeoModel("veo-3.1-generate-preview", (4, 6, 8), ("720p", "1080p", "4k"), True,
             "Veo 3.1 with audio; 1080p and 4k at 8 s (preview)"),
    VeoModel("veo-3.1-fast-generate-preview", (4, 6, 8), ("720p", "1080p", "4k"), True,
             "Veo 3.1 Fast with audio; 1080p and 4k at 8 s (preview)"),
    VeoModel("veo-3.0-generate-001", (4, 6, 8), ("720p", "1080p"), True,
             "Veo 3 with audio; 1080p at 8 s"),
    VeoModel("veo-3.0-fast-generate-001", (4, 6, 8), ("720p", "1080p"), True,
             "Veo 3 Fast with audio; 1080p at 8 s"),
    VeoModel("veo-2.0-generate-001", (5, 6, 8), ("720p",), False, "Veo 2, silent, 720p"),
)  # fmt: skip


def google_error_fields(response: httpx.Response) -> ErrorFields:
    """Google's envelope: ``{"error": {code, message, status, details: [...]}}``.

    ``details`` may hold ``ErrorInfo`` (reason ``API_KEY_INVALID``: a bad key, though
    the status is 400), ``BadRequest.fieldViolations`` (the field at fault) and
    ``RetryInfo.retryDelay`` (``"22s"``: how long to wait).
    """
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return ErrorFields(message=response.text.strip() or response.reason_phrase)
    field = retry = None
    auth = False
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        auth = auth or detail.get("reason") == "API_KEY_INVALID"
        violations = detail.get("fieldViolations")
        if isinstance(violations, list) and violations and isinstance(violations[0], dict):
            field = str(violations[0].get("field") or "") or None
        delay = detail.get("retryDelay")
        if isinstance(delay, str) and re.fullmatch(r"\d+(\.\d+)?s", delay):
            retry = float(delay[:-1])
    return ErrorFields(
        message=str(error.get("message") or response.reason_phrase),
        code=str(error.get("status") or error.get("code") or "") or None,
        field=field,
        auth=auth,
        retry_after=retry,
    )


class VeoBackend(HttpBackend):
    """Veo models at the Gemini API (the built-in ``gemini`` profile, or a veo profile)."""

    name = NAME
    description = "Google Veo 2, 3 and 3.1 through the Gemini API (predictLongRunning)"

    def error_fields(self, response: httpx.Response) -> ErrorFields:
        return google_error_fields(response)

    def models(self) -> Sequence[ModelInfo]:
        where = self.availability()
        return [
            ModelInfo(
                name=model.name,
                seconds=model.seconds,
                sizes=model.sizes(),
                default_seconds=8,
                default_size="1280x720",
                accepts_input_image=True,
                variants=(Variant.VIDEO,),
                status=where,
                description=model.description,
            )
            for model in MODELS
        ]

    # --- the Backend protocol ----------------------------------------------------------

    def submit(self, request: GenerationRequest) -> JobStatus:
        model = _model(request.model)
        aspect, resolution = _aspect_and_resolution(model, request.size)
        if resolution in LONG_ONLY and request.seconds != 8:
            raise RequestError(
                f"{model.name} makes {resolution} ({request.size}) at 8 seconds only, "
                f"not {request.seconds}"
            )
        provider = request.parameters.get("provider")
        if provider is not None and not isinstance(provider, str):
            raise RequestError("the provider parameter must be a profile name")
        instance: dict[str, Any] = {"prompt": request.prompt}
        parameters: dict[str, Any] = {"durationSeconds": request.seconds, "aspectRatio": aspect}
        if model.sends_resolution:
            parameters["resolution"] = resolution
        if request.input_image is not None:
            instance["image"] = _inline_image(request.input_image)
            parameters["personGeneration"] = "allow_adult"  # the only value i2v takes
        negative = request.parameters.get("negative_prompt")
        if isinstance(negative, str) and negative:
            parameters["negativePrompt"] = negative
        profile, service = self._pool.get(provider)
        body = {"instances": [instance], "parameters": parameters}
        try:
            response = service.call(
                "POST", f"models/{model.name}:predictLongRunning", create=True, json=body
            )
        except BackendError as exc:
            if exc.code == "invalid_request" and "no longer available" in str(exc):
                message = _retired(model.name, profile, str(exc))
                raise BackendError(message, code="retired") from None
            raise
        name = service.json(response).get("name")
        match = _OPERATION.match(name) if isinstance(name, str) else None
        if match is None or match["model"] != model.name:
            raise BackendError(f"{profile.name} sent no operation name", code="bad_response")
        job = f"{model.name}/{match['op']}@{profile.name}"
        details = {"provider": profile.name, "operation": name, "explanation": [
            f"{model.name} at {profile.name} ({profile.host}) as {name}",
            f"{request.seconds} s, {aspect} at {resolution}",
        ]}  # fmt: skip
        return JobStatus(job_id=job, state=JobState.QUEUED, details=details)

    def derive(self, request: DerivedRequest) -> JobStatus:
        raise BackendError("veo cannot remix, edit or extend through reelvault", code="unsupported")

    def poll(self, job_id: str) -> JobStatus:
        model, operation, provider = _split(job_id)
        profile, service = self._pool.get(provider)
        path = f"models/{model}/operations/{operation}"
        found = service.json(service.call("GET", path, job=job_id, timeout=service.poll_timeout))
        return _status(job_id, profile, found, service.key)

    def download(self, job_id: str, variant: Variant, dest: BinaryIO) -> None:
        if variant != Variant.VIDEO:
            raise BackendError(f"veo has no {variant} variant", code="unsupported_variant")
        status = self.poll(job_id)
        if status.state != JobState.COMPLETED:
            raise BackendError(f"{job_id} is {status.state}: nothing to download", code="not_ready")
        _, _, provider = _split(job_id)
        profile, service = self._pool.get(provider)
        sample = status.details["videos"][0]
        if isinstance(sample.get("encodedVideo"), str):  # the video inline, no file
            dest.write(base64.b64decode(sample["encodedVideo"]))
            return
        found = _FILE_ID.search(str(sample.get("uri") or ""))
        if found is None:
            raise BackendError(f"{profile.name} sent a video without a file", code="bad_response")
        try:
            service.download(
                f"files/{found[1]}:download?alt=media", dest, job=job_id, authenticated=True
            )
        except BackendError as exc:
            if exc.code == "unknown_job":  # the file is gone: Veo keeps videos two days
                raise expired_error(job_id, profile.name, None) from None
            raise


def _status(
    job_id: str, profile: ProviderProfile, operation: Mapping[str, Any], key: Secret
) -> JobStatus:
    """An Operation as a JobStatus: running, a video, a safety refusal or an error."""
    details: dict[str, Any] = {"provider": profile.name, "operation": operation.get("name")}
    if not operation.get("done"):
        return JobStatus(job_id=job_id, state=JobState.IN_PROGRESS, details=details)
    error = operation.get("error")
    if isinstance(error, dict):
        code = error.get("code")
        name = _RPC_CODES.get(code, f"error_{code}") if isinstance(code, int) else "failed"
        message = redact(str(error.get("message") or "the operation failed"), key)
        details["error"] = {"code": code, "message": message}
        return JobStatus(
            job_id=job_id,
            state=JobState.FAILED,
            error_code=name,
            error_message=message,
            details=details,
            refused=bool(REFUSAL.search(message)),
        )
    result = (operation.get("response") or {}).get("generateVideoResponse") or {}
    samples = [s.get("video") for s in result.get("generatedSamples") or [] if isinstance(s, dict)]
    videos = [v for v in samples if isinstance(v, dict)]
    if videos:
        details["videos"] = videos
        return JobStatus(job_id=job_id, state=JobState.COMPLETED, progress=100, details=details)
    reasons = [redact(str(r), key) for r in result.get("raiMediaFilteredReasons") or []]
    filtered = int(result.get("raiMediaFilteredCount") or 0)
    details["rai_filtered"] = {"count": filtered, "reasons": reasons}
    if filtered or reasons:
        return JobStatus(
            job_id=job_id,
            state=JobState.FAILED,
            error_code="safety_filtered",
            error_message="; ".join(reasons) or "Veo's safety filter held the video back",
            details=details,
            refused=True,
        )
    return JobStatus(
        job_id=job_id,
        state=JobState.FAILED,
        error_code="no_video",
        error_message=f"{profile.name} finished the operation without a video",
        details=details,
    )


def _model(name: str) -> VeoModel:
    for model in MODELS:
        if model.name == name:
            return model
    raise RequestError(f"veo has no model {name!r}")


def _aspect_and_resolution(model: VeoModel, size: str) -> tuple[str, str]:
    for resolution in model.resolutions:
        height = RESOLUTION_HEIGHTS[resolution]
        if size == f"{height * 16 // 9}x{height}":
            return "16:9", resolution
        if size == f"{height}x{height * 16 // 9}":
            return "9:16", resolution
    raise RequestError(f"{model.name} does not make {size} (allowed: {', '.join(model.sizes())})")


def _inline_image(path: Path) -> dict[str, str]:
    """The still as the API takes it: base64 bytes and their MIME type."""
    mime = still_mime(path, "Veo")
    return {"bytesBase64Encoded": base64.b64encode(path.read_bytes()).decode(), "mimeType": mime}


def _split(job_id: str) -> tuple[str, str, str]:
    match = _JOB.match(job_id)
    if match is None:
        raise BackendError(f"{job_id!r} is not a veo job id (MODEL/OPERATION@PROVIDER)")
    return match["model"], match["op"], match["provider"]


def _retired(model: str, profile: ProviderProfile, answer: str) -> str:
    """The endpoint says the model is gone: name what the registry offers instead."""
    instead = next(
        (e.alternatives for e in BUILTIN if (e.backend, e.model) == (NAME, model)),
        ("veo:veo-3.0-generate-001",),
    )
    hints = ", ".join(hint(a) for a in instead)
    return (
        f"model {model} is retired at {profile.name} ({profile.host}): {answer}; use instead: "
        f'{hints}; record it with [lifecycle."veo:{model}"] status = "retired" in config.toml'
    )


@hookimpl
def register_backends(register: Callable[[Backend], None], settings: Settings) -> None:
    register(VeoBackend(settings))
