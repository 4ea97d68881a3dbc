"""Generation orchestration: from a request to a cataloged clip.

The order of steps is what keeps the catalog honest:

1. validate everything that can be checked locally (input, model, seconds, size), so bad
   input writes nothing at all;
2. store the source still and run the policy checks, recording every decision;
3. write the generation row *before* submitting (write-ahead), then record the
   backend's job id the moment it is known, so an interrupted run is resumed, never
   submitted twice;
4. poll to the end, download every variant into the content store, verify and catalog.
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from catalog.models import Asset, Generation, PolicyDecisionRecord, utcnow
from catalog.queries import get_generation, list_in_flight
from catalog.records import lock_generation, touch
from core.app import Reelvault
from core.consent import request_context
from core.errors import BackendError, ReelvaultError, RequestError
from core.ids import new_clip_id
from core.importer import catalog_file
from core.media import MediaInfo, fit_image, probe_image, probe_video
from core.plugins import call_each
from core.policy import denials, run_checks
from core.policy import warnings as policy_warnings
from core.provenance import sign
from core.store import StoredFile
from core.types import (
    Backend,
    ClipView,
    DerivedRequest,
    GenerationRequest,
    JobState,
    JobStatus,
    ModelInfo,
    Outcome,
    PolicyDecision,
    Relation,
    Size,
    Variant,
)

ProgressCallback = Callable[[str, int], None]
"""Called with (status, percent) while a job runs; the CLI draws a progress bar with it."""

DEFAULT_POLL_TIMEOUT = 3600.0
MIN_POLL_INTERVAL = 0.05
MAX_POLL_INTERVAL = 10.0
PROGRESS_WRITE_INTERVAL = 1.0
DOWNLOAD_ATTEMPTS = 4
DOWNLOAD_BACKOFF = 0.5

VARIANT_KINDS = {
    Variant.VIDEO: "video",
    Variant.THUMBNAIL: "thumbnail",
    Variant.SPRITESHEET: "spritesheet",
}


class PolicyDenied(ReelvaultError):
    """The request was refused by a policy; the attempt is cataloged as ``rejected``."""

    def __init__(self, generation_id: str, decisions: list[PolicyDecision]) -> None:
        reasons = "; ".join(f"{d.plugin}/{d.rule_id}: {d.reason}" for d in decisions)
        super().__init__(f"request denied by policy ({reasons}); recorded as {generation_id}")
        self.generation_id = generation_id
        self.decisions = decisions


@dataclass(frozen=True)
class _Plan:
    """A validated request and everything needed to catalog it."""

    backend: Backend
    model: ModelInfo
    request: GenerationRequest | DerivedRequest
    source_asset_id: str | None
    parent: Generation | None = None
    input_asset_id: str | None = None  # the fitted still actually sent, when reelvault fitted it


def generate(
    app: Reelvault,
    image: Path | None,
    prompt: str,
    *,
    model: str | None = None,
    backend: str | None = None,
    seconds: int | None = None,
    size: str | None = None,
    parameters: Mapping[str, Any] | None = None,
    on_progress: ProgressCallback | None = None,
    queue: bool = False,
) -> Generation:
    """Make a clip from a still (or from the prompt alone, where the model allows it).

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
    still = probe_image(image) if image is not None else None
    fitted = _fit_input(image, still, info, size, parameters or {}) if image and still else None
    source = ingest_image(app, image, still) if image is not None else None
    sent = _ingest_fitted(app, fitted, image, size, parameters or {}) if image and fitted else None
    request = GenerationRequest(
        model=info.name,
        prompt=prompt,
        seconds=seconds,
        size=size,
        input_image=app.store.root / (sent or source).stored_path if source else None,
        parameters=dict(parameters or {}),
    )
    plan = _Plan(
        backend_obj,
        info,
        request,
        source.id if source else None,
        input_asset_id=sent.id if sent else None,
    )
    return _submit_and_run(app, plan, on_progress, queue)


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
) -> Generation:
    """Remix (or edit, or extend) a finished clip; the new clip records its parent."""
    with app.session() as session:
        parent = get_generation(session, clip_id)
        source = session.get(Asset, parent.source_asset_id) if parent.source_asset_id else None
    if parent.status != JobState.COMPLETED or not parent.remote_job_id:
        raise RequestError(f"{parent.id} is {parent.status}; only a completed clip can be derived")
    backend_obj = app.backend(parent.backend)
    info = next((m for m in backend_obj.models() if m.name == parent.model), None)
    if info is None:
        raise RequestError(f"backend {parent.backend} no longer offers model {parent.model}")
    if not info.supports(relation):
        kind = relation.value.removesuffix("_of")
        raise RequestError(f"model {info.name} does not support {kind}")
    seconds = seconds if seconds is not None else parent.seconds
    size = info.validate(seconds, size or parent.size)
    _check_prompt(prompt)
    request = DerivedRequest(
        relation=relation,
        parent_job_id=parent.remote_job_id,
        prompt=prompt,
        model=info.name,
        seconds=seconds,
        size=size,
        parent_input_image=app.store.root / source.stored_path if source else None,
        parameters=dict(parameters or {}),
    )
    plan = _Plan(backend_obj, info, request, parent.source_asset_id, parent)
    return _submit_and_run(app, plan, on_progress, queue)


