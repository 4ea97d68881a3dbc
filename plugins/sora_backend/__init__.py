"""The sora backend: sora-2 and sora-2-pro over the OpenAI Videos API.

One backend, ``sora``, serves every provider profile (:mod:`core.api.providers`): the
request's ``parameters["provider"]`` (``--provider``) picks one, else the configured
default. The job id recorded in the catalog is ``VIDEO_ID@PROVIDER``, so any later process
polls, downloads and derives from the provider that holds the video.

OpenAI's own endpoint for these models shut down on 2026-09-24; compatible providers
serve the same routes. The backend knows that: ``models()`` says where the models are
served, and a request to a retired endpoint fails with a message naming the alternatives
(other profiles, the providers known to serve the API, the offline ``local`` backend),
whether the retirement is known from the calendar or answered by the endpoint itself.

Talking to the service follows the API's own rules: ``seconds`` goes as a string, the
still as a multipart ``input_reference`` that must match ``size`` exactly; rate limits
(429) and server errors are retried with bounded exponential backoff that honours
``retry-after-ms`` and ``Retry-After``; and a create is retried only when it surely did
not arrive, because the API has no idempotency key and a blind retry can start (and
bill) the same video twice.

Polls are status requests with a short timeout of their own (``poll_request_timeout``,
30 s: one that hangs is retried, not waited out for the 600 s a create may take), and
many running jobs are polled together from the list of recent videos (``poll_many``).

The package splits that work by concern: :mod:`.lifecycle` (models, profiles,
retirements), :mod:`.transport` (the API's own HTTP rules on the shared
:mod:`core.api.remote` layer), :mod:`.status` (Video objects as job statuses),
:mod:`.batch` (many statuses from one list); this module is the plugin (the backend,
the request mapping of each route, and its hook) and re-exports the names callers use.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from core.api import (
    Backend,
    BackendError,
    DerivedRequest,
    GenerationRequest,
    JobStatus,
    Relation,
    RemoteJob,
    RequestError,
    Settings,
    Size,
    Variant,
    hookimpl,
)
from core.api.http_backend import ServicePool
from core.api.providers import ProviderProfile, job_id, split_job_id
from core.api.remote import default_error_fields, json_object
from core.api.sniff import still_mime
from plugins.sora_backend.batch import _BatchPoll
from plugins.sora_backend.lifecycle import (
    ALL_SIZES,
    DEFAULT_SIZE,
    LANDSCAPE_PORTRAIT,
    MODELS,
    NAME,
    SECONDS,
    VARIANTS,
)
from plugins.sora_backend.status import REFUSAL, _video_status
from plugins.sora_backend.transport import VideosService

if TYPE_CHECKING:  # annotations only: httpx is imported where a request is made
    import httpx

__all__ = [
    "ALL_SIZES",
    "DEFAULT_SIZE",
    "LANDSCAPE_PORTRAIT",
    "MODELS",
    "NAME",
    "REFUSAL",
    "SECONDS",
    "VARIANTS",
    "SoraBackend",
    "register_backends",
]

_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}

DEFAULT_PAGE_SIZE = 100  # the most GET /videos returns at once


class SoraBackend(_BatchPoll):
    """The Videos API, at whichever provider profile a request names."""

    name = NAME
    description = (
        "sora-2 and sora-2-pro over the OpenAI Videos API, at OpenAI or a compatible provider"
    )

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        today: Callable[[], date] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._pool = ServicePool(
            settings,
            NAME,
            parse_error=default_error_fields,  # {"error": {"message", "code", "param"}}
            user_agent="reelvault-sora/0.1",
            service_class=VideosService,
            transport=transport,
            sleep=sleep,
        )
        self.page_size = int(self._pool.config.get("page_size", DEFAULT_PAGE_SIZE))
        self._today = today or (lambda: datetime.now(UTC).date())
        self._lock = threading.Lock()
        self._created_at: dict[str, int] = {}  # running jobs' creation times, for poll_many
        self._hints: dict[str, float] = {}  # each provider's last poll hint, in seconds

    # --- the Backend protocol ------------------------------------------------------------

    def submit(self, request: GenerationRequest) -> JobStatus:
        sizes = self._model_sizes(request.model)
        if request.seconds not in SECONDS:
            raise RequestError(f"{request.model} takes 4, 8 or 12 seconds, not {request.seconds}")
        if request.size not in sizes:
            raise RequestError(
                f"{request.model} does not make {request.size} (allowed: {', '.join(sizes)})"
            )
        provider = request.parameters.get("provider")
        if provider is not None and not isinstance(provider, str):
            raise RequestError("the provider parameter must be a profile name")
        profile, service = self._connect(provider)
        fields: list[tuple[str, tuple[str | None, Any] | tuple[str, bytes, str]]] = [
            ("prompt", (None, request.prompt)),
            ("model", (None, request.model)),
            ("seconds", (None, str(request.seconds))),  # a string: an integer gets a 400
            ("size", (None, request.size)),
        ]
        if request.input_image is not None:
            fields.append(("input_reference", _input_reference(request.input_image, request.size)))
        response = self._call(profile, service, "POST", "videos", create=True, files=fields)
        return self._status(profile, response)

    def derive(self, request: DerivedRequest) -> JobStatus:
        video_id, provider = _split(request.parent_job_id)
        profile, service = self._connect(provider)
        parent = {"id": video_id}
        body: dict[str, str | dict[str, str]]
        if request.relation == Relation.REMIX_OF:
            path, body = f"videos/{video_id}/remix", {"prompt": request.prompt}
        elif request.relation == Relation.EDIT_OF:
            path, body = "videos/edits", {"prompt": request.prompt, "video": parent}
        elif request.relation == Relation.EXTENSION_OF:
            if request.seconds not in SECONDS:
                raise RequestError(f"an extension is 4, 8 or 12 seconds, not {request.seconds}")
            seconds = str(request.seconds)
            path = "videos/extensions"
            body = {"prompt": request.prompt, "seconds": seconds, "video": parent}
        else:
            raise BackendError(f"sora cannot derive {request.relation}", code="unsupported")
        response = self._call(profile, service, "POST", path, create=True, json=body)
        return self._status(profile, response)

    def poll(self, job_id: str) -> JobStatus:
        video_id, provider = _split(job_id)
        profile, service = self._connect(provider)
        path, timeout = f"videos/{video_id}", service.poll_timeout
        response = self._call(profile, service, "GET", path, job=video_id, timeout=timeout)
        return self._status(profile, response)

    def download(self, job_id: str, variant: Variant, dest: BinaryIO) -> None:
        if variant not in VARIANTS:
            raise BackendError(f"sora has no {variant} variant", code="unsupported_variant")
        video_id, provider = _split(job_id)
        profile, service = self._connect(provider)
        self._download(profile, service, video_id, variant.value, dest)

    def list_jobs(self, scope: str | None = None) -> Iterator[RemoteJob]:
        """Every video the provider's account holds, oldest first (``GET /videos``, paged).

        ``scope`` is a provider profile name; the default profile without one.
        """
        profile, service = self._connect(scope)
        for videos, _headers in self._video_pages(profile, service, "asc"):
            for video in videos:
                yield self._remote_job(profile, video)

    def _status(self, profile: ProviderProfile, response: httpx.Response) -> JobStatus:
        hint = self._poll_hint(profile, response.headers)
        return self._remember(profile, json_object(response, profile.name), hint)

    def _remote_job(self, profile: ProviderProfile, video: Mapping[str, Any]) -> RemoteJob:
        parent = video.get("remixed_from_video_id")
        seconds = str(video.get("seconds") or "0")
        completed_at = video.get("completed_at")
        return RemoteJob(
            status=_video_status(profile, video, None),
            model=str(video.get("model") or ""),
            prompt=str(video.get("prompt") or ""),
            seconds=int(seconds) if seconds.isdigit() else 0,
            size=str(video.get("size") or ""),
            created_at=int(video.get("created_at") or 0),
            completed_at=completed_at if isinstance(completed_at, int) else None,
            parent_job_id=job_id(parent, profile.name) if isinstance(parent, str) else None,
        )


def _split(value: str) -> tuple[str, str]:
    try:
        return split_job_id(value)
    except RequestError as exc:
        raise BackendError(str(exc), code="unknown_job") from None


def _input_reference(path: Path, size: str) -> tuple[str, bytes, str]:
    """The still as the API wants it: JPEG, PNG or WebP of exactly the requested size."""
    from PIL import Image, UnidentifiedImageError  # loaded when a still is sent

    wanted = Size.parse(size)
    mime = still_mime(path, "the Videos API")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except (OSError, UnidentifiedImageError):
        raise RequestError(f"{path.name}: not an image the Videos API can take") from None
    if (width, height) != (wanted.width, wanted.height):
        raise RequestError(
            f"the still is {width}x{height} but the Videos API needs exactly {size}: "
            "pass --fit cover (crop to fill) or --fit contain (letterbox)"
        )
    return f"input_reference.{_EXTENSIONS[mime]}", path.read_bytes(), mime


@hookimpl
def register_backends(register: Callable[[Backend], None], settings: Settings) -> None:
    register(SoraBackend(settings))
