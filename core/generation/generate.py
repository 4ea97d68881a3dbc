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
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from catalog.models import Asset, Generation, PolicyDecisionRecord, utcnow
from catalog.queries import get_generation, list_in_flight
from catalog.queue import claim_finish, database_now, release, renew
from catalog.records import adopt_job_id, lock_generation, touch
from catalog.statuses import (
    CLAIMED,
    COMPLETED,
    ENDED,
    FAILED,
    FINISHING,
    IN_PROGRESS,
    PENDING,
    REJECTED,
    SUBMITTING,
)
from core.api.errors import BackendError, JobStopped, PolicyDenied, ReelvaultError, RequestError
from core.api.ids import new_clip_id
from core.api.types import (
    Backend,
    ClipView,
    DerivedRequest,
    GenerationRequest,
    JobState,
    JobStatus,
    ListsJobs,
    ModelInfo,
    Outcome,
    Relation,
    Size,
    Variant,
)
from core.generation.consent import request_context
from core.generation.policy import denials, run_checks
from core.generation.policy import warnings as policy_warnings
from core.host.app import Reelvault
from core.host.plugins import call_each
from core.media.probe import MediaInfo, fit_image, probe_image, probe_video
from core.media.store import StoredFile
from core.provenance.credentials import sign
from core.provenance.importer import catalog_file

ProgressCallback = Callable[[str, int], None]
"""Called with (status, percent) while a job runs; the CLI draws a progress bar with it."""

DEFAULT_POLL_TIMEOUT = 3600.0
MIN_POLL_INTERVAL = 0.05
MAX_POLL_INTERVAL = 10.0
PROGRESS_WRITE_INTERVAL = 1.0
DOWNLOAD_ATTEMPTS = 4
DOWNLOAD_BACKOFF = 0.5
FINISH_CLAIM = timedelta(seconds=300)
"""How long a finisher holds a job between signs of life (one per downloaded variant)."""
FINISH_WAIT_INTERVAL = 0.2
LAPSED = timedelta(seconds=1)
"""How far in the past a lease is set that should be taken over at once."""
SUBMIT_INTERRUPTED = "submit_interrupted"
"""A worker found the job sent by another one that died before recording its id."""

VARIANT_KINDS = {
    Variant.VIDEO: "video",
    Variant.THUMBNAIL: "thumbnail",
    Variant.SPRITESHEET: "spritesheet",
}


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
        input_image=app.store.local_path((sent or source).sha256) if source else None,
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
        parent_input_image=app.store.local_path(source.sha256) if source else None,
        parameters=dict(parameters or {}),
    )
    plan = _Plan(backend_obj, info, request, parent.source_asset_id, parent)
    return _submit_and_run(app, plan, on_progress, queue)


