"""A generation request, from what the user typed to a write-ahead row.

Everything that can be checked locally (input, model, seconds, size) is checked before
anything is written, so bad input writes nothing at all; then the source still is
stored, the policy checks run, and the generation row is written with every decision
*before* anything is submitted (:mod:`core.generation.run` takes it from there).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.lookups import asset_by_id
from catalog.models import Asset, Generation
from catalog.queries import get_generation
from catalog.records import add_generation, touch
from core.api.errors import JobInterrupted, PolicyDenied, RequestError
from core.api.ids import new_clip_id
from core.api.types import (
    Backend,
    DerivedRequest,
    GenerationRequest,
    GenerationStatus,
    ModelInfo,
    ProgressCallback,
    Relation,
    Size,
)
from core.generation.consent import request_context
from core.generation.policy import denials, run_checks
from core.generation.policy import warnings as policy_warnings
from core.generation.rows import GenerationResult, source_still_path
from core.generation.run import model_info, run_job, send
from core.host.app import Reelvault
from core.library.notes import request_note
from core.media.probe import MediaInfo, fit_image, probe_image
from core.provenance.ingest import Ingested, ingest


@dataclass(frozen=True)
class _Plan:
    """A validated request and everything needed to catalog it."""

    backend: Backend
    model: ModelInfo
    request: GenerationRequest | DerivedRequest
    source_asset_id: str | None
    parent: Generation | None = None
    input_asset_id: str | None = None  # the fitted still actually sent, when reelvault fitted it
    clip_id: str = dataclasses.field(default_factory=new_clip_id)

    @property
    def relation(self) -> Relation | None:
        """The new clip's relation to ``parent``: the derived request's, or, for an
        ordinary generation with a parent, a variant's."""
        if isinstance(self.request, DerivedRequest):
            return self.request.relation
        return Relation.VARIANT_OF if self.parent else None


def generate(
    app: Reelvault,
    image: Path | Asset | None,
    prompt: str,
    *,
    model: str | None = None,
    backend: str | None = None,
    seconds: int | None = None,
    size: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    on_progress: ProgressCallback | None = None,
    queue: bool = False,
    variant_of: Generation | None = None,
) -> GenerationResult:
    """Make a clip from a still (or from the prompt alone, where the model allows it).

    ``image`` is a file, or a still already in the catalog (an :class:`Asset`), which is
    used as it is rather than stored and verified again. ``variant_of`` records the new
    clip as a variant of that clip: the same shot made again (``reelvault regenerate``),
    through this very flow, so the lifecycle, the checks and the policy are the same.
    With ``queue``, the validated request is only recorded (status ``pending``, policy
    decisions included) for a worker to run: ``reelvault submit``.
    """
    backend_obj, info = app.resolve_model(model, backend)
    seconds = seconds if seconds is not None else info.default_seconds
    size = info.validate(seconds, size or info.default_size)
    _check_prompt(prompt)
    if image is None and info.requires_input_image:
        raise RequestError(f"model {info.name} needs an input image")
    if image is not None and not info.accepts_input_image:
        raise RequestError(f"model {info.name} does not take an input image")
    cataloged: Asset | None = None
    path: Path | None
    if isinstance(image, Asset):
        cataloged, path, name = image, source_still_path(app, image), image.original_name
    else:
        path, name = image, image.name if image else None
    name = name or "the still"
    still = probe_image(path) if path is not None else None
    fitted = _fit_input(path, name, still, info, size, parameters or {}) if path and still else None
    clip_id = new_clip_id()
    with request_note(app, clip_id) as note:  # what a kill before the row leaves, noted
        source = cataloged
        if source is None and path is not None:
            source = note.add(ingest(app, path, "image", info=still, original_name=path.name)).asset
        fitted_sent = _ingest_fitted(app, fitted, name, size, parameters or {}) if fitted else None
        sent = note.add(fitted_sent).asset if fitted_sent else None
        request = GenerationRequest(
            model=info.name,
            prompt=prompt,
            seconds=seconds,
            size=size,
            input_image=app.store.local_path((sent or source).file_sha256) if source else None,
            parameters=dict(parameters or {}),
        )
        plan = _Plan(
            backend_obj,
            info,
            request,
            source.id if source else None,
            parent=variant_of,
            input_asset_id=sent.id if sent else None,
            clip_id=clip_id,
        )
        return _submit_and_run(app, plan, on_progress, queue, note.row_written)


