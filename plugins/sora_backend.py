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
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, BinaryIO

import httpx
import tenacity

from core.api import (
    Backend,
    BackendError,
    DerivedRequest,
    GenerationRequest,
    JobState,
    JobStatus,
    ModelInfo,
    ReelvaultError,
    Relation,
    RemoteJob,
    RequestError,
    Settings,
    Size,
    Variant,
    hookimpl,
)
from core.api.providers import (
    KNOWN_PROVIDERS,
    RETIREMENTS,
    ProviderProfile,
    Secret,
    api_key,
    get_profile,
    job_id,
    key_source,
    load_profiles,
    split_job_id,
)
from core.api.remote import redact, retry_after, send_keeping_key, still_mime

NAME = "sora"
SECONDS = (4, 8, 12)
LANDSCAPE_PORTRAIT = ("720x1280", "1280x720")
ALL_SIZES = ("720x1280", "1280x720", "1024x1792", "1792x1024")
DEFAULT_SIZE = "720x1280"  # the API's own default
MODELS: tuple[tuple[str, tuple[str, ...], str], ...] = (
    ("sora-2", LANDSCAPE_PORTRAIT, "Sora 2 (an alias: sora-2-2025-12-08 since 2026-01-13)"),
    ("sora-2-pro", ALL_SIZES, "Sora 2 Pro: higher fidelity, portrait and landscape up to 1792"),
    ("sora-2-2025-12-08", LANDSCAPE_PORTRAIT, "Sora 2, dated snapshot"),
    ("sora-2-2025-10-06", LANDSCAPE_PORTRAIT, "Sora 2, dated snapshot"),
    ("sora-2-pro-2025-10-06", ALL_SIZES, "Sora 2 Pro, dated snapshot"),
)
VARIANTS = (Variant.VIDEO, Variant.THUMBNAIL, Variant.SPRITESHEET)
_EXTENSIONS = {"image/jpeg": "jpg", "image/png": "png", "image/webp": "webp"}

REFUSAL = re.compile(r"moderation|content[_ ]?policy|safety|refus|blocked", re.IGNORECASE)
"""Failure codes or messages that mean the service declined the content itself."""
_RETIRED = re.compile(r"deprecat|retired|shut ?down|no longer (available|supported)", re.I)

DEFAULT_MAX_RETRIES = 4
DEFAULT_PAGE_SIZE = 100  # the most GET /videos returns at once
DEFAULT_MAX_RETRY_WAIT = 120.0
DEFAULT_TIMEOUT = 600.0
DEFAULT_CONNECT_TIMEOUT = 5.0
CHUNK = 1 << 16


class _Transient(Exception):
    """A failed attempt worth repeating; carries the error to raise if retries run out."""

    def __init__(self, error: BackendError, retry_after: float | None = None) -> None:
        super().__init__(str(error))
        self.error = error
        self.retry_after = retry_after