def _check_prompt(prompt: str) -> None:
    if not prompt or not prompt.strip():
        raise RequestError("the prompt is empty")


def ingest_image(app: Reelvault, path: Path, info: MediaInfo | None = None) -> Asset:
    """Store a still in the content store and catalog it (once per distinct content)."""
    info = info or probe_image(path)
    stored = app.store.put_file(path)
    return _catalog_asset(app, "image", stored, info, original_name=path.name)


def _fit_input(
    image: Path, still: MediaInfo, info: ModelInfo, size: str, parameters: Mapping[str, Any]
) -> bytes | None:
    """The fitted still to send instead of ``image``, or ``None`` to send it as it is.

    A model that does not fit stills itself (``fits_input_image``) gets exactly the
    requested size: a still of another size is refused unless the request asks for a
    fit, so nothing is cropped that the user did not ask for, and nothing is stored yet.
    """
    assert still.width is not None and still.height is not None
    fit = info.still_fit(Size(still.width, still.height), size, parameters.get("fit"), image.name)
    if fit is None:
        return None
    wanted = Size.parse(size)
    return fit_image(image, wanted.width, wanted.height, fit)


def _ingest_fitted(
    app: Reelvault, data: bytes, image: Path, size: str, parameters: Mapping[str, Any]
) -> Asset:
    """Store the exact bytes that will be sent, so lineage shows what the model saw."""
    stored = app.store.put_stream(io.BytesIO(data))
    wanted = Size.parse(size)
    name = f"{image.stem}.{parameters['fit']}-{size}.png"
    info = MediaInfo(mime="image/png", width=wanted.width, height=wanted.height)
    return _catalog_asset(app, "image", stored, info, original_name=name)


def _catalog_asset(
    app: Reelvault, kind: str, stored: StoredFile, info: MediaInfo, original_name: str | None
) -> Asset:
    return catalog_file(app, kind, stored, info, original_name).asset


def _submit_and_run(
    app: Reelvault, plan: _Plan, on_progress: ProgressCallback | None, queue: bool = False
) -> Generation:
    """Record the attempt and its policy decisions, then run it (or leave it queued)."""
    context = request_context(app, plan.model, plan.source_asset_id)
    decisions = run_checks(app.host, plan.request, plan.backend.name, app.settings, context)
    app.warnings.extend(policy_warnings(decisions))
    denied = denials(decisions)
    request = plan.request
    parameters = {"seconds": request.seconds, "size": request.size, **request.parameters}
    generation = Generation(
        id=new_clip_id(),
        backend=plan.backend.name,
        model=plan.model.name,
        prompt=request.prompt,
        seconds=request.seconds,
        size=request.size,
        parameters=parameters,
        status="rejected" if denied else ("pending" if queue else "submitting"),
        source_asset_id=plan.source_asset_id,
        input_asset_id=plan.input_asset_id,
        parent_id=plan.parent.id if plan.parent else None,
        relation=request.relation if isinstance(request, DerivedRequest) else None,
    )
    if denied:
        touch(generation, error_code="policy_denied", error_message=_reasons(denied))
    with app.session() as session:
        session.add(generation)
        session.flush()
        session.add_all(
            PolicyDecisionRecord(
                generation_id=generation.id,
                plugin=d.plugin,
                rule_id=d.rule_id,
                outcome=d.outcome,
                reason=d.reason,
            )
            for d in decisions
        )
    if denied:
        raise PolicyDenied(generation.id, denied)
    if queue:
        return generation
    send(app, plan.backend, request, generation.id)
    return run_job(app, generation.id, on_progress=on_progress)


