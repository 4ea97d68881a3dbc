"""The HTTP side of the Videos API: one call with bounded retries, and its errors in words.

Kept apart from the request mapping and the status mapping because the retry rules
(which attempts may be repeated, for how long, and never a create that may have arrived)
and the error wording (never the key, nor the service's echo of it) are one concern that
every route shares.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from core.api import BackendError, JobState
from core.api.deferred import deferred_import
from core.api.providers import ProviderProfile, Secret, key_source
from core.api.remote import redact, retry_after, send_keeping_key
from plugins.sora_backend.lifecycle import _Lifecycle
from plugins.sora_backend.status import _json

if TYPE_CHECKING:
    import httpx
    import tenacity
else:  # imported at first use (core.api.deferred): loading the plugins stays quick
    httpx = deferred_import("httpx")
    tenacity = deferred_import("tenacity")

_RETIRED = re.compile(r"deprecat|retired|shut ?down|no longer (available|supported)", re.I)


class _Transient(Exception):
    """A failed attempt worth repeating; carries the error to raise if retries run out."""

    def __init__(self, error: BackendError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class _Transport(_Lifecycle):
    """Connection pools per provider profile and the calls made through them.

    A base of :class:`plugins.sora_backend.SoraBackend`, whose constructor sets the
    attributes declared here.
    """

    max_retries: int
    max_retry_wait: float
    timeout: httpx.Timeout
    _transport: httpx.BaseTransport | None
    _sleep: Callable[[float], None]
    _clients: dict[str, httpx.Client]
    _lock: threading.Lock

    def close(self) -> None:
        """Close the connection pools (the host calls this when the application closes)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    def _client(self, profile: ProviderProfile) -> httpx.Client:
        with self._lock:
            client = self._clients.get(profile.name)
            if client is None:
                client = httpx.Client(
                    base_url=profile.api_root + "/",
                    timeout=self.timeout,
                    follow_redirects=False,  # followed by _send, which guards the key
                    headers={"User-Agent": "reelvault-sora/0.1"},
                    transport=self._transport,
                )
                self._clients[profile.name] = client
            return client

    def _call(
        self,
        profile: ProviderProfile,
        key: Secret,
        method: str,
        path: str,
        *,
        create: bool = False,
        video_id: str | None = None,
        stream: bool = False,
        params: Mapping[str, str | int] | None = None,
        **content: Any,
    ) -> httpx.Response:
        """One API call with bounded retries; returns a 2xx response or raises BackendError.

        ``create`` marks a request that starts a job: it is repeated only when it surely
        did not arrive (no connection was made, or the service refused it with 408/429
        or said ``x-should-retry: true``), never after a timeout or a 5xx, when the job
        may exist already.
        """
        client = self._client(profile)

        def attempt() -> httpx.Response:
            request = client.build_request(
                method,
                path,
                params={**profile.query, **(params or {})},
                headers=profile.auth_headers(key),
                **content,
            )
            try:
                response = send_keeping_key(client, request, stream, profile.auth_headers(key))
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise _Transient(self._network_error(profile, exc)) from None
            except httpx.TransportError as exc:
                error = self._network_error(profile, exc)
                if create:
                    raise BackendError(
                        f"{error}; the job may have been created, so it was not sent again "
                        "(`reelvault sync` imports it if it was)",
                        code="network",
                    ) from None
                raise _Transient(error) from None
            if response.is_success:
                return response
            response.read()
            response.close()
            retry = _should_retry(response, create)
            error = self._error(profile, key, response, video_id, create, retry)
            if not retry:
                raise error
            hint = retry_after(response.headers)
            if hint is not None and hint > self.max_retry_wait:
                raise BackendError(
                    f"{error} (the service asks to wait {hint:.0f} s; try again later)",
                    code=error.code,
                    transient=True,
                )
            raise _Transient(error, hint)

        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_retries + 1),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type(_Transient),
            sleep=self._sleep,
            reraise=True,
        )
        try:
            return retrying(attempt)
        except _Transient as exc:
            raise exc.error from None

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The service's hint when it gives one, else the SDK's jittered backoff."""
        error = state.outcome.exception() if state.outcome else None
        hint = error.retry_after if isinstance(error, _Transient) else None
        if hint is not None and 0 <= hint <= self.max_retry_wait:
            return hint
        backoff = min(0.5 * 2 ** (state.attempt_number - 1), 8.0)
        return backoff * (1 - 0.25 * random.random())

    def _network_error(self, profile: ProviderProfile, exc: httpx.TransportError) -> BackendError:
        kind = "did not answer in time" if isinstance(exc, httpx.TimeoutException) else "failed"
        return BackendError(
            f"the connection to {profile.name} ({profile.host}) {kind} ({type(exc).__name__})",
            code="network",
            transient=True,
        )

    def _error(
        self,
        profile: ProviderProfile,
        key: Secret,
        response: httpx.Response,
        video_id: str | None,
        create: bool,
        retried: bool = False,
    ) -> BackendError:
        """One clear line for an error answer; never the key, nor the service's echo of it.

        ``retried`` says the call is being repeated (a create only when the service says
        ``x-should-retry: true``), so the message must not claim it was sent once.
        """
        status = response.status_code
        code, message, param = _error_fields(response, key)
        request_id = response.headers.get("x-request-id")
        ref = f" [request {request_id}]" if request_id else ""
        if status == 410 or (status == 404 and message.startswith("Invalid URL")):
            return BackendError(self._retired_message(profile, None), code="retired")
        if code == "model_not_found" and _RETIRED.search(message):
            return BackendError(self._retired_message(profile, None), code="retired")
        if status == 401:
            return BackendError(
                f"provider {profile.name} did not accept the API key from "
                f"{key_source(self.settings, profile)} (HTTP 401); set a valid one with "
                f"`reelvault keys set {profile.name}`{ref}",
                code="auth",
            )
        if status == 403:
            return BackendError(
                f"provider {profile.name} refused access (HTTP 403): {message}; check that "
                f"the key from {key_source(self.settings, profile)} may use the Videos API{ref}",
                code="forbidden",
            )
        if status == 404 and video_id is not None:
            return BackendError(
                f"{video_id} is not known at {profile.name} (HTTP 404): it was deleted there, "
                f"or it is gone after its outputs expired{ref}",
                code="unknown_job",
            )
        if status in (400, 404, 409, 422):
            where = f" (parameter {param})" if param else ""
            return BackendError(
                f"{profile.name} refused the request: {message}{where}{ref}",
                code="invalid_request",
            )
        if status == 429:
            return BackendError(
                f"{profile.name} is rate limiting requests (HTTP 429): {message}{ref}",
                code="rate_limited",
                transient=True,
            )
        maybe = ""
        if create and retried:
            maybe = (
                "; it was sent again as the service asked (x-should-retry), and any attempt "
                "may have created a job (`reelvault sync` imports those that did)"
            )
        elif create:
            maybe = (
                "; the job may or may not have been created, so it was not sent again "
                "(`reelvault sync` imports it if it was)"
            )
        return BackendError(
            f"{profile.name} failed (HTTP {status}): {message}{maybe}{ref}",
            code="server_error" if status >= 500 else f"http_{status}",
            transient=status >= 500 and not create,
        )

    def _why_no_content(
        self, profile: ProviderProfile, key: Secret, video_id: str, error: BackendError
    ) -> BackendError:
        """Tell expired outputs (and unfinished jobs) apart from a plain failure."""
        try:
            video = _json(
                self._call(profile, key, "GET", f"videos/{video_id}", video_id=video_id), profile
            )
        except BackendError:
            return error
        expires_at = video.get("expires_at")
        if isinstance(expires_at, int) and expires_at <= time.time():
            when = datetime.fromtimestamp(expires_at, UTC).isoformat(timespec="seconds")
            return BackendError(
                f"the outputs of {video_id} at {profile.name} expired at {when}; "
                "they can no longer be downloaded (remix or generate again)",
                code="expired",
            )
        if video.get("status") != JobState.COMPLETED:
            return BackendError(
                f"{video_id} is {video.get('status')}, not completed: nothing to download yet",
                code="not_ready",
            )
        return error


def _error_fields(response: httpx.Response, key: Secret) -> tuple[str | None, str, str | None]:
    """``(code, message, param)`` from an error body, tolerating any shape, redacted."""
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        text = response.text.strip() or response.reason_phrase
        return None, redact(text, key), None
    code = error.get("code")
    param = error.get("param")
    message = str(error.get("message") or response.reason_phrase)
    return (
        str(code) if code is not None else None,
        redact(message, key),
        str(param) if param is not None else None,
    )


def _should_retry(response: httpx.Response, create: bool) -> bool:
    flag = response.headers.get("x-should-retry")
    if flag in ("true", "false"):
        return flag == "true"
    if create:  # refused before any job was made: safe to send again
        return response.status_code in (408, 429)
    return response.status_code in (408, 409, 429) or response.status_code >= 500