def derive(
    app: Reelvault,
    clip_id: str,
    prompt: str,
    *,
    relation: Relation = Relation.REMIX_OF,
    seconds: int | None = None,
    size: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    on_progress: ProgressCallback | None = None,
    queue: bool = False,
    backend: str | None = None,
) -> GenerationResult:
    """Remix (or edit, or extend) a finished clip; the new clip records its parent."""
    if not Relation.derives(relation):
        raise RequestError(
            f"a {relation.value} clip is not derived: `reelvault regenerate` makes it"
        )
    with app.session() as session:
        parent = get_generation(session, clip_id)
        source = asset_by_id(session, parent.source_asset_id)
        first_frame = asset_by_id(session, parent.thumbnail_asset_id)
    if parent.status == GenerationStatus.IMPORTED:
        # Its source still, when the credentials named one, may be known only by them.
        stored_source = source.id if source and source.stored_path else None
        plan = _imported_parent_plan(
            app, parent, first_frame, prompt, relation, backend, seconds, size, parameters
        )
        plan = dataclasses.replace(plan, source_asset_id=stored_source)
        return _submit_and_run(app, plan, on_progress, queue)
    if parent.status != GenerationStatus.COMPLETED or not parent.remote_job_id:
        raise RequestError(f"{parent.id} is {parent.status}; only a completed clip can be derived")
    backend_obj = app.backend(parent.backend)
    info = model_info(backend_obj, parent.model)
    if info is None:
        raise RequestError(f"backend {parent.backend} no longer offers model {parent.model}")
    if not info.supports(relation):
        kind = relation.value.removesuffix("_of")
        raise RequestError(f"model {info.name} does not support {kind}")
    seconds, size = _derived_shape(info, relation, parent, seconds, size)
    size = info.validate(seconds, size)
    _check_prompt(prompt)
    request = DerivedRequest(
        relation=relation,
        parent_job_id=parent.remote_job_id,
        prompt=prompt,
        model=info.name,
        seconds=seconds,
        size=size,
        parent_input_image=source_still_path(app, source) if source else None,
        parameters=dict(parameters or {}),
    )
    plan = _Plan(backend_obj, info, request, parent.source_asset_id, parent)
    return _submit_and_run(app, plan, on_progress, queue)


def _imported_parent_plan(
    app: Reelvault,
    parent: Generation,
    first_frame: Asset | None,
    prompt: str,
    relation: Relation,
    backend: str | None,
    seconds: int | None,
    size: str | None,
    parameters: Mapping[str, Any] | None,
) -> _Plan:
    """Deriving from an imported clip: no backend holds a job for it, so only a backend
    that animates a still can, from the clip's first frame (its thumbnail, sent as the
    new clip's input). ``backend`` defaults to the one the clip's credentials name, or
    the local one for a clip from elsewhere."""
    name = backend or (parent.backend if parent.backend != "import" else "local")
    backend_obj = app.backend(name)
    kind = relation.value.removesuffix("_of")
    info = model_info(backend_obj, parent.model) or next(
        (m for m in backend_obj.models() if m.derives_from_still), backend_obj.models()[0]
    )
    if not info.derives_from_still:
        raise RequestError(
            f"{parent.id} was imported, so there is no {name} video id for it: a {name} {kind} "
            f"needs the provider's own video id (a backend that animates the first frame, "
            f"such as --backend local, can {kind} it)"
        )
    if not info.supports(relation):
        raise RequestError(f"model {info.name} does not support {kind}")
    if first_frame is None or not first_frame.sha256 or not first_frame.stored_path:
        raise RequestError(f"{parent.id} has no first frame on record: import its video again")
    seconds = seconds if seconds is not None else parent.seconds
    seconds = seconds if seconds in info.seconds else info.default_seconds
    size = size or (parent.size if parent.size in info.sizes else info.default_size)
    size = info.validate(seconds, size)
    _check_prompt(prompt)
    request = DerivedRequest(
        relation=relation,
        parent_job_id=parent.remote_job_id or parent.id,
        prompt=prompt,
        model=info.name,
        seconds=seconds,
        size=size,
        parent_input_image=app.store.local_path(first_frame.file_sha256),
        parameters=dict(parameters or {}),
    )
    return _Plan(backend_obj, info, request, None, parent, input_asset_id=first_frame.id)


