"""The stand-in's routes: what each Videos API endpoint does with a parsed request.

:class:`VideosAPIRoutes` is the request-answering half of
:class:`core.testing.videos_api.server.VideosAPIServer`; the server holds the state
(jobs, faults, the lock) that these methods read and change, and the HTTP plumbing that
calls :meth:`VideosAPIRoutes.handle`.
"""

from __future__ import annotations

import secrets
import threading
import time
from typing import Any

from core.testing.videos_api.content import render_outputs
from core.testing.videos_api.forms import (
    api_path,
    fault_error,
    given_key,
    input_reference_field,
    match_route,
    parse_body,
    prompt_field,
    seconds_field,
    video_reference_field,
)
from core.testing.videos_api.state import (
    EXTENSION_SECONDS,
    MAX_EXTENSIONS,
    MAX_TOTAL_SECONDS,
    MODELS,
    SECONDS,
    VARIANTS,
    ApiError,
    Fault,
    Form,
    RecordedRequest,
    Request,
    Response,
    Video,
)


class VideosAPIRoutes:
    """Answers to every route, on the state its server subclass holds."""

    # Set by VideosAPIServer.__init__: the settings and state the routes work on.
    api_key: str
    render_seconds: float
    poll_after_ms: int | None
    ttl_seconds: int
    max_running: int | None
    redirect_content: bool
    truncated_variants: dict[str, int]
    failing_variants: dict[str, int]
    retired: bool
    hold: bool
    requests: list[RecordedRequest]
    _videos: dict[str, Video]
    _characters: dict[str, dict[str, Any]]
    _faults: list[Fault]
    _outcomes: list[dict[str, str]]
    _downloads: dict[str, tuple[str, str]]
    _lock: threading.RLock
    _render_lock: threading.Lock
    _stop: threading.Event

    @property
    def root_url(self) -> str:
        """Where the server listens (content redirects point there); the server says."""
        raise NotImplementedError

    def handle(self, request: Request) -> Response:
        """Route one request; every answer is JSON in the API's shape or content bytes."""
        record = RecordedRequest(request.method, None, request.path, request.query, {}, {})
        self.requests.append(record)
        try:
            response = self._dispatch(request, record)
        except ApiError as exc:
            response = Response.json(exc.status, exc.body, exc.headers)
        record.status = response.status
        return response

    def _dispatch(self, request: Request, record: RecordedRequest) -> Response:
        if request.path.startswith("/files/"):
            return self._redirected_content(request.path.removeprefix("/files/"))
        path = api_path(request)
        found = match_route(request.method, path) if path is not None else None
        if found is None or self.retired:
            raise ApiError(404, f"Invalid URL ({request.method} {request.path})")
        template, match_id = found
        record.route = template
        record.authorized = self._authorized(request)
        fault = self._take_fault(request.method, template)
        if fault is not None and fault.delay:
            self._stop.wait(fault.delay)  # a hang, cut short when the server stops
            fault = None
        if fault is not None and fault.when == "before" and fault.drop_after is None:
            raise fault_error(fault)
        if not record.authorized:
            raise self._auth_error(request)
        form = parse_body(request)
        record.fields = {k: v for k, v in form.fields.items()}
        record.files = {k: len(v.data) for k, v in form.files.items()}
        record.uploads = {k: v.data for k, v in form.files.items()}
        response = self._answer(request.method, template, match_id, request.query, form)
        if fault is not None and fault.drop_after is not None:
            response.drop_after = fault.drop_after
        elif fault is not None:
            raise fault_error(fault)
        return response

    def _answer(
        self, method: str, template: str, video_id: str | None, query: dict[str, str], form: Form
    ) -> Response:
        if (method, template) == ("POST", "/videos"):
            return self._create(form)
        if (method, template) == ("GET", "/videos"):
            return self._list(query)
        if (method, template) == ("POST", "/videos/edits"):
            return self._derive(form, "edit")
        if (method, template) == ("POST", "/videos/extensions"):
            return self._derive(form, "extension")
        if (method, template) == ("POST", "/videos/characters"):
            return self._create_character(form)
        if (method, template) == ("GET", "/videos/characters/{id}"):
            return self._character(str(video_id))
        assert video_id is not None
        if (method, template) == ("GET", "/videos/{id}"):
            headers = {}
            if self.poll_after_ms is not None:
                headers["openai-poll-after-ms"] = str(self.poll_after_ms)
            return Response.json(200, self.video_or_404(video_id).to_json(), headers)
        if (method, template) == ("DELETE", "/videos/{id}"):
            return self._delete(video_id)
        if (method, template) == ("POST", "/videos/{id}/remix"):
            return self._derive(form, "remix", video_id)
        return self._content(video_id, query)

    def _authorized(self, request: Request) -> bool:
        given = given_key(request.headers)
        return given is not None and secrets.compare_digest(given, self.api_key)

    def _auth_error(self, request: Request) -> ApiError:
        given = given_key(request.headers)
        if not given:
            return ApiError(
                401,
                "You didn't provide an API key. You need to provide your API key in an "
                "Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
            )
        masked = given[:3] + "*" * max(len(given) - 7, 4) + given[-4:]
        return ApiError(
            401,
            f"Incorrect API key provided: {masked}. You can find your API key at "
            "https://platform.openai.com/account/api-keys.",
            code="invalid_api_key",
        )

    def _take_fault(self, method: str, template: str) -> Fault | None:
        with self._lock:
            for fault in self._faults:
                if fault.method == method and fault.route == template and fault.times > 0:
                    fault.times -= 1
                    return fault
        return None

    def video_or_404(self, video_id: str) -> Video:
        with self._lock:
            video = self._videos.get(video_id)
            if video is None or video.deleted:
                raise ApiError(404, f"Video with id '{video_id}' not found.", param="video_id")
            video.advance(self.ttl_seconds)
            return video

    def _create(self, form: Form) -> Response:
        model = form.text("model") or "sora-2"
        if model not in MODELS:
            allowed = ", ".join(f"'{m}'" for m in MODELS)
            raise ApiError(
                400,
                f"Invalid value: '{model}'. Supported values are: {allowed}.",
                code="invalid_value",
                param="model",
            )
        prompt = prompt_field(form)
        seconds = seconds_field(form, SECONDS, "4")
        size = form.text("size") or "720x1280"
        if size not in MODELS[model]:
            raise ApiError(
                400,
                f"Invalid value: '{size}'. Supported values for {model} are: "
                + ", ".join(f"'{s}'" for s in MODELS[model])
                + ".",
                code="invalid_value",
                param="size",
            )
        image = input_reference_field(form, size)
        return self._start(model, prompt, seconds, size, input_reference=image)

    def _derive(self, form: Form, kind: str, video_id: str | None = None) -> Response:
        prompt = prompt_field(form)
        if video_id is None:
            video_id = video_reference_field(form)
        parent = self.video_or_404(video_id)
        if parent.status != "completed":
            raise ApiError(
                400,
                f"Video '{parent.id}' is {parent.status}; only a completed video can be used.",
                param="video",
            )
        seconds, extensions = parent.seconds, parent.extensions
        if kind == "extension":
            added = seconds_field(form, EXTENSION_SECONDS, None)
            total = int(parent.seconds) + int(added)
            if parent.extensions >= MAX_EXTENSIONS or total > MAX_TOTAL_SECONDS:
                raise ApiError(
                    400,
                    f"A video can be extended at most {MAX_EXTENSIONS} times and up to "
                    f"{MAX_TOTAL_SECONDS} seconds in total.",
                    param="seconds",
                )
            seconds, extensions = str(total), parent.extensions + 1
        return self._start(
            parent.model,
            prompt,
            seconds,
            parent.size,
            input_reference=parent.input_reference,
            remixed_from=parent.id if kind == "remix" else None,
            base_video=parent.id,
            extensions=extensions,
        )

    def _start(self, model: str, prompt: str, seconds: str, size: str, **extra: Any) -> Response:
        with self._lock:
            if self.max_running is not None:
                running = sum(1 for v in self._videos.values() if not v.final and not v.deleted)
                if running >= self.max_running:
                    raise ApiError(
                        429,
                        "Too many running tasks",
                        code="too_many_running_tasks",
                        kind="rate_limit_error",
                        headers={"retry-after": "1"},
                    )
            now = time.monotonic()
            video = Video(
                id=f"video_{secrets.token_hex(16)}",
                model=model,
                prompt=prompt,
                seconds=seconds,
                size=size,
                created_at=int(time.time()),
                started=now,
                ready_at=None if self.hold else now + self.render_seconds,
                outcome=self._outcomes.pop(0) if self._outcomes else None,
                **extra,
            )
            self._videos[video.id] = video
            return Response.json(200, video.to_json())

    def _list(self, query: dict[str, str]) -> Response:
        try:
            limit = int(query.get("limit", "20"))
        except ValueError:
            raise ApiError(400, "Invalid 'limit': expected an integer.", param="limit") from None
        if not 0 <= limit <= 100:
            raise ApiError(400, "Invalid 'limit': must be between 0 and 100.", param="limit")
        order = query.get("order", "desc")
        if order not in ("asc", "desc"):
            raise ApiError(400, "Invalid 'order': expected 'asc' or 'desc'.", param="order")
        with self._lock:
            videos = [v for v in self._videos.values() if not v.deleted]
            for video in videos:
                video.advance(self.ttl_seconds)
            if order == "desc":
                videos.reverse()
            if after := query.get("after"):
                ids = [v.id for v in videos]
                if after not in ids:
                    raise ApiError(404, f"Video with id '{after}' not found.", param="after")
                videos = videos[ids.index(after) + 1 :]
            page = [v.to_json() for v in videos[:limit]]
        return Response.json(
            200,
            {
                "object": "list",
                "data": page,
                "first_id": page[0]["id"] if page else None,
                "last_id": page[-1]["id"] if page else None,
                "has_more": len(videos) > limit,
            },
        )

    def _delete(self, video_id: str) -> Response:
        video = self.video_or_404(video_id)
        if not video.final:
            raise ApiError(400, "Only a completed or failed video can be deleted.")
        with self._lock:
            video.deleted = True
            video.content.clear()
        return Response.json(200, {"id": video_id, "deleted": True, "object": "video.deleted"})

    def _content(self, video_id: str, query: dict[str, str]) -> Response:
        variant = query.get("variant", "video")
        if variant not in VARIANTS:
            raise ApiError(
                400,
                f"Invalid value: '{variant}'. Supported values are: 'video', 'thumbnail' "
                "and 'spritesheet'.",
                code="invalid_value",
                param="variant",
            )
        video = self.video_or_404(video_id)
        if video.status != "completed":
            raise ApiError(
                400, f"Video '{video_id}' is {video.status}; its content is not ready yet."
            )
        if video.expires_at is not None and video.expires_at <= time.time():
            raise ApiError(404, f"The content of video '{video_id}' has expired.")
        if self.redirect_content:
            token = secrets.token_urlsafe(16)
            with self._lock:
                self._downloads[token] = (video_id, variant)
            return Response(302, b"", {"location": f"{self.root_url}/files/{token}"})
        return self._bytes(video, variant)

    def _redirected_content(self, token: str) -> Response:
        with self._lock:
            found = self._downloads.pop(token, None)
        if found is None:
            raise ApiError(404, "This download link is not valid or was used already.")
        return self._bytes(self.video_or_404(found[0]), found[1])

    def _bytes(self, video: Video, variant: str) -> Response:
        failing = self.failing_variants.get(variant)
        if failing is not None:
            raise ApiError(failing, f"The {variant} of video '{video.id}' is not available.")
        with self._render_lock:  # rendering is CPU-bound: one at a time keeps tests steady
            if not video.content:
                video.content.update(render_outputs(video, video.input_reference))
        data = video.content[variant]
        cut = self.truncated_variants.get(variant)
        if cut is not None:
            data = data[:cut]  # a provider's damaged extra: served whole-looking, cut short
        return Response(200, data, {"content-type": VARIANTS[variant]})

    def _create_character(self, form: Form) -> Response:
        name = form.text("name")
        if not name or not 1 <= len(name) <= 80:
            raise ApiError(400, "'name' must be 1 to 80 characters.", param="name")
        if "video" not in form.files:
            raise ApiError(400, "Missing required parameter: 'video'.", param="video")
        character_id = f"char_{secrets.token_hex(8)}"
        character = {
            "id": character_id,
            "name": name,
            "created_at": int(time.time()),
        }
        with self._lock:
            self._characters[character_id] = character
        return Response.json(200, character)

    def _character(self, character_id: str) -> Response:
        with self._lock:
            character = self._characters.get(character_id)
        if character is None:
            raise ApiError(404, f"Character with id '{character_id}' not found.")
        return Response.json(200, character)
