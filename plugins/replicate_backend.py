"""The replicate backend: image-to-video models on Replicate's predictions API.

Models are Replicate model names (``kwaivgi/kling-v2.1``), optionally pinned to a
version (``owner/name:VERSION``). The still is uploaded to Replicate's Files API and its
URL goes into the input field the model's mapping table (:mod:`core.api.input_maps`)
names; the prediction is created on the model (``POST /models/{owner}/{name}/predictions``)
or, with a version, through ``POST /predictions``. Its id is recorded at once as the job
id (``PREDICTION@PROVIDER``), so any later process polls ``GET /predictions/{id}`` and
downloads the output URL, without the key, before Replicate removes it (an hour after
an API prediction finishes; it is then reported as expired).

A prediction that failed because a safety checker flagged the input or output is
recorded as a refusal with Replicate's words. Add a model with a
``[plugins.replicate.models."OWNER/NAME"]`` table in config.toml.

A prediction can be cancelled (``POST /predictions/{id}/cancel``: ``generate
--cancel-remote``). With ``webhook_url`` in ``[plugins.replicate]``, predictions are
created with ``webhook`` and ``webhook_events_filter: ["completed"]``, so that
``reelvault webhooks serve`` finishes them as soon as they end.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
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
from core.api.input_maps import InputMap, mapped_models
from core.api.providers import ProviderProfile
from core.api.remote import ErrorFields, RemoteService, expired_error, redact
from core.api.sniff import still_mime

if TYPE_CHECKING:
    import httpx
else:  # imported at first use (core.api.deferred): loading the plugins stays quick
    httpx = deferred_import("httpx")

NAME = "replicate"
REFUSAL = re.compile(r"nsfw|sensitive|safety|flagged|content policy|moderation", re.I)
_JOB = re.compile(r"^(?P<id>[a-z0-9]{8,64})@(?P<provider>[a-z][a-z0-9_-]{0,39})$")
_STATES = {"starting": JobState.QUEUED, "processing": JobState.IN_PROGRESS,
           "succeeded": JobState.COMPLETED, "failed": JobState.FAILED,
           "canceled": JobState.FAILED, "aborted": JobState.FAILED}  # fmt: skip
_HD = {"1920x1080": {"resolution": "1080p"}, "1080x1920": {"resolution": "1080p"}}
_720 = {"1280x720": {"resolution": "720p"}, "720x1280": {"resolution": "720p"}}
_480 = {"854x480": {"resolution": "480p"}, "480x854": {"resolution": "480p"}}

MAPS: tuple[InputMap, ...] = (
    InputMap(
        "kwaivgi/kling-v2.1",
        "start_image",
        seconds={5: {"duration": 5}, 10: {"duration": 10}},
        sizes={
            "1280x720": {"mode": "standard"},
            "720x1280": {"mode": "standard"},
            "1920x1080": {"mode": "pro"},
            "1080x1920": {"mode": "pro"},
        },
        description="Kling 2.1: standard 720p, pro 1080p; the still's shape decides",
    ),
    InputMap(
        "google/veo-3.1",
        "image",
        seconds={8: {"duration": 8}, 4: {"duration": 4}, 6: {"duration": 6}},
        sizes={
            "1280x720": {"aspect_ratio": "16:9", "resolution": "720p"},
            "720x1280": {"aspect_ratio": "9:16", "resolution": "720p"},
            "1920x1080": {"aspect_ratio": "16:9", "resolution": "1080p"},
            "1080x1920": {"aspect_ratio": "9:16", "resolution": "1080p"},
        },
        description="Google Veo 3.1 on Replicate, with audio",
    ),
    InputMap(
        "minimax/hailuo-2.3",
        "first_frame_image",
        seconds={6: {"duration": 6}, 10: {"duration": 10}},
        sizes={"1366x768": {"resolution": "768p"}, "768x1366": {"resolution": "768p"}, **_HD},
        description="MiniMax Hailuo 2.3: 6 or 10 s at 768p, 6 s at 1080p",
    ),
    InputMap(
        "wan-video/wan-2.2-i2v-fast",
        "image",
        seconds={5: {"num_frames": 81, "frames_per_second": 16}},
        sizes={**_480, **_720},
        description="Wan 2.2 image-to-video (fast), 81 frames at 16 fps",
    ),
    InputMap(
        "bytedance/seedance-1-pro",
        "image",
        seconds={n: {"duration": n} for n in (5, 2, 3, 4, *range(6, 13))},
        sizes={**_HD, **_720, **_480},
        description="ByteDance Seedance 1 Pro, 2 to 12 s, up to 1080p",
    ),
)


def replicate_error_fields(response: httpx.Response) -> ErrorFields:
    """Problem details: ``{title, detail, status, invalid_fields: [{field, description}]}``."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        return ErrorFields(message=response.text.strip() or response.reason_phrase)
    invalid = body.get("invalid_fields")
    field = None
    if isinstance(invalid, list) and invalid and isinstance(invalid[0], dict):
        field = str(invalid[0].get("field") or "") or None
    message = body.get("detail") or body.get("title") or response.reason_phrase
    return ErrorFields(message=str(message).strip(), code=body.get("title"), field=field)


