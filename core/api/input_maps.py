"""Per-model input mapping tables, for backends whose models each take their own inputs.

fal apps and Replicate models are image-to-video models by many makers; each names its
fields its own way (``image_url``, ``start_image``, ``first_frame_image``), writes its
duration its own way (``"5"``, ``5``, ``"8s"``, a frame count) and picks the picture's
shape with its own fields (``aspect_ratio``, ``resolution``, ``mode``). An
:class:`InputMap` says, for one model, how reelvault's request (still, prompt, seconds,
size) becomes that model's input, and which seconds and sizes it takes, so the host
refuses anything else before a request is sent.

A backend ships tables for the models it knows; a user adds one in ``config.toml``
without code::

    [plugins.fal.models."fal-ai/some-app/image-to-video"]
    image_field = "image_url"            # where the still goes
    prompt_field = "prompt"              # default "prompt"
    description = "Some app, 5 or 10 s"
    fixed = { enable_safety_checker = true }
    [plugins.fal.models."fal-ai/some-app/image-to-video".seconds]
    5 = { duration = "5" }
    10 = { duration = "10" }
    [plugins.fal.models."fal-ai/some-app/image-to-video".sizes]
    1280x720 = { aspect_ratio = "16:9" }
    720x1280 = { aspect_ratio = "9:16" }

The first ``seconds`` and ``sizes`` entries are the defaults. A user's table replaces a
built-in one of the same name.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from core.api.errors import ReelvaultError, RequestError
from core.api.settings import Settings
from core.api.types import GenerationRequest, ModelInfo, Size, Variant

__all__ = ["InputMap", "mapped_models", "maps_from_config"]


@dataclass(frozen=True)
class InputMap:
    """How reelvault's request becomes one model's input (see the module docstring)."""

    model: str
    image_field: str
    seconds: Mapping[int, Mapping[str, Any]]
    sizes: Mapping[str, Mapping[str, Any]]
    prompt_field: str = "prompt"
    fixed: Mapping[str, Any] = field(default_factory=dict)
    description: str = ""
    requires_image: bool = True

    def model_info(self, status: str) -> ModelInfo:
        return ModelInfo(
            name=self.model,
            seconds=tuple(sorted(self.seconds)),
            sizes=tuple(self.sizes),
            default_seconds=next(iter(self.seconds)),
            default_size=next(iter(self.sizes)),
            accepts_input_image=True,
            requires_input_image=self.requires_image,
            variants=(Variant.VIDEO,),
            status=status,
            description=self.description,
        )

    def input_for(self, request: GenerationRequest, image: str | None) -> dict[str, Any]:
        """The model's input for ``request``; ``image`` is the still as the provider
        takes it (a URL or a data URI)."""
        if request.seconds not in self.seconds:
            allowed = ", ".join(map(str, sorted(self.seconds)))
            raise RequestError(f"{self.model} takes {allowed} seconds, not {request.seconds}")
        if request.size not in self.sizes:
            raise RequestError(
                f"{self.model} does not make {request.size} (allowed: {', '.join(self.sizes)})"
            )
        values: dict[str, Any] = {**self.fixed, self.prompt_field: request.prompt}
        values.update(self.seconds[request.seconds])
        values.update(self.sizes[request.size])
        if image is not None:
            values[self.image_field] = image
        elif self.requires_image:
            raise RequestError(f"{self.model} needs an input image")
        return values


def mapped_models(
    settings: Settings, kind: str, builtin: Iterable[InputMap]
) -> dict[str, InputMap]:
    """A backend's tables by model name: its built-in ones, then the user's from
    ``[plugins.KIND.models]`` in config.toml, which replace a built-in one of the same name.

    Read afresh on every call, so a table added to config.toml is offered at once.
    """
    where = f"{settings.config_path}: [plugins.{kind}]"
    return {**{m.model: m for m in builtin}, **maps_from_config(settings.section(kind), where)}


def maps_from_config(config: Mapping[str, Any], where: str) -> dict[str, InputMap]:
    """The ``[plugins.BACKEND.models."MODEL"]`` tables of a backend's config section."""
    tables = config.get("models", {})
    if not isinstance(tables, Mapping):
        raise ReelvaultError(f"{where}: models must be a table of model tables")
    maps = {}
    for model, table in tables.items():
        place = f'{where}: [models."{model}"]'
        if not isinstance(table, Mapping) or not isinstance(table.get("image_field"), str):
            raise ReelvaultError(f"{place} needs image_field (the field the still goes in)")
        seconds = _fields_by(table.get("seconds"), place, "seconds", int)
        sizes = _fields_by(table.get("sizes"), place, "sizes", lambda s: str(Size.parse(s)))
        fixed = table.get("fixed", {})
        if not isinstance(fixed, Mapping):
            raise ReelvaultError(f"{place}: fixed must be a table")
        maps[model] = InputMap(
            model=model,
            image_field=table["image_field"],
            prompt_field=str(table.get("prompt_field", "prompt")),
            seconds=seconds,
            sizes=sizes,
            fixed=dict(fixed),
            description=str(table.get("description", "added in config.toml")),
            requires_image=bool(table.get("requires_image", True)),
        )
    return maps


def _fields_by(value: Any, place: str, name: str, key: Any) -> dict[Any, dict[str, Any]]:
    if not isinstance(value, Mapping) or not value:
        raise ReelvaultError(f"{place}: {name} must be a table of {name} to input fields")
    out = {}
    for raw, fields in value.items():
        try:
            parsed = key(raw)
        except (ValueError, RequestError):
            raise ReelvaultError(f"{place}: {raw!r} is not valid {name}") from None
        if not isinstance(fields, Mapping):
            raise ReelvaultError(f"{place}: {name}.{raw} must be a table of input fields")
        out[parsed] = dict(fields)
    return out
