"""A loopback stand-in for Google's Gemini API as Veo uses it, for tests.

It follows the facts in ``shared/reference/gemini-veo.md`` (python-genai's wire format
and the Gemini API docs), so the ``veo`` backend, or the official SDK, does against it
exactly what it would do against ``generativelanguage.googleapis.com``::

    with GeminiAPIServer(api_key="AIza-test") as server:
        client = genai.Client(api_key="AIza-test", http_options={"base_url": server.root_url})

Routes (under ``/v1beta``):

- ``POST models/{model}:predictLongRunning``: validates the body per model (prompt, the
  still as ``bytesBase64Encoded`` or ``inlineData``, ``durationSeconds`` as an int or a
  string, ``aspectRatio``, ``resolution`` with "1080p and 4k need 8 s", Veo 2's lack of
  ``resolution``, ``personGeneration`` per mode, ``sampleCount``, unknown fields) and
  answers ``{"name": "models/M/operations/ID"}``; an unknown model is a 404 in the
  SDK's words, a retired one a 404 "is no longer available".
- ``GET models/{model}/operations/{id}``: ``done`` absent until ``render_seconds`` have
  passed (or :meth:`release` after ``hold``), then the samples' Files API URIs, the
  safety filter's ``raiMediaFilteredCount``/``Reasons`` (:meth:`filter_next`) or an
  ``error`` with a numeric google.rpc code (:meth:`fail_next`).
- ``GET files/{id}:download?alt=media``: a 302 to a loopback blob URL serving a real MP4
  of the requested aspect and resolution; 404 once the file expired (``ttl_seconds``,
  2 days like the service; :meth:`expire` forces it).

Keys go in ``x-goog-api-key`` (or ``?key=``); a wrong key is the 400 ``API_KEY_INVALID``
the service answers, a missing one a 403. :meth:`rate_limit` answers the next requests
with 429 ``RESOURCE_EXHAUSTED`` carrying ``google.rpc.RetryInfo``.
"""

from __future__ import annotations

import base64
import binascii
import io
import re
import secrets
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from PIL import Image, UnidentifiedImageError

from core.testing.loopback import LoopbackService, Reply, Request, render_mp4


@dataclass(frozen=True)
class VeoModelRules:
    durations: tuple[int, ...]
    resolutions: tuple[str, ...]  # empty: the model takes no ``resolution`` at all
    max_samples: int = 1
    long_only: tuple[str, ...] = ("1080p", "4k")  # resolutions that need 8 seconds


MODELS: Mapping[str, VeoModelRules] = {
    "veo-3.1-generate-preview": VeoModelRules((4, 6, 8), ("720p", "1080p", "4k")),
    "veo-3.1-fast-generate-preview": VeoModelRules((4, 6, 8), ("720p", "1080p", "4k")),
    "veo-3.0-generate-001": VeoModelRules((4, 6, 8), ("720p", "1080p")),
    "veo-3.0-fast-generate-001": VeoModelRules((4, 6, 8), ("720p", "1080p")),
    "veo-2.0-generate-001": VeoModelRules((5, 6, 8), (), max_samples=2, long_only=()),
}
SERVICE_ROOT = "https://generativelanguage.googleapis.com"
HEIGHTS = {"720p": 720, "1080p": 1080, "4k": 2160}
ASPECTS = ("16:9", "9:16")
PARAMETERS = {
    "sampleCount", "durationSeconds", "aspectRatio", "resolution", "personGeneration",
    "negativePrompt", "enhancePrompt", "seed",
}  # fmt: skip
INSTANCE_FIELDS = {"prompt", "image", "lastFrame", "referenceImages", "video"}
IMAGE_MIMES = ("image/png", "image/jpeg", "image/webp")
RESPONSE_TYPE = "type.googleapis.com/google.ai.generativelanguage.v1beta.PredictLongRunningResponse"
RPC_CODES = {400: "INVALID_ARGUMENT", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
             429: "RESOURCE_EXHAUSTED", 500: "INTERNAL", 503: "UNAVAILABLE"}  # fmt: skip
_CREATE = re.compile(r"^/v1beta/models/(?P<model>[^/:]+):predictLongRunning$")
_OPERATION = re.compile(r"^/v1beta/models/(?P<model>[^/:]+)/operations/(?P<id>[a-z0-9]+)$")
_DOWNLOAD = re.compile(r"^/v1beta/files/(?P<id>[a-z0-9]+):download$")
_BLOB = re.compile(r"^/blobs/(?P<token>[A-Za-z0-9_-]+)$")