def request_for(
    app: Reelvault, generation_id: str
) -> tuple[Backend, GenerationRequest | DerivedRequest]:
    """Rebuild the request a recorded (queued) generation stands for, from its row alone."""
    with app.session() as session:
        row = get_generation(session, generation_id)
        sent_id = row.input_asset_id or row.source_asset_id  # a fitted still is what is sent
        source = session.get(Asset, sent_id) if sent_id else None
        parent = session.get(Generation, row.parent_id) if row.parent_id else None
    backend = app.backend(row.backend)
    image = app.store.root / source.stored_path if source else None
    extra = {k: v for k, v in row.parameters.items() if k not in ("seconds", "size")}
    if parent is None:
        request: GenerationRequest | DerivedRequest = GenerationRequest(
            model=row.model,
            prompt=row.prompt,
            seconds=row.seconds,
            size=row.size,
            input_image=image,
            parameters=extra,
        )
    else:
        if not parent.remote_job_id:
            raise BackendError(f"{row.id}: its parent {parent.id} has no job id on record")
        request = DerivedRequest(
            relation=Relation(row.relation or Relation.REMIX_OF),
            parent_job_id=parent.remote_job_id,
            prompt=row.prompt,
            model=row.model,
            seconds=row.seconds,
            size=row.size,
            parent_input_image=image,
            parameters=extra,
        )
    return backend, request


def send(
    app: Reelvault,
    backend: Backend,
    request: GenerationRequest | DerivedRequest,
    generation_id: str,
) -> JobStatus:
    """Submit a request whose row (status ``submitting``) is already written.

    The job id is recorded the moment the backend returns it; a failure to submit is
    recorded on the row before it propagates, so no attempt is left dangling.
    """
    try:
        if isinstance(request, DerivedRequest):
            status = backend.derive(request)
        else:
            status = backend.submit(request)
    except ReelvaultError as exc:
        record_failure(app, generation_id, getattr(exc, "code", None) or "submit_failed", str(exc))
        raise
    except Exception as exc:  # a backend bug: keep the record honest, then let it show
        record_failure(app, generation_id, "backend_crashed", f"{type(exc).__name__}: {exc}")
        raise
    _record_status(app, generation_id, status)
    return status


def _reasons(decisions: list[PolicyDecision]) -> str:
    return "; ".join(f"{d.plugin}/{d.rule_id}: {d.reason}" for d in decisions)


def run_job(
    app: Reelvault,
    generation_id: str,
    *,
    on_progress: ProgressCallback | None = None,
    timeout: float | None = None,
) -> Generation:
    """Poll a submitted job to its end, then download and catalog what it made.

    Safe to call again for a job an earlier process left unfinished: it polls the job id
    already on record and never submits anything.
    """
    with app.session() as session:
        generation = get_generation(session, generation_id)
    if generation.status in ("completed", "failed", "rejected"):
        return generation
    if not generation.remote_job_id:
        raise BackendError(f"{generation.id} has no job id on record; it cannot be resumed")
    backend = app.backend(generation.backend)
    info = next((m for m in backend.models() if m.name == generation.model), None)
    if info is None:
        raise BackendError(f"backend {backend.name} no longer offers model {generation.model}")
    limit = (
        timeout
        if timeout is not None
        else float(app.settings.config.get("poll_timeout", DEFAULT_POLL_TIMEOUT))
    )
    status = _poll_until_done(app, generation, backend, limit, on_progress)
    if status.state == JobState.FAILED:
        return record_failure(
            app,
            generation.id,
            status.error_code or "failed",
            status.error_message or "the backend reported a failure without a reason",
            details=status.details,
            refused_by=backend.name if status.refused else None,
        )
    if status.expires_at is not None and status.expires_at <= time.time():
        return _record_expired(app, generation.id, status)
    return _finish(app, generation, backend, info, status)


def _record_expired(app: Reelvault, generation_id: str, status: JobStatus) -> Generation:
    """Outputs past ``expires_at`` are gone for good: say so, not "download failed"."""
    when = datetime.fromtimestamp(status.expires_at or 0, UTC).isoformat(timespec="seconds")
    return record_failure(
        app,
        generation_id,
        "expired",
        f"the outputs of {status.job_id} expired at {when} before they were downloaded; "
        "they can no longer be fetched (generate or remix again)",
        details=status.details,
    )