class ReplicateBackend(HttpBackend):
    """Replicate's predictions API, at the built-in ``replicate`` profile or another."""

    name = NAME
    description = "image-to-video models on Replicate (Kling, Veo, Hailuo, Wan, Seedance)"

    def error_fields(self, response: httpx.Response) -> ErrorFields:
        return replicate_error_fields(response)

    def maps(self) -> dict[str, InputMap]:
        return mapped_models(self.settings, NAME, MAPS)

    def models(self) -> Sequence[ModelInfo]:
        status = self.availability()
        return [table.model_info(status) for table in self.maps().values()]

    def submit(self, request: GenerationRequest) -> JobStatus:
        table = self.maps().get(request.model)
        if table is None:
            raise RequestError(f"replicate has no mapping for model {request.model!r}")
        table.input_for(request, "")  # refuse what the model does not take before uploading
        hook = self.webhook_url()  # and a bad webhook_url too
        provider = request.parameters.get("provider")
        profile, service = self._pool.get(provider if isinstance(provider, str) else None)
        image = self._upload(service, request.input_image) if request.input_image else None
        body: dict[str, Any] = {"input": table.input_for(request, image)}
        if hook:  # only the end is wanted: it is when polling would act
            body |= {"webhook": hook, "webhook_events_filter": ["completed"]}
        model, _, version = request.model.partition(":")
        if version:
            body["version"] = request.model
            path = "predictions"
        else:
            path = f"models/{model}/predictions"
        prediction = service.json(service.call("POST", path, create=True, json=body))
        status = _status(profile, prediction, service)
        details = dict(status.details)
        details["explanation"] = [
            f"{request.model} at {profile.name} ({profile.host}) as {prediction.get('id')}",
            "input: " + ", ".join(f"{k}={v}" for k, v in body["input"].items()
                                  if k not in (table.image_field, table.prompt_field)),
        ]  # fmt: skip
        return JobStatus(status.job_id, status.state, details=details)

    def derive(self, request: DerivedRequest) -> JobStatus:
        raise BackendError("replicate models cannot remix, edit or extend here", "unsupported")

    def poll(self, job_id: str) -> JobStatus:
        prediction_id, provider = _split(job_id)
        profile, service = self._pool.get(provider)
        found = service.call(
            "GET", f"predictions/{prediction_id}", job=job_id, timeout=service.poll_timeout
        )
        return _status(profile, service.json(found), service)

    def cancel(self, job_id: str) -> JobStatus:
        """``POST /predictions/{id}/cancel``: ``failed`` (code ``cancelled``) once Replicate
        took it, or the prediction as it stands when it had already ended."""
        prediction_id, provider = _split(job_id)
        profile, service = self._pool.get(provider)
        answer = service.json(
            service.call("POST", f"predictions/{prediction_id}/cancel", job=job_id)
        )
        status = _status(profile, answer, service)
        if answer.get("status") in ("starting", "processing", "canceled"):  # asked, or done
            return JobStatus(job_id, JobState.FAILED, error_code="cancelled",
                             error_message=f"canceled at {profile.name}",
                             details=status.details)  # fmt: skip
        return status

    def download(self, job_id: str, variant: Variant, dest: BinaryIO) -> None:
        if variant != Variant.VIDEO:
            raise BackendError(f"replicate has no {variant} variant", "unsupported_variant")
        status = self.poll(job_id)
        if status.state != JobState.COMPLETED:
            code = "expired" if status.error_code == "expired" else "not_ready"
            raise BackendError(status.error_message or f"{job_id} is {status.state}", code)
        _, provider = _split(job_id)
        profile, service = self._pool.get(provider)
        try:  # the delivery host is another origin: the key never goes there
            service.download(status.details["output_url"], dest, job=job_id, authenticated=False)
        except BackendError as exc:
            if exc.code == "unknown_job":
                raise expired_error(job_id, profile.name, None) from None
            raise

    def _upload(self, service: RemoteService, path: Path) -> str:
        """The still, uploaded to the Files API; its URL is what the input carries."""
        mime = still_mime(path, "Replicate")
        files = {"content": (path.name, path.read_bytes(), mime)}
        data = {"filename": path.name, "type": mime}
        uploaded = service.json(service.call("POST", "files", files=files, data=data))
        url = (uploaded.get("urls") or {}).get("get")
        if not isinstance(url, str):
            raise BackendError(f"{service.name} sent a file without a URL", "bad_response")
        return url