class GoogleError(Exception):
    """An answer in Google's error envelope."""

    def __init__(
        self, status: int, message: str, *, field: str | None = None, details: Any = ()
    ) -> None:
        super().__init__(message)
        extra = list(details)
        if field is not None:
            violation = {"field": field, "description": message}
            extra.append(
                {"@type": "type.googleapis.com/google.rpc.BadRequest",
                 "fieldViolations": [violation]}
            )  # fmt: skip
        error: dict[str, Any] = {"code": status, "message": message, "status": RPC_CODES[status]}
        if extra:
            error["details"] = extra
        self.reply = Reply.json(status, {"error": error})


@dataclass
class Operation:
    id: str
    model: str
    prompt: str
    seconds: int
    aspect: str
    resolution: str
    samples: int
    image: bytes | None
    created: float = field(default_factory=time.monotonic)
    held: bool = False
    expired: bool = False
    outcome: dict[str, Any] | None = None  # set when done: response or error
    file_ids: list[str] = field(default_factory=list)

    @property
    def name(self) -> str:
        return f"models/{self.model}/operations/{self.id}"

    @property
    def size(self) -> tuple[int, int]:
        height = HEIGHTS[self.resolution]
        width = height * 16 // 9
        return (width, height) if self.aspect == "16:9" else (height, width)


@dataclass
class StoredFile:
    operation: Operation
    created: float = field(default_factory=time.time)
    data: bytes | None = None


