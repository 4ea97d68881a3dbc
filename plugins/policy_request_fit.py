"""Policy: the request fits the model, so money is never spent on a request bound to fail.

Checks a known model, the seconds and size it allows (by :meth:`ModelInfo.validate`, the
same check ``generate`` makes), the prompt's length, and the still: decodable, of an
allowed type, within byte and pixel limits, and either matching the requested size or
fitted on purpose. A still of another size is never cropped silently: it passes only
when the request asks for a fit (``parameters["fit"]`` = ``cover`` or ``contain``) or
the model declares that it fits stills itself (``ModelInfo.fits_input_image``).

Configuration, all optional, in ``config.toml``::

    [plugins.request_fit]
    prompt_min_chars = 1
    prompt_max_chars = 32000
    image_types = ["image/jpeg", "image/png", "image/webp"]
    max_image_bytes = 52428800      # 50 MiB
    max_image_pixels = 50000000     # 50 megapixels
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from core.api import (
    DerivedRequest,
    GenerationRequest,
    ImageFacts,
    ModelInfo,
    Outcome,
    PluginError,
    PolicyContext,
    PolicyDecision,
    RequestError,
    Settings,
    Size,
    check_config_keys,
    hookimpl,
)

NAME = "request_fit"


@dataclass(frozen=True)
class Limits:
    prompt_min_chars: int = 1
    prompt_max_chars: int = 32_000  # the Videos API's limit
    image_types: tuple[str, ...] = ("image/jpeg", "image/png", "image/webp")
    max_image_bytes: int = 50 * 1024 * 1024
    max_image_pixels: int = 50_000_000

    @classmethod
    def from_config(cls, section: Mapping[str, Any]) -> Limits:
        """Read ``[plugins.request_fit]``; a bad value raises, and so denies (fail closed)."""
        check_config_keys(NAME, section, cls.__dataclass_fields__)
        values: dict[str, Any] = {}
        for key in ("prompt_min_chars", "prompt_max_chars", "max_image_bytes", "max_image_pixels"):
            if key in section:
                value = section[key]
                if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                    raise PluginError(f"[plugins.{NAME}] {key} must be a whole number >= 0")
                values[key] = value
        if "image_types" in section:
            types = section["image_types"]
            if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
                raise PluginError(f"[plugins.{NAME}] image_types must be a list of MIME types")
            values["image_types"] = tuple(t.strip().lower() for t in types)
        return cls(**values)


@hookimpl
def check_request(
    request: GenerationRequest | DerivedRequest,
    backend: str,
    settings: Settings,
    context: PolicyContext,
) -> list[PolicyDecision]:
    limits = Limits.from_config(settings.section(NAME))
    model = context.model
    if model is None:
        where = f"backend {backend!r}" if backend else "any loaded backend"
        decisions = [_deny("fit.model", f"model {request.model!r} is not offered by {where}")]
    else:
        decisions = [_allow("fit.model", f"model {model.name} of backend {backend}")]
        decisions.append(_seconds_and_size(model, request))
    decisions.append(_prompt(request.prompt, limits))
    if isinstance(request, GenerationRequest):
        decisions += _image(request, model, context.image, limits)
    return decisions


def _allow(rule_id: str, reason: str) -> PolicyDecision:
    return PolicyDecision(Outcome.ALLOW, rule_id, reason)


def _deny(rule_id: str, reason: str) -> PolicyDecision:
    return PolicyDecision(Outcome.DENY, rule_id, reason)


def _seconds_and_size(
    model: ModelInfo, request: GenerationRequest | DerivedRequest
) -> PolicyDecision:
    try:
        size = model.validate(request.seconds, request.size)
    except RequestError as exc:
        return _deny("fit.seconds_size", str(exc))
    return _allow("fit.seconds_size", f"{request.seconds}s at {size} are allowed by {model.name}")


def _prompt(prompt: str, limits: Limits) -> PolicyDecision:
    length = len(prompt) if prompt.strip() else 0
    if length < limits.prompt_min_chars:
        return _deny(
            "fit.prompt_length",
            f"the prompt has {length} characters; at least {limits.prompt_min_chars} are needed",
        )
    if length > limits.prompt_max_chars:
        return _deny(
            "fit.prompt_length",
            f"the prompt has {length:,} characters; at most {limits.prompt_max_chars:,} allowed",
        )
    return _allow("fit.prompt_length", f"the prompt's {length:,} characters are within limits")


def _image(
    request: GenerationRequest, model: ModelInfo | None, image: ImageFacts | None, limits: Limits
) -> list[PolicyDecision]:
    if image is None:
        if model is not None and model.requires_input_image:
            return [_deny("fit.image", f"model {model.name} needs an input image")]
        return []
    if model is not None and not model.accepts_input_image:
        return [_deny("fit.image", f"model {model.name} does not take an input image")]
    if image.problem or image.mime is None or image.width is None or image.height is None:
        return [_deny("fit.image", image.problem or f"{image.path.name}: not a readable image")]
    decisions = [_allow("fit.image", f"the still decodes as {image.mime}")]
    if image.mime in limits.image_types:
        decisions.append(_allow("fit.image_type", f"{image.mime} is an allowed type"))
    else:
        allowed = ", ".join(limits.image_types) or "none"
        decisions.append(_deny("fit.image_type", f"{image.mime} is not allowed ({allowed})"))
    if image.bytes > limits.max_image_bytes:
        decisions.append(
            _deny(
                "fit.image_bytes",
                f"the still has {image.bytes:,} bytes; at most {limits.max_image_bytes:,} allowed",
            )
        )
    else:
        decisions.append(_allow("fit.image_bytes", f"{image.bytes:,} bytes are within limits"))
    pixels = image.width * image.height
    if pixels > limits.max_image_pixels:
        decisions.append(
            _deny(
                "fit.image_pixels",
                f"the still has {pixels:,} pixels ({image.width}x{image.height}); "
                f"at most {limits.max_image_pixels:,} allowed",
            )
        )
    else:
        decisions.append(_allow("fit.image_pixels", f"{pixels:,} pixels are within limits"))
    if model is not None:
        decisions.append(_image_size(request, model, Size(image.width, image.height)))
    return decisions


def _image_size(request: GenerationRequest, model: ModelInfo, actual: Size) -> PolicyDecision:
    """The still must match the size, or be fitted on purpose: never a surprise crop."""
    try:
        fit = model.still_fit(actual, request.size, request.parameters.get("fit"))
    except RequestError as exc:
        return _deny("fit.image_size", str(exc))
    wanted = Size.parse(request.size)
    if actual == wanted:
        return _allow("fit.image_size", f"the still is {actual}, as requested")
    if fit is not None:
        return _allow(
            "fit.image_size", f"the {actual} still is fitted to {wanted} by {fit}, as asked"
        )
    return _allow(
        "fit.image_size", f"the {actual} still is fitted to {wanted} by model {model.name} itself"
    )
