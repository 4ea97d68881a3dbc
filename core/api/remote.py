"""Shared mechanics for remote (HTTP) backends: one client, one set of rules.

Every remote backend talks to a service the same way: send a request with the key in a
header, repeat it a bounded number of times when the service is busy (429) or broken
(5xx) while honouring ``Retry-After``, never repeat a *create* that may have arrived
(the service could start and bill the job twice), follow redirects without handing the
key to another origin, and turn every error answer into one clear line that names the
provider, the field the service complained about and what to do, never the key.

:class:`RemoteService` does all of that; a backend supplies only how its provider
writes errors (:data:`ErrorParser`). The helpers below it (:func:`retry_after`,
:func:`redact`, :func:`send_keeping_key`, :func:`json_object`) are public for backends
with needs of their own; every built-in remote backend calls through
:class:`RemoteService`, most through a :class:`~core.api.http_backend.ServicePool`.

This module is part of the plugin API: third-party backends may import it.
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import TYPE_CHECKING, Any, BinaryIO

from core.api.deferred import deferred_import
from core.api.errors import BackendError
from core.api.providers import Secret
from core.api.times import timestamp_text

if TYPE_CHECKING:
    import httpx
    import tenacity
else:  # imported at first use: loading a backend plugin must not cost the HTTP stack
    httpx = deferred_import("httpx")
    tenacity = deferred_import("tenacity")

__all__ = [
    "CHUNK",
    "DEFAULT_MAX_RETRIES",
    "ErrorFields",
    "ErrorParser",
    "RemoteService",
    "default_error_fields",
    "expired_error",
    "json_object",
    "redact",
    "request_timeout",
    "retry_after",
    "send_keeping_key",
]

DEFAULT_MAX_RETRIES = 4
DEFAULT_MAX_RETRY_WAIT = 120.0
DEFAULT_TIMEOUT = 600.0
DEFAULT_POLL_REQUEST_TIMEOUT = 30.0
DEFAULT_CONNECT_TIMEOUT = 5.0
MAX_REDIRECTS = 5
JOIN_LIMIT = 32 << 20  # request bodies up to this size are sent from one buffer
MESSAGE_LIMIT = 300
CHUNK = 1 << 16
SECRETISH = re.compile(
    r"\b((sk|sess|whsec|key|r8)[-_][A-Za-z0-9_\-*.]{4,}|AIza[A-Za-z0-9_\-]{20,})"
)
"""Anything shaped like a key (OpenAI, Replicate ``r8_``, Google ``AIza``), even one we
were not given, is taken out of messages a service sends back."""


@dataclass(frozen=True)
class ErrorFields:
    """What a provider said in an error answer, as far as it said it.

    ``auth`` marks an answer that means the key was not accepted even when the status is
    not 401 (Google answers a bad key with 400 ``API_KEY_INVALID``); ``retry_after`` is a
    wait the body asked for (Google's ``RetryInfo``), used when no header gives one.
    """

    message: str
    code: str | None = None
    field: str | None = None
    auth: bool = False
    retry_after: float | None = None


ErrorParser = Callable[["httpx.Response"], ErrorFields]


def default_error_fields(response: httpx.Response) -> ErrorFields:
    """``{"error": {"message", "code", "param"}}``, ``{"detail": ...}`` or plain text."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        error = body.get("error")
        if isinstance(error, dict):
            return ErrorFields(
                message=str(error.get("message") or response.reason_phrase),
                code=None if error.get("code") is None else str(error.get("code")),
                field=None if error.get("param") is None else str(error.get("param")),
            )
        for key in ("detail", "error", "message", "title"):
            if isinstance(body.get(key), str):
                return ErrorFields(message=body[key])
    return ErrorFields(message=response.text.strip() or response.reason_phrase)


class _Transient(Exception):
    """A failed attempt worth repeating; carries the error to raise if retries run out."""

    def __init__(self, error: BackendError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class RemoteService:
    """One provider's HTTP API: a connection pool, the key, the retry and error rules.

    ``name`` is how messages name the provider (a profile name), ``key_source`` where
    the key came from (``$GEMINI_API_KEY``, never the key) and ``key_fix`` the command
    that sets another one.

    A provider with rules of its own subclasses it and overrides :meth:`should_retry`
    (a header that says whether to repeat) or :meth:`error` (more in its one line).
    """

    create_recovery = ""
    """Said after "the job may have been created, so it was not sent again": how to find it."""

    def __init__(
        self,
        name: str,
        base_url: str,
        key: Secret,
        auth_headers: Mapping[str, str],
        *,
        key_source: str,
        key_fix: str,
        parse_error: ErrorParser = default_error_fields,
        config: Mapping[str, Any] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
        user_agent: str = "reelvault/0.1",
    ) -> None:
        config = config or {}
        self.name = name
        self.key = key
        self.auth_headers = dict(auth_headers)
        self.key_source = key_source
        self.key_fix = key_fix
        self.parse_error = parse_error
        self.max_retries = int(config.get("max_retries", DEFAULT_MAX_RETRIES))
        self.max_retry_wait = float(config.get("max_retry_wait", DEFAULT_MAX_RETRY_WAIT))
        self._sleep = sleep
        self._lock = threading.Lock()
        self.poll_timeout = request_timeout(config, poll=True)  # a poll's ``timeout=``
        self.client = httpx.Client(
            base_url=base_url.rstrip("/") + "/",
            timeout=request_timeout(config),
            follow_redirects=False,  # followed by send_keeping_key, which guards the key
            headers={"User-Agent": user_agent},
            transport=transport,
        )

    def close(self) -> None:
        self.client.close()

    def call(
        self,
        method: str,
        url: str,
        *,
        create: bool = False,
        job: str | None = None,
        stream: bool = False,
        authenticated: bool = True,
        **content: Any,
    ) -> httpx.Response:
        """One API call with bounded retries; a 2xx response, or :class:`BackendError`.

        ``create`` marks a request that starts a (billed) job: it is repeated only when
        it surely did not arrive (no connection was made, or a 408/429 refusal), never
        after a timeout or a 5xx. ``job`` names the job a 404 is about. ``url`` may be
        absolute (a download link); the key goes only to the service's own origin. A
        status request passes ``timeout=self.poll_timeout`` (:func:`request_timeout`).
        """
        headers = self.auth_headers if authenticated else {}

        def attempt() -> httpx.Response:
            request = self.client.build_request(method, url, headers=headers, **content)
            if authenticated and _origin(request.url) != _origin(self.client.base_url):
                for name in headers:  # an absolute URL elsewhere never gets the key
                    request.headers.pop(name, None)
            try:
                response = send_keeping_key(self.client, request, stream, headers)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                raise _Transient(self._network_error(exc)) from None
            except httpx.TransportError as exc:
                error = self._network_error(exc)
                if create:
                    raise BackendError(
                        f"{error}; the job may have been created, so it was not sent again"
                        f"{self.create_recovery}",
                        code="network",
                    ) from None
                raise _Transient(error) from None
            if response.is_success:
                return response
            response.read()
            response.close()
            fields = self.parse_error(response)
            error = self.error(response, fields, job=job, create=create)
            if not self.should_retry(response, create, fields):
                raise error
            hint = retry_after(response.headers)
            hint = fields.retry_after if hint is None else hint
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

    def download(
        self, url: str, dest: BinaryIO, *, job: str, authenticated: bool, **content: Any
    ) -> None:
        """Stream ``url`` into ``dest`` (``content``: as for :meth:`call`); a connection cut
        part-way is a transient error."""
        response = self.call("GET", url, job=job, stream=True, authenticated=authenticated,
                             **content)  # fmt: skip
        try:
            for chunk in response.iter_bytes(CHUNK):
                dest.write(chunk)
        except httpx.TransportError as exc:
            raise BackendError(
                f"the download of {job} from {self.name} broke off ({type(exc).__name__})",
                code="download_interrupted",
                transient=True,
            ) from None
        finally:
            response.close()

    def should_retry(self, response: httpx.Response, create: bool, fields: ErrorFields) -> bool:
        """Whether an error answer is worth repeating: never a refused key; a create only
        when it surely made no job (408, 429); anything else on 408, 429 and 5xx."""
        status = response.status_code
        if fields.auth:
            return False
        if create:  # refused before any job was made: safe to send again
            return status in (408, 429)
        return status in (408, 429) or status >= 500

    def json(self, response: httpx.Response) -> dict[str, Any]:
        return json_object(response, self.name)

    def error(
        self,
        response: httpx.Response,
        fields: ErrorFields,
        *,
        job: str | None = None,
        create: bool = False,
    ) -> BackendError:
        """One clear line for an error answer; never the key, nor the service's echo of it."""
        status = response.status_code
        message = redact(fields.message, self.key)
        if status == 401 or fields.auth:
            return BackendError(
                f"provider {self.name} did not accept the API key from {self.key_source} "
                f"(HTTP {status}); set a valid one with `{self.key_fix}`",
                code="auth",
            )
        if status == 403:
            return BackendError(
                f"provider {self.name} refused access (HTTP 403): {message}; check that the "
                f"key from {self.key_source} may use this API",
                code="forbidden",
            )
        if status in (404, 410) and job is not None:
            return BackendError(
                f"{job} is not known at {self.name} (HTTP {status}): it was deleted there, "
                "or it is gone after its outputs expired",
                code="unknown_job",
            )
        if status in (400, 404, 409, 422):
            where = f" (field {fields.field})" if fields.field else ""
            return BackendError(
                f"{self.name} refused the request: {message}{where}", code="invalid_request"
            )
        if status == 429:
            return BackendError(
                f"{self.name} is rate limiting requests (HTTP 429): {message}",
                code="rate_limited",
                transient=True,
            )
        maybe = (
            "; the job may or may not have been created, so it was not sent again"
            f"{self.create_recovery}"
            if create and status >= 500
            else ""
        )
        return BackendError(
            f"{self.name} failed (HTTP {status}): {message}{maybe}",
            code="server_error" if status >= 500 else f"http_{status}",
            transient=status >= 500 and not create,
        )

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """The service's hint when it gives one, else jittered exponential backoff."""
        error = state.outcome.exception() if state.outcome else None
        hint = error.retry_after if isinstance(error, _Transient) else None
        if hint is not None and 0 <= hint <= self.max_retry_wait:
            return hint
        backoff = min(0.5 * 2 ** (state.attempt_number - 1), 8.0)
        return backoff * (1 - 0.25 * random.random())

    def _network_error(self, exc: httpx.TransportError) -> BackendError:
        kind = "did not answer in time" if isinstance(exc, httpx.TimeoutException) else "failed"
        return BackendError(
            f"the connection to {self.name} {kind} ({type(exc).__name__})",
            code="network",
            transient=True,
        )


def request_timeout(config: Mapping[str, Any], *, poll: bool = False) -> httpx.Timeout:
    """How long one request may take, per a backend's ``[plugins.NAME]`` settings: a
    create or download ``timeout`` (600 s, as the SDK); a status request (``poll``: a
    poll, a list page) ``poll_request_timeout`` (30 s), so one that hangs is retried
    instead of holding its job, and every job polled with it, for ten minutes."""
    read = "poll_request_timeout" if poll else "timeout"
    default = DEFAULT_POLL_REQUEST_TIMEOUT if poll else DEFAULT_TIMEOUT
    return httpx.Timeout(
        float(config.get(read, default)),
        connect=float(config.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
    )


def expired_error(job: str, provider: str, expired_at: float | None) -> BackendError:
    """The one line for outputs a provider no longer serves."""
    when = f" at {timestamp_text(expired_at)} UTC" if expired_at is not None else ""
    return BackendError(
        f"the outputs of {job} at {provider} expired{when}; they can no longer be "
        "downloaded (generate again)",
        code="expired",
    )


def json_object(response: httpx.Response, provider: str) -> dict[str, Any]:
    """The response's JSON object, or a clear error naming the provider."""
    try:
        data = response.json()
    except ValueError:
        raise BackendError(
            f"{provider} sent a response that is not JSON", code="bad_response"
        ) from None
    if not isinstance(data, dict):
        raise BackendError(f"{provider} sent an unexpected response", code="bad_response")
    return data


def redact(text: str, key: Secret | None = None) -> str:
    """One line, short, with the key and anything shaped like a key taken out."""
    text = " ".join(text.split())
    if key is not None and key.reveal():
        text = text.replace(key.reveal(), "[key]")
    text = SECRETISH.sub("[redacted]", text)
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def retry_after(headers: httpx.Headers) -> float | None:
    """``retry-after-ms``, else ``Retry-After`` in seconds or as an HTTP date."""
    if (ms := headers.get("retry-after-ms")) is not None:
        try:
            return float(ms) / 1000
        except ValueError:
            pass
    value = headers.get("retry-after")
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def send_keeping_key(
    client: httpx.Client, request: httpx.Request, stream: bool, auth: Mapping[str, str]
) -> httpx.Response:
    """Send ``request``, following redirects without handing the key to another origin.

    httpx drops only ``Authorization`` on a cross-origin redirect, so a key in any other
    header (Azure's ``api-key``, Google's ``x-goog-api-key``) would travel to wherever a
    ``Location`` pointed. Every header the key travels in is dropped once the origin
    (scheme, host, port) changes, and never put back by a later hop. A body of known,
    modest size goes out whole: a multipart create would take a send per part (~18).
    """
    if int(request.headers.get("content-length") or JOIN_LIMIT + 1) <= JOIN_LIMIT:
        request.read()  # one buffer, and a stream a 307/308 hop can send again
    origin = _origin(request.url)
    for _hop in range(MAX_REDIRECTS + 1):
        response = client.send(request, stream=stream)
        if not response.has_redirect_location:
            return response
        response.read()
        response.close()
        target = request.url.join(response.headers["location"])
        method = request.method
        if response.status_code == 303 or (response.status_code in (301, 302) and method == "POST"):
            method = "GET"  # what browsers and httpx do; 307/308 repeat the request
        headers = httpx.Headers(request.headers)
        headers["Host"] = target.netloc.decode("ascii")
        if _origin(target) != origin:
            for name in auth:
                headers.pop(name, None)
        body: httpx.SyncByteStream | None = request.stream  # type: ignore[assignment]  # a sync client's request holds a sync stream
        if method != request.method:
            for name in ("content-length", "content-type", "transfer-encoding"):
                headers.pop(name, None)
            body = None
        request = httpx.Request(
            method, target, headers=headers, stream=body, extensions=request.extensions
        )
    raise BackendError(
        f"more than {MAX_REDIRECTS} redirects from {origin[1]}; not followed further",
        code="redirects",
    )


def _origin(url: httpx.URL) -> tuple[str, str, int | None]:
    return url.scheme, url.host, url.port