def _derived_shape(
    info: ModelInfo, relation: Relation, parent: Generation, seconds: int | None, size: str | None
) -> tuple[int, str]:
    """The duration and size a derived clip will really have, refusing what cannot be had.

    Where the model keeps the parent's duration or size for this relation (a sora remix
    takes a prompt and nothing else), asking for another one would be silently ignored
    by the service and then recorded in the catalog as if it had been honoured.
    """
    kind = relation.value.removesuffix("_of")
    if relation in info.derive_keeps_seconds:
        if seconds is not None and seconds != parent.seconds:
            raise RequestError(
                f"a {kind} with model {info.name} keeps the parent's {parent.seconds} seconds; "
                "--seconds cannot change it"
            )
        seconds = parent.seconds
    if relation in info.derive_keeps_size:
        if size is not None and str(Size.parse(size)) != parent.size:
            raise RequestError(
                f"a {kind} with model {info.name} keeps the parent's size {parent.size}; "
                "--size cannot change it"
            )
        size = parent.size
    return (seconds if seconds is not None else parent.seconds), (size or parent.size)


def _check_prompt(prompt: str) -> None:
    if not prompt or not prompt.strip():
        raise RequestError("the prompt is empty")


def _fit_input(
    image: Path,
    name: str,
    still: MediaInfo,
    info: ModelInfo,
    size: str,
    parameters: Mapping[str, Any],
) -> bytes | None:
    """The fitted still to send instead of ``image``, or ``None`` to send it as it is.

    A model that does not fit stills itself (``fits_input_image``) gets exactly the
    requested size: a still of another size is refused unless the request asks for a
    fit, so nothing is cropped that the user did not ask for, and nothing is stored yet.
    """
    assert still.width is not None and still.height is not None
    fit = info.still_fit(Size(still.width, still.height), size, parameters.get("fit"), name)
    if fit is None:
        return None
    wanted = Size.parse(size)
    return fit_image(image, wanted.width, wanted.height, fit)


def _ingest_fitted(
    app: Reelvault, data: bytes, still_name: str, size: str, parameters: Mapping[str, Any]
) -> Ingested:
    """Store the exact bytes that will be sent, so lineage shows what the model saw."""
    wanted = Size.parse(size)
    name = f"{Path(still_name).stem}.{parameters['fit']}-{size}.png"
    info = MediaInfo(mime="image/png", width=wanted.width, height=wanted.height)
    return ingest(app, data, "image", info=info, original_name=name)


def _submit_and_run(
    app: Reelvault,
    plan: _Plan,
    on_progress: ProgressCallback | None,
    queue: bool = False,
    row_written: Callable[[], None] | None = None,
) -> GenerationResult:
    """Record the attempt and its policy decisions, then run it (or leave it queued);
    ``row_written`` is told as soon as the row is committed."""
    context = request_context(app, plan.model, plan.source_asset_id)
    decisions = run_checks(app.host, plan.request, plan.backend.name, app.settings, context)
    warnings = tuple(policy_warnings(decisions))
    denied = denials(decisions)
    request = plan.request
    parameters = {"seconds": request.seconds, "size": request.size, **request.parameters}
    if denied:
        first_status = GenerationStatus.REJECTED
    else:
        first_status = GenerationStatus.PENDING if queue else GenerationStatus.SUBMITTING
    generation = Generation(
        id=plan.clip_id,
        backend=plan.backend.name,
        model=plan.model.name,
        prompt=request.prompt,
        seconds=request.seconds,
        size=request.size,
        parameters=parameters,
        status=first_status,
        source_asset_id=plan.source_asset_id,
        input_asset_id=plan.input_asset_id,
        parent_id=plan.parent.id if plan.parent else None,
        relation=plan.relation,
    )
    if denied:
        touch(generation, error_code="policy_denied", error_message=PolicyDenied.summary(denied))
    with app.session() as session:
        add_generation(session, generation, decisions)
    if row_written is not None:
        row_written()
    if denied:
        raise PolicyDenied(generation.id, denied)
    if queue:
        return GenerationResult(generation, warnings)
    try:
        send(app, plan.backend, request, generation.id)
        result = run_job(app, generation.id, on_progress=on_progress)
    except KeyboardInterrupt as exc:
        if type(exc) is not KeyboardInterrupt:  # raised on purpose as its own kind: kept
            raise
        raise JobInterrupted(generation.id) from None  # Ctrl-C, naming the clip cut short
    return GenerationResult(result.generation, (*warnings, *result.warnings))