def _status(
    profile: ProviderProfile, prediction: dict[str, Any], service: RemoteService
) -> JobStatus:
    """A Prediction as a JobStatus: an output URL, a refusal, a failure or expiry."""
    prediction_id = prediction.get("id")
    state = _STATES.get(str(prediction.get("status")))
    if not isinstance(prediction_id, str) or not _JOB.match(f"{prediction_id}@x") or not state:
        raise BackendError(
            f"{profile.name} sent something that is not a prediction", "bad_response"
        )
    job_id = f"{prediction_id}@{profile.name}"
    details: dict[str, Any] = {"provider": profile.name, "prediction": prediction_id,
                               "model": prediction.get("model")}  # fmt: skip
    if state == JobState.COMPLETED:
        output = prediction.get("output")
        url = output[-1] if isinstance(output, list) and output else output
        if prediction.get("data_removed") or not isinstance(url, str):
            gone = expired_error(job_id, profile.name, None)
            return JobStatus(job_id, JobState.FAILED, error_code="expired",
                             error_message=str(gone), details=details)  # fmt: skip
        details["output_url"] = url
        return JobStatus(job_id, state, progress=100, details=details)
    if state == JobState.FAILED:
        status = str(prediction.get("status"))
        message = redact(
            str(prediction.get("error") or f"the prediction was {status}"), service.key
        )
        return JobStatus(
            job_id,
            state,
            error_code="failed" if status == "failed" else status,
            error_message=message,
            details=details,
            refused=status == "failed" and bool(REFUSAL.search(message)),
        )
    return JobStatus(job_id, state, details=details)


def _split(job_id: str) -> tuple[str, str]:
    match = _JOB.match(job_id)
    if match is None:
        raise BackendError(f"{job_id!r} is not a replicate job id (PREDICTION@PROVIDER)")
    return match["id"], match["provider"]


@hookimpl
def register_backends(register: Callable[[Backend], None], settings: Settings) -> None:
    register(ReplicateBackend(settings))