def _poll_until_done(
    app: Reelvault,
    generation: Generation,
    backend: Backend,
    limit: float,
    on_progress: ProgressCallback | None,
) -> JobStatus:
    assert generation.remote_job_id is not None
    deadline = time.monotonic() + limit
    interval = 1.0
    last_written = (generation.status, generation.progress)
    last_write_time = 0.0
    while True:
        status = backend.poll(generation.remote_job_id)
        if on_progress:
            on_progress(status.state, status.progress)
        now = time.monotonic()
        changed = (status.state, status.progress) != last_written
        if status.state.is_terminal:
            return status
        if changed and (status.state != last_written[0] or now - last_write_time > 1.0):
            _record_status(app, generation.id, status)
            last_written, last_write_time = (status.state, status.progress), now
        if now >= deadline:
            raise BackendError(
                f"{generation.id} is still {status.state} after {limit:.0f}s; "
                "it keeps running remotely: `reelvault resume` picks it up later",
                code="poll_timeout",
            )
        if status.poll_after is not None:
            wait = status.poll_after
        else:
            wait, interval = interval, min(interval * 2, MAX_POLL_INTERVAL)
        time.sleep(max(MIN_POLL_INTERVAL, min(wait, deadline - now)))


def _record_status(app: Reelvault, generation_id: str, status: JobStatus) -> None:
    with app.session() as session:
        generation = lock_generation(session, generation_id)
        if generation is None or generation.status in ("completed", "failed"):
            return
        touch(
            generation,
            remote_job_id=status.job_id,
            status=status.state.value if not status.state.is_terminal else generation.status,
            progress=status.progress,
            details=dict(status.details) or generation.details,
        )


def record_failure(
    app: Reelvault,
    generation_id: str,
    code: str,
    message: str,
    details: Mapping[str, Any] | None = None,
    refused_by: str | None = None,
) -> Generation:
    """Mark an attempt failed, once: a job that already ended keeps its first outcome.

    ``refused_by`` names a backend whose service declined the content (a moderation
    refusal); that is recorded as a deny decision of the backend as well, so policy
    records show every refusal, whoever made it.
    """
    with app.session() as session:
        generation = lock_generation(session, generation_id)
        assert generation is not None
        if generation.status in ("completed", "failed"):
            return generation
        touch(
            generation,
            status="failed",
            error_code=code,
            error_message=message,
            completed_at=utcnow(),
            details=dict(details or {}) or generation.details,
        )
        if refused_by is not None:
            session.add(
                PolicyDecisionRecord(
                    generation_id=generation_id,
                    plugin=refused_by,
                    rule_id=code,
                    outcome=Outcome.DENY,
                    reason=message,
                )
            )
        return generation


def _finish(
    app: Reelvault, generation: Generation, backend: Backend, info: ModelInfo, status: JobStatus
) -> Generation:
    assets: dict[Variant, Asset] = {}
    try:
        for variant in info.variants:
            assets[variant] = _download_variant(app, generation, backend, variant, status)
    except BackendError as exc:
        if exc.code != "expired":
            raise  # the job stays in flight: `reelvault resume` tries the download again
        return record_failure(app, generation.id, "expired", str(exc), details=status.details)
    with app.session() as session:
        row = lock_generation(session, generation.id)
        assert row is not None
        if row.status in ("completed", "failed"):  # someone else finished it meanwhile
            return row
        touch(
            row,
            status="completed",
            progress=100,
            details=dict(status.details) or row.details,
            output_asset_id=assets[Variant.VIDEO].id if Variant.VIDEO in assets else None,
            thumbnail_asset_id=assets[Variant.THUMBNAIL].id
            if Variant.THUMBNAIL in assets
            else None,
            spritesheet_asset_id=assets[Variant.SPRITESHEET].id
            if Variant.SPRITESHEET in assets
            else None,
            completed_at=utcnow(),
        )
        finished = row
    _announce(app, finished)
    return finished


def _download_variant(
    app: Reelvault, generation: Generation, backend: Backend, variant: Variant, status: JobStatus
) -> Asset:
    kind = VARIANT_KINDS[variant]
    with _scratch_file(app, f"{generation.id}-{variant}") as tmp:
        _fetch(backend, status.job_id, variant, tmp)
        info = probe_video(tmp) if kind == "video" else probe_image(tmp)
        to_store = tmp
        if kind == "video":
            claims = _claims(app, generation, status)
            signed = sign(app.host, tmp, info.mime, claims, app.settings)
            to_store = signed or tmp
        try:
            stored = app.store.put_file(to_store)
        finally:
            if to_store != tmp:
                to_store.unlink(missing_ok=True)
    return _catalog_asset(app, kind, stored, info, original_name=None)


