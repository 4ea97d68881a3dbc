"""Regenerating a clip: the same shot made again with another model or backend.

A variant is an ordinary generation: :func:`regenerate` reads the shot off the clip's
row (its source still, prompt, length, size and the options that still apply) and hands
it to :func:`core.generation.request.generate`, the very flow ``reelvault generate``
runs, so a retired model is refused, the request is validated against the new model,
the policy checks run and the row is written before anything is sent, exactly as for a
new clip. Only the lineage differs: the new clip records ``variant_of`` the clip it
remade, so every variant of a shot can be found from any of them and compared.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from catalog.lookups import asset_by_id
from catalog.models import Asset, Generation
from catalog.queries import get_generation
from catalog.shots import shot_variants
from core.api.errors import RequestError
from core.api.types import ProgressCallback
from core.generation.request import generate
from core.generation.rows import GenerationResult
from core.host.app import Reelvault

SHAPE = ("seconds", "size")
"""Recorded in a row's parameters too, but given to the new model on their own."""
PORTABLE = ("fit",)
"""Options that mean the same to every backend: how the still is fitted to the size.
Any other (a provider profile, a backend's own knob) belongs to the clip's backend and
goes along only when the variant is made by that backend too."""


def regenerate(
    app: Reelvault,
    clip_id: str,
    *,
    model: str,
    backend: str | None = None,
    provider: str | None = None,
    seconds: int | None = None,
    size: str | None = None,
    fit: str | None = None,
    on_progress: ProgressCallback | None = None,
    queue: bool = False,
) -> GenerationResult:
    """Make the shot of ``clip_id`` again with ``model`` (on ``backend``, at ``provider``).

    The shot is the clip's source still, prompt, seconds and size; ``seconds``, ``size``
    and ``fit`` change them where the new model cannot have them as they were. A derived
    clip (a remix) is remade from its still and its own prompt: no other backend can
    reach its parent's video. With ``queue`` the variant is only recorded for a worker.
    """
    with app.session() as session:
        clip = get_generation(session, clip_id)
        source = asset_by_id(session, clip.source_asset_id)
    backend_obj, info = app.resolve_model(model, backend)
    if source is None and info.requires_input_image:
        raise RequestError(
            f"{clip.id} has no source still (it was made from its prompt or its parent's "
            f"video alone) and model {info.name} needs one: choose a model that makes clips "
            "from a prompt, or `reelvault generate` from a still"
        )
    parameters = variant_parameters(clip, backend_obj.name, provider, fit)
    return generate(
        app,
        _still(clip, source),
        clip.prompt,
        model=info.name,
        backend=backend_obj.name,
        seconds=seconds if seconds is not None else clip.seconds,
        size=size or clip.size,
        parameters=parameters,
        on_progress=on_progress,
        queue=queue,
        variant_of=clip,
    )


def variant_parameters(
    clip: Generation, backend: str, provider: str | None, fit: str | None
) -> dict[str, Any]:
    """The clip's options that make sense for a variant made by ``backend``, with the
    ones given now (``provider``, ``fit``: ``"none"`` drops a fit) in their place."""
    recorded: Mapping[str, Any] = clip.parameters or {}
    kept = {k: v for k, v in recorded.items() if k not in SHAPE}
    if backend != clip.backend:
        kept = {k: v for k, v in kept.items() if k in PORTABLE}
    if fit is not None:
        kept.pop("fit", None)
        if fit != "none":
            kept["fit"] = fit
    if provider is not None:
        kept["provider"] = provider
    return kept


def _still(clip: Generation, source: Asset | None) -> Asset | None:
    """The still the shot starts from: the cataloged source, never a file read again."""
    if source is not None and source.kind != "image":
        raise RequestError(f"{clip.id} was made from {source.id}, which is no still")
    return source


def variants_of(app: Reelvault, clip_id: str) -> list[Generation]:
    """Every clip of the same shot as ``clip_id`` (its original and all the variants made
    of it, at any remove), oldest first."""
    with app.session() as session:
        clip = get_generation(session, clip_id)
        return shot_variants(session, clip.id)