def model_info(backend: Backend, name: str) -> ModelInfo | None:
    """The model a backend offers under ``name``, or ``None`` once it no longer does."""
    return next((m for m in backend.models() if m.name == name), None)


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
        status=REJECTED if denied else (PENDING if queue else SUBMITTING),
        source_asset_id=plan.source_asset_id,
        input_asset_id=plan.input_asset_id,
        parent_id=plan.parent.id if plan.parent else None,
        relation=request.relation if isinstance(request, DerivedRequest) else None,
    )
    if denied:
        touch(generation, error_code="policy_denied", error_message=PolicyDenied.summary(denied))
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
    image = app.store.local_path(source.sha256) if source else None
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
    *,
    owner: str | None = None,
) -> JobStatus:
    """Submit a request whose row (status ``submitting``) is already written.

    The job id is recorded the moment the backend returns it; a failure to submit is
    recorded on the row before it propagates, so no attempt is left dangling. ``owner``
    is the worker sending it (see :func:`_record_sent`).
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
    _record_sent(app, generation_id, status, owner, listed=isinstance(backend, ListsJobs))
    return status


def _record_sent(
    app: Reelvault, generation_id: str, status: JobStatus, owner: str | None, *, listed: bool
) -> None:
    """Record a job id the backend just returned, whatever became of the row meanwhile.

    The job exists and is paid for, so its id is always kept. A worker that lost its
    lease while the create was in flight finds its row failed as ``submit_interrupted``
    by the worker that took over (which could not know the create would succeed): the
    row goes back in flight, under a lease that has run out, so that this worker or
    any other one finishes it. A row ``sync`` imported for the same job meanwhile is
    folded into this one (:func:`catalog.records.adopt_job_id`) when the backend lists
    its jobs (``listed``): only then is a job id one create's alone.
    """
    attempts = 3
    for attempt in range(attempts):
        try:
            with app.session() as session:
                row = lock_generation(session, generation_id)
                if row is None:
                    return
                if row.remote_job_id is None:
                    adopt_job_id(session, row, status.job_id, listed=listed)
                state = IN_PROGRESS if status.state.is_terminal else status.state.value
                if row.status == FAILED and row.error_code == SUBMIT_INTERRUPTED:
                    touch(row, status=state, error_code=None, error_message=None)
                    row.completed_at = None
                    if owner is not None:
                        row.lease_owner = owner
                        row.lease_expires_at = database_now(session) - LAPSED
                elif row.status not in (*ENDED, FINISHING):
                    touch(row, status=state, progress=status.progress)
                if row.status not in ENDED:
                    row.details = _merged(row.details, status.details)
                session.add(row)
            return
        except sa.exc.IntegrityError:
            # PostgreSQL: a concurrent ``sync`` committed a row with this id after our
            # look-up; the next attempt sees it and takes it over.
            if attempt == attempts - 1:
                raise


def run_job(
    app: Reelvault,
    generation_id: str,
    *,
    on_progress: ProgressCallback | None = None,
    timeout: float | None = None,
    owner: str | None = None,
    stop: threading.Event | None = None,
) -> Generation:
    """Poll a submitted job to its end, then download and catalog what it made.

    Safe to call again for a job an earlier process left unfinished: it polls the job id
    already on record and never submits anything. ``owner`` is the worker whose lease
    covers the job; ``stop`` ends the polling early with :class:`JobStopped`.

    Returns the row as it stands at the end: completed or failed, or still in flight
    when another process holds the job (a worker's live lease) and will finish it.
    """
    with app.session() as session:
        generation = get_generation(session, generation_id)
    if generation.status in ENDED:
        return generation
    if not generation.remote_job_id:
        raise BackendError(f"{generation.id} has no job id on record; it cannot be resumed")
    backend = app.backend(generation.backend)
    info = model_info(backend, generation.model)
    if info is None:
        raise BackendError(f"backend {backend.name} no longer offers model {generation.model}")
    limit = (
        timeout
        if timeout is not None
        else float(app.settings.config.get("poll_timeout", DEFAULT_POLL_TIMEOUT))
    )
    status = _poll_until_done(app, generation, backend, limit, on_progress, stop)
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
    return _finish(app, generation, backend, info, status, owner, stop)


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
    stop: threading.Event | None = None,
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
        if changed and (
            status.state != last_written[0] or now - last_write_time >= PROGRESS_WRITE_INTERVAL
        ):
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
        _pause(max(MIN_POLL_INTERVAL, min(wait, deadline - now)), stop, generation.id)


def _pause(seconds: float, stop: threading.Event | None, generation_id: str) -> None:
    """Sleep between polls, or raise :class:`JobStopped` as soon as ``stop`` is set."""
    if stop is None:
        time.sleep(seconds)
    elif stop.is_set() or stop.wait(seconds):
        raise JobStopped(
            f"{generation_id} was left in flight on request; it keeps running remotely "
            "and is picked up again by the next worker or `reelvault resume`"
        )


def _record_status(app: Reelvault, generation_id: str, status: JobStatus) -> None:
    """Keep the row's state and progress up to date while the job runs."""
    with app.session() as session:
        generation = lock_generation(session, generation_id)
        if generation is None or generation.status in (*ENDED, FINISHING):
            return  # a finisher owns the row now; polling has nothing to add
        touch(
            generation,
            status=status.state.value if not status.state.is_terminal else generation.status,
            progress=status.progress,
            details=_merged(generation.details, status.details),
        )


def _merged(recorded: Mapping[str, Any], reported: Mapping[str, Any]) -> dict[str, Any]:
    """The row's details updated with what the backend reports now; nothing else is lost
    (a note such as ``merged_import`` outlives every later poll)."""
    return {**recorded, **reported}


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
        if generation.status in ENDED:
            return generation
        touch(
            generation,
            status=FAILED,
            error_code=code,
            error_message=message,
            completed_at=utcnow(),
            details=_merged(generation.details, details or {}),
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


def finisher_name() -> str:
    """Who holds a finishing claim outside a worker: this process, once per job."""
    return f"finishing:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class _ClaimLost(Exception):
    """Another process took the finishing claim over (ours lapsed): drop our work."""


def _finish(
    app: Reelvault,
    generation: Generation,
    backend: Backend,
    info: ModelInfo,
    status: JobStatus,
    owner: str | None = None,
    stop: threading.Event | None = None,
) -> Generation:
    """Download, sign and catalog every variant, once, whoever else is finishing the job.

    The work happens under a finishing claim taken before the first byte is fetched, so
    a second finisher (a webhook next to a poll, a worker whose lease lapsed next to its
    successor, ``resume`` next to a live ``generate``) waits for the first, or leaves
    the job to the worker that holds it, instead of storing and signing a second copy.
    """
    finisher = owner or finisher_name()
    claimed = _claim_finish(app, generation.id, finisher, stop)
    if isinstance(claimed, Generation):
        return claimed
    assets: dict[Variant, Asset] = {}
    try:
        for variant in info.variants:
            _keep_claim(app, generation.id, finisher, extend=owner is None)
            assets[variant] = _download_variant(
                app, generation, backend, variant, status, finisher, extend=owner is None
            )
    except _ClaimLost:
        return _current(app, generation.id)
    except BackendError as exc:
        if exc.code != "expired":
            _give_back(app, generation.id, finisher, claimed, owned=owner is not None)
            raise  # the job stays in flight: a worker or `reelvault resume` tries again
        failed = record_failure(app, generation.id, "expired", str(exc), details=status.details)
        if owner is None:
            _release(app, finisher, generation.id)
        return failed
    except BaseException:
        _give_back(app, generation.id, finisher, claimed, owned=owner is not None)
        raise
    with app.session() as session:
        row = lock_generation(session, generation.id)
        if row is None or row.status != FINISHING or row.lease_owner != finisher:
            return row or generation  # our claim lapsed and someone else took the job
        if owner is None:  # a worker gives its lease back itself once the job is done
            row.lease_owner, row.lease_expires_at = None, None
        touch(
            row,
            status=COMPLETED,
            progress=100,
            details=_merged(row.details, status.details),
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


def _claim_finish(
    app: Reelvault, generation_id: str, finisher: str, stop: threading.Event | None
) -> str | Generation:
    """Take the finishing claim; returns the status it replaced, or the row to return.

    While another process is finishing the job this waits for it (its claim is renewed
    per variant, and taken over if it lapses), so a ``generate`` whose job a webhook
    finished still returns the completed clip. A job held by a worker that is still
    polling it is left to that worker.
    """
    while True:
        with app.session() as session:
            row = lock_generation(session, generation_id)
            assert row is not None
            if row.status in ENDED:
                return row
            before = row.status if row.status != FINISHING else IN_PROGRESS
            if claim_finish(session, row, finisher, FINISH_CLAIM):
                return before
            if row.status != FINISHING:
                return row
        _pause(FINISH_WAIT_INTERVAL, stop, generation_id)


def _keep_claim(app: Reelvault, generation_id: str, finisher: str, *, extend: bool) -> None:
    """Check the finishing claim is still ours (and ``extend`` it), else :class:`_ClaimLost`.

    A worker's claim is its lease, which its main thread renews at the lease's own pace;
    anyone else extends the claim here, once per variant.
    """
    with app.session() as session:
        row = lock_generation(session, generation_id)
        if row is None or row.status != FINISHING or row.lease_owner != finisher:
            raise _ClaimLost(generation_id)
        if extend:
            renew(session, finisher, [generation_id], FINISH_CLAIM)


def _give_back(
    app: Reelvault, generation_id: str, finisher: str, before: str, *, owned: bool
) -> None:
    """Undo a finishing claim whose work failed, so the job is tried again.

    A worker keeps its lease and lets it run out (another worker retries after that);
    anyone else lets go at once, as a ``generate`` always has: ``resume`` retries it.
    """
    with app.session() as session:
        row = lock_generation(session, generation_id)
        if row is None or row.status != FINISHING or row.lease_owner != finisher:
            return
        touch(row, status=before)
        if not owned:
            row.lease_owner, row.lease_expires_at = None, None


def _release(app: Reelvault, finisher: str, generation_id: str) -> None:
    with app.session() as session:
        release(session, finisher, generation_id)


def _current(app: Reelvault, generation_id: str) -> Generation:
    with app.session() as session:
        return get_generation(session, generation_id)


def _download_variant(
    app: Reelvault,
    generation: Generation,
    backend: Backend,
    variant: Variant,
    status: JobStatus,
    finisher: str,
    *,
    extend: bool,
) -> Asset:
    kind = VARIANT_KINDS[variant]
    with _scratch_file(app, f"{generation.id}-{variant}") as tmp:
        _fetch(backend, status.job_id, variant, tmp)
        info = probe_video(tmp) if kind == "video" else probe_image(tmp)
        to_store = tmp
        if kind == "video":
            _keep_claim(app, generation.id, finisher, extend=extend)  # never sign twice
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
        "path": str(app.store.local_path(asset.sha256)) if asset.stored_path else None,
    }
    return {**claim, "generation_id": generation_id} if generation_id else claim


def clip_view(app: Reelvault, session: Session, generation: Generation) -> ClipView:
    def path_of(asset_id_: str | None) -> Path | None:
        asset = session.get(Asset, asset_id_) if asset_id_ else None
        return app.store.path_for(asset.sha256) if asset and asset.sha256 else None

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


def _held(generation: Generation, now: datetime) -> bool:
    """Under a live lease or finishing claim (in the database's time): someone has it."""
    expires = generation.lease_expires_at
    return generation.lease_owner is not None and (expires is None or expires >= now)


def in_flight(app: Reelvault) -> list[Generation]:
    """Generations that were started and have not reached an end, oldest first."""
    with app.session() as session:
        return list_in_flight(session)


def resume(
    app: Reelvault, on_progress: ProgressCallback | None = None
) -> list[tuple[Generation, str | None]]:
    """Finish every interrupted job, polling the job id on record; never submits anew.

    Returns each job with ``None`` when it was finished, or the reason it could not be.
    One job's failure does not stop the others. Queued work and jobs under a live lease
    (a worker's, or another process finishing them) are left alone; a lease that ran
    out means its holder died, and the job is finished here.
    """
    outcomes: list[tuple[Generation, str | None]] = []
    with app.session() as session:
        now = database_now(session)
    for generation in in_flight(app):
        if generation.status in (PENDING, CLAIMED) or _held(generation, now):
            continue
        if not generation.remote_job_id:
            outcomes.append((generation, "never reached the backend: no job id on record"))
            continue
        try:
            result = run_job(app, generation.id, on_progress=on_progress)
        except ReelvaultError as exc:
            outcomes.append((generation, str(exc)))
            continue
        if result.status in ENDED:
            outcomes.append((result, None))
        else:
            outcomes.append((result, f"taken over meanwhile by {result.lease_owner}"))
    return outcomes