def _fetch(backend: Backend, job_id: str, variant: Variant, path: Path) -> None:
    """Download one variant into ``path``, starting over after a transient failure.

    A download that broke off part-way cannot be continued in the same file (a backend
    writes forward only), so each attempt truncates it and starts from the first byte.
    """
    for attempt in range(DOWNLOAD_ATTEMPTS):
        try:
            with path.open("wb") as fh:
                backend.download(job_id, variant, fh)
            return
        except BackendError as exc:
            if not exc.transient or attempt == DOWNLOAD_ATTEMPTS - 1:
                raise
            time.sleep(min(DOWNLOAD_BACKOFF * 2**attempt, MAX_POLL_INTERVAL))


@contextlib.contextmanager
def _scratch_file(app: Reelvault, stem: str) -> Iterator[Path]:
    folder = app.settings.work_dir / "incoming"
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, prefix=f"{stem}-")
    path = Path(name)
    os.close(fd)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _claims(app: Reelvault, generation: Generation, status: JobStatus) -> dict[str, Any]:
    """What a signer binds into the output's credentials.

    ``details`` is what the backend reported for the finished job (the local backend's
    motion plan); ``parent`` names the parent clip's generation as well as its video.
    """
    with app.session() as session:
        source = (
            session.get(Asset, generation.source_asset_id) if generation.source_asset_id else None
        )
        parent = session.get(Generation, generation.parent_id) if generation.parent_id else None
        parent_video = (
            session.get(Asset, parent.output_asset_id)
            if parent and parent.output_asset_id
            else None
        )
    return {
        "generation_id": generation.id,
        "backend": generation.backend,
        "model": generation.model,
        "prompt": generation.prompt,
        "parameters": dict(generation.parameters),
        "relation": generation.relation,
        "details": dict(status.details),
        "source": _asset_claim(app, source),
        "parent": _asset_claim(app, parent_video, generation_id=generation.parent_id),
    }


def _asset_claim(
    app: Reelvault, asset: Asset | None, generation_id: str | None = None
) -> dict[str, Any] | None:
    if asset is None:
        return None
    claim = {
        "id": asset.id,
        "sha256": asset.sha256,
        "mime": asset.mime,
        "path": str(app.store.root / asset.stored_path) if asset.stored_path else None,
    }
    return {**claim, "generation_id": generation_id} if generation_id else claim


def clip_view(app: Reelvault, session: Session, generation: Generation) -> ClipView:
    def path_of(asset_id_: str | None) -> Path | None:
        asset = session.get(Asset, asset_id_) if asset_id_ else None
        return app.store.root / asset.stored_path if asset else None

    return ClipView(
        id=generation.id,
        backend=generation.backend,
        model=generation.model,
        prompt=generation.prompt,
        status=generation.status,
        parameters=dict(generation.parameters),
        source_asset_id=generation.source_asset_id,
        parent_id=generation.parent_id,
        relation=generation.relation,
        video_path=path_of(generation.output_asset_id),
        thumbnail_path=path_of(generation.thumbnail_asset_id),
    )


def _announce(app: Reelvault, generation: Generation) -> None:
    with app.session() as session:
        view = clip_view(app, session, generation)
    for plugin, _result, error in call_each(
        app.host, "clip_cataloged", clip=view, settings=app.settings
    ):
        if error:
            app.warnings.append(f"plugin {plugin} failed in clip_cataloged: {error}")


def in_flight(app: Reelvault) -> list[Generation]:
    """Generations that were started and have not reached an end, oldest first."""
    with app.session() as session:
        return list_in_flight(session)


def resume(
    app: Reelvault, on_progress: ProgressCallback | None = None
) -> list[tuple[Generation, str | None]]:
    """Finish every interrupted job, polling the job id on record; never submits anew.

    Returns each job with ``None`` when it was finished, or the reason it could not be.
    One job's failure does not stop the others. Queued work and jobs under a worker's
    lease are left to the workers.
    """
    outcomes: list[tuple[Generation, str | None]] = []
    for generation in in_flight(app):
        if generation.status in ("pending", "claimed") or generation.lease_owner:
            continue
        if not generation.remote_job_id:
            outcomes.append((generation, "never reached the backend: no job id on record"))
            continue
        try:
            outcomes.append((run_job(app, generation.id, on_progress=on_progress), None))
        except ReelvaultError as exc:
            outcomes.append((generation, str(exc)))
    return outcomes
