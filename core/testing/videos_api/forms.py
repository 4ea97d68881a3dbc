"""Reading requests: which route a path is, who is calling, and each field's checks.

The checks answer with the service's own messages and codes (an integer ``seconds`` is a
400 "Invalid type", a still of the wrong size "Inpaint image must match..."), because
what a client does with an error depends on exactly those.
"""

from __future__ import annotations

import io
import json
from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qs

from PIL import Image, UnidentifiedImageError
from python_multipart import create_form_parser

from core.testing.videos_api.state import (
    IMAGE_FORMATS,
    ROUTES,
    ApiError,
    Fault,
    Form,
    Request,
    Upload,
)


def api_path(request: Request) -> str | None:
    """The path below the API root: ``/v1/...``, or Azure's ``/openai/v1/...``."""
    if request.path.startswith("/openai/v1/"):
        if "api-version" not in request.query:
            raise ApiError(
                400, "Missing required query parameter 'api-version'.", code="BadRequest"
            )
        return request.path.removeprefix("/openai/v1")
    if request.path.startswith("/v1/"):
        return request.path.removeprefix("/v1")
    return None


def match_route(method: str, path: str) -> tuple[str, str | None] | None:
    for route_method, template, pattern in ROUTES:
        match = pattern.match(path)
        if match and route_method == method:
            return template, match.groupdict().get("id")
    return None


def given_key(headers: Mapping[str, str]) -> str | None:
    auth = headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    return headers.get("api-key")


def fault_error(fault: Fault) -> ApiError:
    defaults = {
        429: ("Rate limit reached for requests. Please try again later.", "rate_limit_exceeded"),
        500: ("The server had an error while processing your request. Sorry about that!", None),
        502: ("Bad gateway.", None),
        503: ("The engine is currently overloaded, please try again later.", None),
    }
    message, code = defaults.get(fault.status, (f"Injected error {fault.status}.", None))
    kind = "rate_limit_error" if fault.status == 429 else "server_error"
    return ApiError(
        fault.status,
        fault.message or message,
        code=fault.code or code,
        kind=kind if fault.status >= 429 else "invalid_request_error",
        headers=fault.headers,
    )


def parse_body(request: Request) -> Form:
    content_type = request.headers.get("content-type", "")
    form = Form()
    if not request.body:
        return form
    if content_type.startswith("application/json"):
        try:
            data = json.loads(request.body)
        except json.JSONDecodeError:
            raise ApiError(400, "We could not parse the JSON body of your request.") from None
        if not isinstance(data, dict):
            raise ApiError(400, "The JSON body must be an object.")
        form.fields = data
        return form
    if content_type.startswith("multipart/form-data"):
        uploads: dict[str, Upload] = {}

        def on_field(item: Any) -> None:
            name = item.field_name.decode()
            form.fields[name] = (item.value or b"").decode()

        def on_file(item: Any) -> None:
            item.file_object.seek(0)
            uploads[item.field_name.decode()] = Upload(
                (item.file_name or b"").decode(), item.file_object.read()
            )

        headers = {
            "Content-Type": content_type.encode(),
            "Content-Length": str(len(request.body)).encode(),
        }
        parser = create_form_parser(
            headers, on_field, on_file, config={"MAX_MEMORY_FILE_SIZE": float("inf")}
        )
        parser.write(request.body)
        parser.finalize()
        form.files = uploads
        return form
    if content_type.startswith("application/x-www-form-urlencoded"):
        pairs = parse_qs(request.body.decode(), keep_blank_values=True)
        form.fields = {k: v[-1] for k, v in pairs.items()}
        return form
    raise ApiError(400, f"Unsupported content type '{content_type}'.")


def prompt_field(form: Form) -> str:
    prompt = form.fields.get("prompt")
    if prompt is None or prompt == "":
        raise ApiError(
            400,
            "Missing required parameter: 'prompt'.",
            code="missing_required_parameter",
            param="prompt",
        )
    if not isinstance(prompt, str) or len(prompt) > 32000:
        raise ApiError(400, "Invalid 'prompt': a string of 1 to 32000 characters.", param="prompt")
    return prompt


def seconds_field(form: Form, allowed: tuple[str, ...], default: str | None) -> str:
    value = form.fields.get("seconds", default)
    choices = ", ".join(f"'{s}'" for s in allowed)
    if value is None:
        raise ApiError(
            400,
            "Missing required parameter: 'seconds'.",
            code="missing_required_parameter",
            param="seconds",
        )
    if not isinstance(value, str):
        raise ApiError(
            400,
            f"Invalid type for 'seconds': expected one of {choices}, but got "
            f"{type(value).__name__} instead.",
            code="invalid_type",
            param="seconds",
        )
    if value not in allowed:
        raise ApiError(
            400,
            f"Invalid value: '{value}'. Supported values are: {choices}.",
            code="invalid_value",
            param="seconds",
        )
    return value


def input_reference_field(form: Form, size: str) -> bytes | None:
    upload = form.files.get("input_reference")
    if upload is None:
        if isinstance(form.fields.get("input_reference"), dict):
            raise ApiError(
                400,
                "This test server takes input_reference as an uploaded file only.",
                param="input_reference",
            )
        return None
    try:
        with Image.open(io.BytesIO(upload.data)) as image:
            image.load()
            fmt, dims = image.format, image.size
    except (OSError, UnidentifiedImageError):
        raise ApiError(
            400, "The input_reference file is not a valid image.", param="input_reference"
        ) from None
    if fmt not in IMAGE_FORMATS:
        raise ApiError(
            400,
            f"Unsupported image format {fmt}: use JPEG, PNG or WebP.",
            param="input_reference",
        )
    width, height = (int(n) for n in size.split("x"))
    if dims != (width, height):
        raise ApiError(
            400,
            "Inpaint image must match the requested width and height",
            param="input_reference",
        )
    return upload.data


def video_reference_field(form: Form) -> str:
    video = form.fields.get("video")
    if isinstance(video, dict) and isinstance(video.get("id"), str):
        return str(video["id"])
    if isinstance(form.fields.get("video[id]"), str):
        return str(form.fields["video[id]"])
    if "video" in form.files:
        raise ApiError(400, "This test server takes a video reference ({id}) only.", param="video")
    raise ApiError(
        400,
        "Missing required parameter: 'video'.",
        code="missing_required_parameter",
        param="video",
    )
