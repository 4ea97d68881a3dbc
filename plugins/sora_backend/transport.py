"""The HTTP side of the Videos API: the shared remote layer, with this API's own rules.

Retries (bounded, honouring ``retry-after-ms`` and ``Retry-After``, never a create that
may have arrived), redirects that keep the key at home, the key check and the one-line
errors are :mod:`core.api.remote`'s, as for every remote backend. What is said here is
only what the Videos API does differently: it may answer ``x-should-retry`` to say
whether to repeat a call, it retries a 409 of a read, its answers carry an
``x-request-id`` worth quoting, an endpoint that was shut down answers 404 ``Invalid
URL`` (or 410), and a job whose answer was lost can be found again with ``reelvault
sync``.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, BinaryIO

from core.api import BackendError, JobState
from core.api.http_backend import ServicePool
from core.api.providers import ProviderProfile
from core.api.remote import ErrorFields, RemoteService, expired_error, json_object
from plugins.sora_backend.lifecycle import _Lifecycle

if TYPE_CHECKING:  # annotations only: httpx is imported where a request is made
    import httpx

_RETIRED = re.compile(r"deprecat|retired|shut ?down|no longer (available|supported)", re.I)


class VideosService(RemoteService):
    """One provider profile of the Videos API."""

    create_recovery = " (`reelvault sync` imports it if it was)"

    def should_retry(self, response: httpx.Response, create: bool, fields: ErrorFields) -> bool:
        """``x-should-retry`` decides when the service sends it; a read's 409 is repeated."""
        flag = response.headers.get("x-should-retry")
        if flag in ("true", "false"):
            return flag == "true"
        if not create and response.status_code == 409:
            return True
        return super().should_retry(response, create, fields)

    def error(
        self,
        response: httpx.Response,
        fields: ErrorFields,
        *,
        job: str | None = None,
        create: bool = False,
    ) -> BackendError:
        """The shared line plus the request id; a retired endpoint as code ``retired``
        (the backend words it, since it knows which other profiles serve the API)."""
        status = response.status_code
        if (
            status == 410
            or (status == 404 and fields.message.startswith("Invalid URL"))
            or (fields.code == "model_not_found" and _RETIRED.search(fields.message))
        ):
            return BackendError(f"{self.name} answers like a retired endpoint", code="retired")
        request_id = response.headers.get("x-request-id")
        ref = f" [request {request_id}]" if request_id else ""
        if create and status >= 500 and self.should_retry(response, create, fields):
            plain = super().error(response, fields, job=job)
            return BackendError(
                f"{plain}; it was sent again as the service asked (x-should-retry), and any "
                f"attempt may have created a job (`reelvault sync` imports those that did){ref}",
                code=plain.code,
            )
        error = super().error(response, fields, job=job, create=create)
        return BackendError(f"{error}{ref}", code=error.code, transient=error.transient)


class _Transport(_Lifecycle):
    """The calls :class:`plugins.sora_backend.SoraBackend` makes, through one
    :class:`VideosService` per provider profile (its constructor sets ``_pool``)."""

    _pool: ServicePool

    def close(self) -> None:
        """Close the connection pools (the host calls this when the application closes)."""
        self._pool.close()

    def _connect(self, provider: str | None) -> tuple[ProviderProfile, VideosService]:
        """The profile and its service, refusing a retired endpoint before the key is
        looked at and before anything is sent."""
        profile = self._serving_profile(provider)
        _, service = self._pool.get(profile.name)
        assert isinstance(service, VideosService)
        return profile, service

    def _call(
        self,
        profile: ProviderProfile,
        service: VideosService,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | None = None,
        **options: Any,
    ) -> httpx.Response:
        """One API call (see :meth:`RemoteService.call`), with the profile's query
        (Azure's ``api-version``) on every request."""
        try:
            return service.call(method, path, params={**profile.query, **(params or {})}, **options)
        except BackendError as exc:
            raise self._worded(profile, exc) from None

    def _download(
        self,
        profile: ProviderProfile,
        service: VideosService,
        video_id: str,
        variant: str,
        dest: BinaryIO,
    ) -> None:
        """Stream one variant; a 404 says why there is no content (expired, unfinished)."""
        params = {**profile.query, "variant": variant}
        try:
            service.download(
                f"videos/{video_id}/content", dest, job=video_id, authenticated=True, params=params
            )
        except BackendError as exc:
            if exc.code in ("unknown_job", "invalid_request"):
                raise self._why_no_content(profile, service, video_id, exc) from None
            raise self._worded(profile, exc) from None

    def _worded(self, profile: ProviderProfile, error: BackendError) -> BackendError:
        if error.code == "retired":
            return BackendError(self._retired_message(profile, None), code="retired")
        return error

    def _why_no_content(
        self,
        profile: ProviderProfile,
        service: VideosService,
        video_id: str,
        error: BackendError,
    ) -> BackendError:
        """Tell expired outputs (and unfinished jobs) apart from a plain failure."""
        try:
            video = json_object(
                self._call(profile, service, "GET", f"videos/{video_id}", job=video_id),
                profile.name,
            )
        except BackendError:
            return error
        expires_at = video.get("expires_at")
        if isinstance(expires_at, int) and expires_at <= time.time():
            return expired_error(video_id, profile.name, expires_at)
        if video.get("status") != JobState.COMPLETED:
            return BackendError(
                f"{video_id} is {video.get('status')}, not completed: nothing to download yet",
                code="not_ready",
            )
        return error