class GeminiAPIServer(LoopbackService):
    """The Gemini API's Veo routes on 127.0.0.1; see the module docstring."""

    download_route = _DOWNLOAD.pattern  # answers a redirect to the blob
    media_route = _BLOB.pattern

    def __init__(
        self,
        api_key: str,
        *,
        render_seconds: float = 0.2,
        ttl_seconds: float = 2 * 24 * 3600,
        retired: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__()
        self.api_key = api_key
        self.render_seconds = render_seconds
        self.ttl_seconds = ttl_seconds
        self.retired = dict(retired or {})
        self.hold = False
        self.operations: dict[str, Operation] = {}
        self.files: dict[str, StoredFile] = {}
        self.creates: list[dict[str, Any]] = []
        self._blobs: dict[str, str] = {}
        self._next_outcomes: list[dict[str, Any]] = []

    @property
    def base_url(self) -> str:
        return self.root_url

    # --- scripting ---------------------------------------------------------------------

    def filter_next(self, *reasons: str) -> None:
        """The next operation ends blocked by the safety filter with these reasons."""
        outcome = {"raiMediaFilteredCount": len(reasons), "raiMediaFilteredReasons": list(reasons)}
        self._next_outcomes.append({"response": outcome})

    def fail_next(self, code: int, message: str) -> None:
        """The next operation ends with ``error: {code, message}`` (a google.rpc code)."""
        self._next_outcomes.append({"error": {"code": code, "message": message}})

    def rate_limit(
        self, times: int, retry_delay: str = "1s", path: str = r"^/v1beta/", *, header: bool = False
    ) -> None:
        """Answer the next ``times`` requests with 429 carrying RetryInfo ``retry_delay``
        (and, with ``header``, the same wait as ``Retry-After``)."""
        reply = GoogleError(
            429,
            "Resource has been exhausted (e.g. check quota).",
            details=[{"@type": "type.googleapis.com/google.rpc.RetryInfo",
                      "retryDelay": retry_delay}],
        ).reply  # fmt: skip
        if header:
            reply.headers["retry-after"] = retry_delay.removesuffix("s")
        self.inject_reply("*", path, reply, times=times)

    @property
    def created(self) -> int:
        with self.lock:
            return len(self.operations)

    def refuse_next(self, reason: str) -> None:
        self.filter_next(reason)

    def expire_all(self) -> None:
        with self.lock:
            for operation in self.operations.values():
                operation.expired = True

    def storm(self, times: int, seconds: float) -> None:
        self.rate_limit(times, retry_delay=f"{seconds}s")

    def release(self) -> None:
        """Let held operations finish (they were started while ``hold`` was set)."""
        with self.lock:
            self.hold = False
            for operation in self.operations.values():
                if operation.held:
                    operation.held = False
                    operation.created = time.monotonic() - self.render_seconds

    def expire(self, operation_id: str) -> None:
        """The operation's files are gone, as after the service's 2-day retention."""
        with self.lock:
            self.operations[operation_id].expired = True

    def operation_ids(self) -> list[str]:
        with self.lock:
            return list(self.operations)

    # --- routes ------------------------------------------------------------------------

    def route(self, request: Request) -> Reply:
        try:
            if match := _BLOB.match(request.path):
                return self._blob(match["token"])
            self._authorize(request)
            if request.method == "POST" and (match := _CREATE.match(request.path)):
                return self._create(match["model"], request.json())
            if request.method == "GET" and (match := _OPERATION.match(request.path)):
                return self._operation(match["model"], match["id"])
            if request.method == "GET" and (match := _DOWNLOAD.match(request.path)):
                return self._download(match["id"], request.query)
            raise GoogleError(404, f"Method not found: {request.method} {request.path}")
        except GoogleError as exc:
            return exc.reply

    def _authorize(self, request: Request) -> None:
        given = request.headers.get("x-goog-api-key") or request.query.get("key")
        if not given:
            raise GoogleError(
                403,
                "Method doesn't allow unregistered callers (callers without established "
                "identity). Please use API Key or other form of API consumer identity.",
            )
        if not secrets.compare_digest(given, self.api_key):
            raise GoogleError(
                400,
                "API key not valid. Please pass a valid API key.",
                details=[{"@type": "type.googleapis.com/google.rpc.ErrorInfo",
                          "reason": "API_KEY_INVALID", "domain": "googleapis.com"}],
            )  # fmt: skip

    def _model(self, model: str) -> VeoModelRules:
        if model in self.retired:
            raise GoogleError(404, f"models/{model} is no longer available. {self.retired[model]}")
        rules = MODELS.get(model)
        if rules is None:
            raise GoogleError(
                404,
                f"models/{model} is not found for API version v1beta, or is not supported "
                "for predictLongRunning. Call ListModels to see the list of available models "
                "and their supported methods.",
            )
        return rules

    def _create(self, model: str, body: Any) -> Reply:
        rules = self._model(model)
        if not isinstance(body, dict) or not isinstance(body.get("instances"), list):
            raise GoogleError(400, "instances is required", field="instances")
        if len(body["instances"]) != 1 or not isinstance(body["instances"][0], dict):
            raise GoogleError(400, "exactly one instance is supported", field="instances")
        instance = body["instances"][0]
        for name in instance:
            if name not in INSTANCE_FIELDS:
                raise GoogleError(400, f'Unknown name "{name}"', field=f"instances[0].{name}")
        prompt = instance.get("prompt")
        if not isinstance(prompt, str) or not prompt.strip():
            raise GoogleError(400, "A prompt is required.", field="instances[0].prompt")
        image = _image(instance.get("image")) if "image" in instance else None
        parameters = body.get("parameters") or {}
        seconds, aspect, resolution, samples = _parameters(model, rules, parameters, image)
        operation = Operation(
            id=secrets.token_hex(6),
            model=model,
            prompt=prompt,
            seconds=seconds,
            aspect=aspect,
            resolution=resolution,
            samples=samples,
            image=image,
            held=self.hold,
        )
        with self.lock:
            if self._next_outcomes:
                operation.outcome = self._next_outcomes.pop(0)
            self.operations[operation.id] = operation
            self.creates.append(body)
        return Reply.json(200, {"name": operation.name})

    def _operation(self, model: str, operation_id: str) -> Reply:
        with self.lock:
            operation = self.operations.get(operation_id)
        if operation is None or operation.model != model:
            raise GoogleError(404, f"Operation models/{model}/operations/{operation_id} not found")
        if operation.held or time.monotonic() - operation.created < self.render_seconds:
            return Reply.json(200, {"name": operation.name})
        with self.lock:
            if operation.outcome is None:
                operation.outcome = {"response": {"generatedSamples": self._samples(operation)}}
            outcome = operation.outcome
        body: dict[str, Any] = {"name": operation.name, "done": True}
        if "error" in outcome:
            body["error"] = outcome["error"]
        else:
            response = outcome["response"]
            body["response"] = {"@type": RESPONSE_TYPE, "generateVideoResponse": response}
        return Reply.json(200, body)

    def _samples(self, operation: Operation) -> list[dict[str, Any]]:
        samples = []
        for _ in range(operation.samples):
            file_id = secrets.token_hex(8)
            self.files[file_id] = StoredFile(operation)
            operation.file_ids.append(file_id)
            # The service's own URI, as the real one sends it: clients (the SDK, the veo
            # backend) take the file id from it and download from their own base URL.
            uri = f"{SERVICE_ROOT}/v1beta/files/{file_id}:download?alt=media"
            samples.append({"video": {"uri": uri}})
        return samples

    def _download(self, file_id: str, query: Mapping[str, str]) -> Reply:
        with self.lock:
            stored = self.files.get(file_id)
        if (
            stored is None
            or stored.operation.expired
            or time.time() - stored.created > self.ttl_seconds
        ):
            raise GoogleError(404, f"File files/{file_id} not found.")
        if query.get("alt") != "media":
            raise GoogleError(400, "alt=media is required to download", field="alt")
        token = secrets.token_urlsafe(12)
        with self.lock:
            self._blobs[token] = file_id
        return Reply(302, headers={"location": f"{self.root_url}/blobs/{token}"})

    def _blob(self, token: str) -> Reply:
        with self.lock:
            stored = self.files.get(self._blobs.get(token, ""))
        if stored is None:
            return Reply(404, b"Not Found", {"content-type": "text/plain"})
        if stored.data is None:
            operation = stored.operation
            width, height = operation.size
            stored.data = render_mp4(width, height, operation.seconds, operation.image, token)
        return Reply(200, stored.data, {"content-type": "video/mp4"})


def _image(value: Any) -> bytes:
    """The still, from the SDK's ``bytesBase64Encoded`` or the docs' ``inlineData``."""
    where = "instances[0].image"
    if isinstance(value, dict) and isinstance(value.get("inlineData"), dict):
        value = {"bytesBase64Encoded": value["inlineData"].get("data"),
                 "mimeType": value["inlineData"].get("mimeType")}  # fmt: skip
    if not isinstance(value, dict) or not isinstance(value.get("bytesBase64Encoded"), str):
        raise GoogleError(400, "image needs bytesBase64Encoded and mimeType", field=where)
    if value.get("mimeType") not in IMAGE_MIMES:
        raise GoogleError(400, f"unsupported mimeType {value.get('mimeType')!r}", field=where)
    try:
        data = base64.b64decode(value["bytesBase64Encoded"], validate=True)
        with Image.open(io.BytesIO(data)) as image:
            image.verify()
    except (binascii.Error, UnidentifiedImageError, OSError):
        raise GoogleError(400, "The image could not be decoded.", field=where) from None
    return data


def _parameters(
    model: str, rules: VeoModelRules, parameters: Any, image: bytes | None
) -> tuple[int, str, str, int]:
    if not isinstance(parameters, dict):
        raise GoogleError(400, "parameters must be an object", field="parameters")
    for name in parameters:
        if name not in PARAMETERS:
            raise GoogleError(400, f'Unknown name "{name}"', field=f"parameters.{name}")
    if "seed" in parameters:
        raise GoogleError(400, "seed is not supported in the Gemini API", field="parameters.seed")
    raw = parameters.get("durationSeconds", 8)
    try:
        seconds = int(raw)
    except (TypeError, ValueError):
        seconds = -1
    if seconds not in rules.durations or isinstance(raw, bool):
        allowed = ", ".join(map(str, rules.durations))
        raise GoogleError(
            400,
            f"The number value for `durationSeconds` is out of bound. "
            f"Please provide a value in [{allowed}] for {model}.",
            field="parameters.durationSeconds",
        )
    aspect = parameters.get("aspectRatio", "16:9")
    if aspect not in ASPECTS:
        where = "parameters.aspectRatio"
        raise GoogleError(400, f"Unsupported aspect ratio: {aspect}", field=where)
    resolution = parameters.get("resolution")
    if resolution is not None and not rules.resolutions:
        raise GoogleError(
            400, f"resolution isn't supported by {model}.", field="parameters.resolution"
        )
    resolution = resolution or "720p"
    if rules.resolutions and resolution not in rules.resolutions:
        raise GoogleError(
            400, f"Unsupported resolution: {resolution}", field="parameters.resolution"
        )
    if resolution in rules.long_only and seconds != 8:
        raise GoogleError(
            400, f"{resolution} output requires durationSeconds 8.", field="parameters.resolution"
        )
    person = parameters.get("personGeneration")
    veo3 = model.startswith("veo-3")
    allowed_people = (
        ("allow_adult",) if image and veo3 else ("allow_all",) if veo3 else
        ("allow_adult", "dont_allow") if image else ("allow_all", "allow_adult", "dont_allow")
    )  # fmt: skip
    if person is not None and person not in allowed_people:
        raise GoogleError(
            400,
            f"personGeneration {person} is not supported here; use {' or '.join(allowed_people)}",
            field="parameters.personGeneration",
        )
    samples = parameters.get("sampleCount", 1)
    if not isinstance(samples, int) or not 1 <= samples <= rules.max_samples:
        raise GoogleError(
            400, f"sampleCount must be 1 to {rules.max_samples}", field="parameters.sampleCount"
        )
    return seconds, aspect, resolution, samples