class SoraBackend:
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
        config = settings.section(NAME)
        self.max_retries = int(config.get("max_retries", DEFAULT_MAX_RETRIES))
        self.max_retry_wait = float(config.get("max_retry_wait", DEFAULT_MAX_RETRY_WAIT))
        self.page_size = int(config.get("page_size", DEFAULT_PAGE_SIZE))
        self.timeout = httpx.Timeout(
            float(config.get("timeout", DEFAULT_TIMEOUT)),
            connect=float(config.get("connect_timeout", DEFAULT_CONNECT_TIMEOUT)),
        )
        self._transport = transport
        self._today = today or (lambda: datetime.now(UTC).date())
        self._sleep = sleep
        self._clients: dict[str, httpx.Client] = {}
        self._lock = threading.Lock()

    # --- models and lifecycle ------------------------------------------------------------

    def models(self) -> Sequence[ModelInfo]:
        status = self._lifecycle_status()
        return [
            ModelInfo(
                name=model,
                seconds=SECONDS,
                sizes=sizes,
                default_seconds=SECONDS[0],
                default_size=DEFAULT_SIZE,
                accepts_input_image=True,
                supports_remix=True,
                supports_edit=True,
                supports_extension=True,
                variants=VARIANTS,
                # A remix or edit takes a prompt only; an extension adds seconds at the
                # parent's size. Other values would be ignored by the service.
                derive_keeps_seconds=(Relation.REMIX_OF, Relation.EDIT_OF),
                derive_keeps_size=(Relation.REMIX_OF, Relation.EDIT_OF, Relation.EXTENSION_OF),
                status=status,
                description=description,
            )
            for model, sizes, description in MODELS
        ]

    def _lifecycle_status(self) -> str:
        """Where the models are served, for ``reelvault models``; never raises."""
        try:
            profiles = load_profiles(self.settings, NAME)
            default = get_profile(self.settings)
        except ReelvaultError as exc:
            return f"misconfigured: {exc}"
        today = self._today()
        alternatives = _serving(profiles, default, today)
        retired = default.retired_since(today)
        if retired is not None:
            text = f"retired at {default.host} since {retired}"
            if alternatives:
                return f"{text}; served by {', '.join(alternatives)} (--provider)"
            return f"{text}; add a provider (`reelvault providers add`)"
        notes = [f"available via {default.name} ({default.host})"]
        for host, when in RETIREMENTS.items():
            verb = "retired" if today >= when else "retiring"
            notes.append(f"{verb} at {host} {'since' if today >= when else 'on'} {when}")
        return "; ".join(dict.fromkeys(notes))

    def _retired_message(self, profile: ProviderProfile, since: date | None) -> str:
        today = self._today()
        try:
            profiles = load_profiles(self.settings, NAME)
        except ReelvaultError:
            profiles = {}
        others = _serving(profiles, profile, today)
        when = f" since {since}" if since else ""
        hints = []
        if others:
            hints.append("use another provider: " + ", ".join(f"--provider {o}" for o in others))
        addable = [cmd for name, cmd in KNOWN_PROVIDERS.items() if name not in profiles]
        if addable:
            hints.append("add one that serves it: " + " or ".join(f"`{c}`" for c in addable))
        hints.append(
            "or use another backend: --backend veo -m veo-3.0-generate-001 (Google), "
            "--backend fal or --backend replicate (`reelvault models` lists their models)"
        )
        hints.append("or make clips offline with --backend local")
        return (
            f"the Videos API is retired at {profile.host}{when} (provider {profile.name}); "
            + "; ".join(hints)
        )

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
        profile, key = self._connect(provider)
        fields: list[tuple[str, tuple[str | None, Any] | tuple[str, bytes, str]]] = [
            ("prompt", (None, request.prompt)),
            ("model", (None, request.model)),
            ("seconds", (None, str(request.seconds))),  # a string: an integer gets a 400
            ("size", (None, request.size)),
        ]
        if request.input_image is not None:
            fields.append(("input_reference", _input_reference(request.input_image, request.size)))
        response = self._call(profile, key, "POST", "videos", create=True, files=fields)
        return self._status(profile, response)

    def derive(self, request: DerivedRequest) -> JobStatus:
        video_id, provider = _split(request.parent_job_id)
        profile, key = self._connect(provider)
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
        response = self._call(profile, key, "POST", path, create=True, json=body)
        return self._status(profile, response)

    def poll(self, job_id: str) -> JobStatus:
        video_id, provider = _split(job_id)
        profile, key = self._connect(provider)
        response = self._call(profile, key, "GET", f"videos/{video_id}", video_id=video_id)
        return self._status(profile, response)

    def download(self, job_id: str, variant: Variant, dest: BinaryIO) -> None:
        if variant not in VARIANTS:
            raise BackendError(f"sora has no {variant} variant", code="unsupported_variant")
        video_id, provider = _split(job_id)
        profile, key = self._connect(provider)
        try:
            response = self._call(
                profile,
                key,
                "GET",
                f"videos/{video_id}/content",
                video_id=video_id,
                params={"variant": variant.value},
                stream=True,
            )
        except BackendError as exc:
            if exc.code in ("unknown_job", "invalid_request"):
                raise self._why_no_content(profile, key, video_id, exc) from None
            raise
        try:
            for chunk in response.iter_bytes(CHUNK):
                dest.write(chunk)
        except httpx.TransportError as exc:
            raise BackendError(
                f"the {variant} download of {video_id} from {profile.name} broke off "
                f"({type(exc).__name__})",
                code="download_interrupted",
                transient=True,
            ) from None
        finally:
            response.close()

    def list_jobs(self, scope: str | None = None) -> Iterator[RemoteJob]:
        """Every video the provider's account holds, oldest first (``GET /videos``, paged).

        ``scope`` is a provider profile name; the default profile without one.
        """
        profile, key = self._connect(scope)
        after: str | None = None
        while True:
            params: dict[str, str | int] = {"limit": self.page_size, "order": "asc"}
            if after:
                params["after"] = after
            page = _json(self._call(profile, key, "GET", "videos", params=params), profile)
            videos = page.get("data")
            if not isinstance(videos, list):
                raise BackendError(f"{profile.name} sent a list without data", code="bad_response")
            for video in videos:
                yield self._remote_job(profile, video)
            if not page.get("has_more") or not videos:
                return
            after = page.get("last_id") or videos[-1].get("id")

    def close(self) -> None:
        """Close the connection pools (the host calls this when the application closes)."""
        with self._lock:
            clients, self._clients = list(self._clients.values()), {}
        for client in clients:
            client.close()

    # --- helpers -------------------------------------------------------------------------

    def _model_sizes(self, model: str) -> tuple[str, ...]:
        for name, sizes, _ in MODELS:
            if name == model:
                return sizes
        raise RequestError(f"sora has no model {model!r}")

    def _connect(self, provider: str | None) -> tuple[ProviderProfile, Secret]:
        """The profile and its key, refusing a retired endpoint before anything is sent."""
        profile = get_profile(self.settings, provider)
        since = profile.retired_since(self._today())
        if since is not None:
            raise BackendError(self._retired_message(profile, since), code="retired")
        key = api_key(self.settings, profile)
        if key is None:
            where = key_source(self.settings, profile)
            raise BackendError(f"no API key for provider {profile.name}: {where}", code="auth")
        return profile, key

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

    def _status(self, profile: ProviderProfile, response: httpx.Response) -> JobStatus:
        hint = response.headers.get("openai-poll-after-ms")
        poll_after = int(hint) / 1000 if hint and hint.isdigit() else None
        return _video_status(profile, _json(response, profile), poll_after)

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


