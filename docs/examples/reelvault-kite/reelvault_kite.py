"""reelvault-kite: a remote backend written as a third party would, to be read.

"kite" sends a still and a prompt to the (made-up) Kite video API and brings the clip
back. Everything that makes talking to a remote service safe is reelvault's shared HTTP
layer, :class:`core.api.remote.RemoteService`: bounded retries of 429s and 5xx that
honour ``Retry-After``, never repeating a create that may have arrived, redirects that
keep the key at home, a dropped download reported as worth retrying, and every error
answer turned into one line that names the provider and never the key. What is left
here is the request/response mapping of three routes:

- ``POST /v1/jobs`` ``{model, prompt, seconds, size, image}`` (the still as a data URI)
  answers the job, ``{id, state}``;
- ``GET /v1/jobs/{id}`` answers ``{id, state, progress, error, video_url, expired}``,
  ``state`` being ``queued``, ``running``, ``succeeded`` or ``failed``;
- ``video_url`` is a download link on another host, fetched without the key.

The host does the rest: it records the job id before polling, so ``reelvault resume``
finishes a job whose process stopped, and it catalogs, signs and retries downloads.
"""

from __future__ import annotations

import base64
import os
import re
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import Any, BinaryIO

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
from core.api.providers import Secret
from core.api.remote import RemoteService, expired_error, redact
from core.api.sniff import still_mime

NAME = "kite"
KEY_ENV = "KITE_API_KEY"
BASE_URL_ENV = "KITE_BASE_URL"
DEFAULT_BASE_URL = "https://api.kite.example/v1"
JOB_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")
STATES = {"queued": JobState.QUEUED, "running": JobState.IN_PROGRESS,
          "succeeded": JobState.COMPLETED, "failed": JobState.FAILED}  # fmt: skip
REFUSALS = ("content_refused",)
MODEL = ModelInfo(
    name="kite-1",
    seconds=(4, 8),
    sizes=("1280x720", "720x1280"),
    default_seconds=4,
    default_size="1280x720",
    requires_input_image=True,
    description="Kite 1: 4 or 8 s from a still, 720p landscape or portrait.",
)


class KiteBackend:
    """The Kite video API at ``$KITE_BASE_URL`` (or ``[plugins.kite] base_url``)."""

    name = NAME
    description = "Example remote backend: the Kite video API (reelvault-kite)."

    def __init__(self, settings: Settings) -> None:
        self._config: Mapping[str, Any] = settings.section(NAME)
        self._service: RemoteService | None = None
        self._lock = threading.Lock()

    def models(self) -> Sequence[ModelInfo]:
        return [MODEL]

    def submit(self, request: GenerationRequest) -> JobStatus:
        if request.input_image is None:
            raise RequestError("kite-1 makes clips from a still: give one")
        mime = still_mime(request.input_image, "Kite")
        image = base64.b64encode(request.input_image.read_bytes()).decode()
        body = {"model": request.model, "prompt": request.prompt, "seconds": request.seconds,
                "size": request.size, "image": f"data:{mime};base64,{image}"}  # fmt: skip
        service = self._connect()
        job = service.json(service.call("POST", "jobs", create=True, json=body))
        return self._status(service, job)

    def derive(self, request: DerivedRequest) -> JobStatus:
        raise BackendError("kite cannot remix, edit or extend", code="unsupported")

    def poll(self, job_id: str) -> JobStatus:
        service = self._connect()
        return self._status(
            service, service.json(service.call("GET", f"jobs/{job_id}", job=job_id))
        )

    def download(self, job_id: str, variant: Variant, dest: BinaryIO) -> None:
        if variant != Variant.VIDEO:
            raise BackendError(f"kite has no {variant} variant", code="unsupported_variant")
        status = self.poll(job_id)
        if status.state != JobState.COMPLETED:
            code = "expired" if status.error_code == "expired" else "not_ready"
            raise BackendError(status.error_message or f"{job_id} is {status.state}", code)
        service = self._connect()
        try:  # another host: the key never goes there
            service.download(status.details["video_url"], dest, job=job_id, authenticated=False)
        except BackendError as exc:
            if exc.code == "unknown_job":  # the link is gone: the outputs expired
                raise expired_error(job_id, NAME, None) from None
            raise

    def close(self) -> None:
        with self._lock:
            if self._service is not None:
                self._service.close()
            self._service = None

    # --- the mapping -------------------------------------------------------------------

    def _status(self, service: RemoteService, job: Mapping[str, Any]) -> JobStatus:
        """A Kite job as a JobStatus."""
        job_id, state = job.get("id"), STATES.get(str(job.get("state")))
        if not isinstance(job_id, str) or not JOB_ID.fullmatch(job_id) or state is None:
            raise BackendError(f"{NAME} sent something that is not a job", code="bad_response")
        details = {"kite_job": job_id, "explanation": [f"kite-1 at {service.name} as {job_id}"]}
        if state == JobState.FAILED:
            raw = job.get("error")
            error: Mapping[str, Any] = raw if isinstance(raw, Mapping) else {}
            code = str(error.get("code") or "failed")
            message = redact(str(error.get("message") or "the job failed"), service.key)
            return JobStatus(job_id, state, error_code=code, error_message=message,
                             details=details, refused=code in REFUSALS)  # fmt: skip
        if state == JobState.COMPLETED:
            url = job.get("video_url")
            if job.get("expired") or not isinstance(url, str):
                gone = expired_error(job_id, NAME, None)
                return JobStatus(job_id, JobState.FAILED, error_code="expired",
                                 error_message=str(gone), details=details)  # fmt: skip
            return JobStatus(job_id, state, progress=100, details={**details, "video_url": url})
        progress = job.get("progress")
        return JobStatus(job_id, state, progress=progress if isinstance(progress, int) else 0,
                         details=details)  # fmt: skip

    def _connect(self) -> RemoteService:
        """The service, built on first use and again when the key changes."""
        value = os.environ.get(KEY_ENV)
        if not value:
            raise BackendError(f"no API key for provider {NAME}: set ${KEY_ENV}", code="auth")
        key = Secret(value)
        with self._lock:
            if self._service is None or self._service.key != key:
                if self._service is not None:
                    self._service.close()
                base_url = os.environ.get(BASE_URL_ENV) or self._config.get("base_url")
                self._service = RemoteService(
                    NAME,
                    str(base_url or DEFAULT_BASE_URL),
                    key,
                    {"Authorization": f"Bearer {key.reveal()}"},
                    key_source=f"${KEY_ENV}",
                    key_fix=f"export {KEY_ENV}=<your key>",
                    config=self._config,
                    user_agent="reelvault-kite/0.1",
                )
            return self._service


@hookimpl
def register_backends(register: Callable[[Backend], None], settings: Settings) -> None:
    register(KiteBackend(settings))