# --- pure helpers ----------------------------------------------------------------------------


def _video_status(
    profile: ProviderProfile, video: Mapping[str, Any], poll_after: float | None
) -> JobStatus:
    """A Video object as a JobStatus; the job id carries the profile."""
    try:
        state = JobState(video["status"])
        video_id = str(video["id"])
    except (KeyError, ValueError):
        raise BackendError(
            f"{profile.name} sent something that is not a Video object", code="bad_response"
        ) from None
    error = video.get("error") if isinstance(video.get("error"), Mapping) else None
    code = str(error.get("code") or "failed") if error else None
    message = redact(str(error.get("message") or "")) if error else None
    if error:  # what is kept on record must not carry a key the service echoed
        video = {**video, "error": {**error, "message": message}}
    expires_at = video.get("expires_at")
    return JobStatus(
        job_id=job_id(video_id, profile.name),
        state=state,
        progress=int(video.get("progress") or 0),
        error_code=code,
        error_message=message,
        poll_after=poll_after,
        expires_at=expires_at if isinstance(expires_at, int) else None,
        details=_details(profile, video),
        refused=bool(error) and bool(REFUSAL.search(f"{code} {message}")),
    )


def _serving(
    profiles: Mapping[str, ProviderProfile], besides: ProviderProfile, today: date
) -> list[str]:
    """The other profiles whose endpoints still serve the API."""
    return [p.name for p in profiles.values() if p != besides and not p.retired_since(today)]


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


def _json(response: httpx.Response, profile: ProviderProfile) -> dict[str, Any]:
    try:
        data = response.json()
    except ValueError:
        raise BackendError(
            f"{profile.name} sent a response that is not JSON", code="bad_response"
        ) from None
    if not isinstance(data, dict):
        raise BackendError(f"{profile.name} sent an unexpected response", code="bad_response")
    return data


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


def _details(profile: ProviderProfile, video: Mapping[str, Any]) -> dict[str, Any]:
    """The Video object as the service sent it, plus lines for ``reelvault show``."""
    lines = [f"{video.get('model')} at {profile.name} ({profile.host}) as {video.get('id')}"]
    if parent := video.get("remixed_from_video_id"):
        lines.append(f"remixed from {parent}")
    if video.get("seconds"):
        lines.append(f"{video.get('seconds')} s at {video.get('size')}")
    if isinstance(expires := video.get("expires_at"), int):
        when = datetime.fromtimestamp(expires, UTC).isoformat(timespec="seconds")
        lines.append(f"downloadable until {when}")
    return {"provider": profile.name, "video": dict(video), "explanation": lines}


@hookimpl
def register_backends(register: Callable[[Backend], None], settings: Settings) -> None:
    register(SoraBackend(settings))
