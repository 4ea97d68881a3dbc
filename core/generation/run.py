"""Running a recorded generation: submit it, poll it to its end, hand it to finishing.

The backend's job id is written the moment it is known, so an interrupted run is
resumed from the id on record (:func:`resume`), never submitted twice.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import sqlalchemy as sa

from catalog.listed_jobs import failed_with, matches_listed_job
from catalog.lookups import asset_by_id, generation_by_id
from catalog.models import Generation
from catalog.queries import generations_by_job_ids, get_generation, list_in_flight
from catalog.queue import database_now
from catalog.records import adopt_job_id, lock_generation, reopen_for_retry, save, touch
from catalog.statuses import ENDED
from core.api.capabilities import ListsJobs
from core.api.errors import BackendError, ReelvaultError, StorageError
from core.api.times import timestamp_text
from core.api.types import (
    Backend,
    DerivedRequest,
    GenerationRequest,
    GenerationStatus,
    JobState,
    JobStatus,
    ModelInfo,
    ProgressCallback,
    Relation,
)
from core.generation.claim import Claim, WorkerLease, held
from core.generation.finish import finish
from core.generation.poller import shared_poller
from core.generation.rows import GenerationResult, current, merged, record_failure
from core.host.app import Reelvault
from core.library.doctor import remove_work_leftovers
from core.library.notes import settle_abandoned

DEFAULT_POLL_TIMEOUT = 3600.0
MIN_POLL_INTERVAL = 0.05
MAX_POLL_INTERVAL = 10.0
PROGRESS_WRITE_INTERVAL = 1.0
SUBMIT_INTERRUPTED = "submit_interrupted"
"""A worker found the job sent by another one that died before recording its id."""


def model_info(backend: Backend, name: str) -> ModelInfo | None:
    """The model a backend offers under ``name``, or ``None`` once it no longer does."""
    return next((m for m in backend.models() if m.name == name), None)


def send(
    app: Reelvault,
    backend: Backend,
    request: GenerationRequest | DerivedRequest,
    generation_id: str,
    *,
    lease: WorkerLease | None = None,
) -> JobStatus:
    """Submit a request whose row (status ``submitting``) is already written.

    The job id is recorded the moment the backend returns it; a failure to submit is
    recorded on the row before it propagates, so no attempt is left dangling. ``lease``
    is the worker's, when a worker sends it (see :func:`_record_sent`).
    """
    try:
        if isinstance(request, DerivedRequest):
            status = backend.derive(request)
        else:
            status = backend.submit(request)
    except StorageError as exc:
        # A full or read-only disk stopped the create before it was sent: the row is
        # the one a kill before submission leaves, and `resume --retry` sends it again.
        record_failure(app, generation_id, INTERRUPTED_BEFORE_SUBMISSION, str(exc))
        raise
    except ReelvaultError as exc:
        adopted = _adopt_lost_create(app, backend, generation_id, exc, lease)
        if adopted is not None:
            return adopted
        record_failure(app, generation_id, getattr(exc, "code", None) or "submit_failed", str(exc))
        raise
    except Exception as exc:  # a backend bug: keep the record honest, then let it show
        record_failure(app, generation_id, "backend_crashed", f"{type(exc).__name__}: {exc}")
        raise
    _record_sent(app, generation_id, status, lease, listed=isinstance(backend, ListsJobs))
    return status


MAYBE_CREATED = ("network", "server_error")
"""Codes of a create error that is not transient: the request may have reached the
service (the connection broke, or a 5xx, after it was sent), so the job may exist."""
LOST_CREATE_LOOKS = 3
LOST_CREATE_LOOK_INTERVAL = 1.0


def _adopt_lost_create(
    app: Reelvault,
    backend: Backend,
    generation_id: str,
    error: ReelvaultError,
    lease: WorkerLease | None,
) -> JobStatus | None:
    """The job a create made although its answer was lost, recorded; else ``None``.

    The create is never sent again (the API has no idempotency key: a second one could
    start and bill a second video). A backend that lists its jobs is asked instead, a
    few times, for the job that matches the row, exactly as :func:`resume` reconciles a
    row killed in the middle of its create; found, it is recorded and run like any other.
    """
    if not isinstance(error, BackendError) or error.code not in MAYBE_CREATED:
        return None
    if error.transient or not isinstance(backend, ListsJobs):
        return None
    generation = current(app, generation_id)
    for look in range(LOST_CREATE_LOOKS):
        if look:
            time.sleep(LOST_CREATE_LOOK_INTERVAL)
        try:
            status = _listed_match(app, backend, generation)
        except ReelvaultError:
            return None
        if status is not None:
            _record_sent(app, generation_id, status, lease, listed=True)
            return status
    return None


def _record_sent(
    app: Reelvault,
    generation_id: str,
    status: JobStatus,
    lease: WorkerLease | None,
    *,
    listed: bool,
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
                state = (
                    GenerationStatus.IN_PROGRESS
                    if status.state.is_terminal
                    else status.state.status
                )
                if row.status == GenerationStatus.FAILED and row.error_code == SUBMIT_INTERRUPTED:
                    touch(row, status=state, error_code=None, error_message=None)
                    row.completed_at = None
                    if lease is not None:
                        lease.lapse(row, database_now(session))
                elif row.status not in (*ENDED, GenerationStatus.FINISHING):
                    touch(row, status=state, progress=status.progress)
                if row.status not in ENDED:
                    row.details = merged(row.details, status.details)
                save(session, row)
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
    claim: Claim | None = None,
    stop: threading.Event | None = None,
) -> GenerationResult:
    """Poll a submitted job to its end, then download and catalog what it made.

    Safe to call again for a job an earlier process left unfinished: it polls the job id
    already on record and never submits anything. ``claim`` is the lease of the worker
    running the job (anyone else finishes it under a claim of its own); ``stop`` ends
    the polling early with :class:`JobStopped`.

    Returns the row as it stands at the end: completed or failed, or still in flight
    when another process holds the job (a worker's live lease) and will finish it;
    with it, the warnings of finishing it here.
    """
    with app.session() as session:
        generation = get_generation(session, generation_id)
    if generation.status in ENDED:
        return GenerationResult(generation)
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
        failed = record_failure(
            app,
            generation.id,
            status.error_code or "failed",
            status.error_message or "the backend reported a failure without a reason",
            details=status.details,
            refused_by=backend.name if status.refused else None,
        )
        return GenerationResult(failed)
    if status.expires_at is not None and status.expires_at <= time.time():
        return GenerationResult(_record_expired(app, generation.id, status))
    return finish(app, generation, backend, info, status, claim, stop)


def _record_expired(app: Reelvault, generation_id: str, status: JobStatus) -> Generation:
    """Outputs past ``expires_at`` are gone for good: say so, not "download failed"."""
    when = f"{timestamp_text(status.expires_at or 0)} UTC"
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
    """Poll through the process's shared poller (one round serves every waiting job)."""
    assert generation.remote_job_id is not None
    poller = shared_poller(backend)
    deadline = time.monotonic() + limit
    due = time.monotonic()  # the first poll at once
    interval = 1.0
    last_written = (generation.status, generation.progress)
    last_write_time = 0.0
    while True:
        status = poller.status(generation.remote_job_id, due, stop=stop, name=generation.id)
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
        due = now + max(MIN_POLL_INTERVAL, min(wait, deadline - now))


def _record_status(app: Reelvault, generation_id: str, status: JobStatus) -> None:
    """Keep the row's state and progress up to date while the job runs."""
    with app.session() as session:
        generation = lock_generation(session, generation_id)
        if generation is None or generation.status in (*ENDED, GenerationStatus.FINISHING):
            return  # a finisher owns the row now; polling has nothing to add
        touch(
            generation,
            status=status.state.status if not status.state.is_terminal else generation.status,
            progress=status.progress,
            details=merged(generation.details, status.details),
        )


def in_flight(app: Reelvault) -> list[Generation]:
    """Generations that were started and have not reached an end, oldest first."""
    with app.session() as session:
        return list_in_flight(session)


@dataclass
class Resumed:
    """What :func:`resume` did: each job with ``None`` when it was finished, or the reason
    it could not be; and the warnings of finishing them."""

    outcomes: list[tuple[Generation, str | None]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    cleaned_bytes: int = 0
    """Bytes of work-folder leftovers (of runs that were killed) removed afterwards."""
    abandoned: list[str] = field(default_factory=list)
    """Stills removed because the request that cataloged them was killed before its clip's
    row (:mod:`core.library.notes`)."""


def resume(
    app: Reelvault, on_progress: ProgressCallback | None = None, *, retry: bool = False
) -> Resumed:
    """Finish every interrupted job, polling the job id on record; never submits anew.

    One job's failure does not stop the others. Queued work and jobs under a live lease
    (a worker's, or another process finishing them) are left alone; a lease that ran
    out means its holder died, and the job is finished here. A row whose job id was
    never recorded (killed between the create and its recording) is reconciled: see
    :func:`_reconcile_unsent`. With ``retry``, rows that failed as interrupted before
    submission are sent again first.
    """
    resumed = Resumed()
    outcomes = resumed.outcomes
    if retry:
        _send_again(app, resumed)
    with app.session() as session:
        now = database_now(session)
    for generation in in_flight(app):
        unsent = generation.status in (GenerationStatus.PENDING, GenerationStatus.CLAIMED)
        if unsent or held(generation, now):
            continue
        if not generation.remote_job_id:
            try:
                problem = _reconcile_unsent(app, generation, now)
            except ReelvaultError as exc:
                problem = str(exc)
            if problem is not None:
                outcomes.append((current(app, generation.id), problem))
                continue
        _finish_one(app, generation, resumed, on_progress)
    resumed.abandoned = settle_abandoned(app)
    resumed.cleaned_bytes = remove_work_leftovers(app)
    return resumed


def _finish_one(
    app: Reelvault,
    generation: Generation,
    resumed: Resumed,
    on_progress: ProgressCallback | None,
) -> None:
    try:
        finished = run_job(app, generation.id, on_progress=on_progress)
    except ReelvaultError as exc:
        resumed.outcomes.append((generation, str(exc)))
        return
    resumed.warnings.extend(finished.warnings)
    result = finished.generation
    if result.status in ENDED:
        resumed.outcomes.append((result, None))
    else:
        resumed.outcomes.append((result, f"taken over meanwhile by {result.lease_owner}"))


SUBMIT_WINDOW = timedelta(minutes=5)
"""How long after its row was written a create may still be under way (or its job appear
in the provider's listing); after that, a row with no job id was never sent."""
INTERRUPTED_BEFORE_SUBMISSION = "interrupted_before_submission"


def _reconcile_unsent(app: Reelvault, generation: Generation, now: datetime) -> str | None:
    """Settle a ``submitting`` row with no job id; ``None`` once it has one to poll.

    For a backend that lists its jobs the create may have reached the service: the job
    that matches the row (model, prompt, size, length, provider, created within
    :data:`SUBMIT_WINDOW`) and that no other request row holds is adopted, so it is
    finished, not sent twice. When none exists and the window has passed, the row
    becomes ``failed`` (:data:`INTERRUPTED_BEFORE_SUBMISSION`), which ``resume --retry``
    sends again; within the window it is left for a later resume.
    """
    if adopt_listed_job(app, generation):
        return None
    created = generation.created_at
    created = created if created.tzinfo else created.replace(tzinfo=UTC)
    if now - created < SUBMIT_WINDOW:
        return "being submitted, or interrupted moments ago: run `reelvault resume` again later"
    failed = record_failure(
        app,
        generation.id,
        INTERRUPTED_BEFORE_SUBMISSION,
        "interrupted before submission: the backend has no job for it; "
        "`reelvault resume --retry` sends it again",
    )
    return failed.error_message or INTERRUPTED_BEFORE_SUBMISSION


def adopt_listed_job(
    app: Reelvault, generation: Generation, lease: WorkerLease | None = None
) -> bool:
    """Record as the job of a ``submitting`` row with no job id the one its backend lists
    for it (the create reached the service, its answer was never recorded); whether one
    was found. Always ``False`` for a backend that cannot list its jobs."""
    backend = app.backend(generation.backend)
    if not isinstance(backend, ListsJobs):
        return False
    status = _listed_match(app, backend, generation)
    if status is None:
        return False
    _record_sent(app, generation.id, status, lease, listed=True)
    return True


def _listed_match(app: Reelvault, backend: ListsJobs, generation: Generation) -> JobStatus | None:
    """The listed job an unsent row asked for (model, prompt, size, length, provider,
    made within :data:`SUBMIT_WINDOW`) that no other request row holds."""
    for job in backend.list_jobs(generation.parameters.get("provider")):
        if not matches_listed_job(generation, job, SUBMIT_WINDOW):
            continue
        with app.session() as session:
            holder = generations_by_job_ids(session, [job.status.job_id])
        other = holder.get(job.status.job_id)
        if other is not None and not other.details.get("imported"):
            continue  # another request's job (an identical prompt sent twice)
        return job.status
    return None


def _send_again(app: Reelvault, resumed: Resumed) -> None:
    """Send each row that failed as interrupted before submission again (``--retry``)."""
    with app.session() as session:
        rows = failed_with(session, INTERRUPTED_BEFORE_SUBMISSION)

    for row in rows:
        try:
            backend, request = request_for(app, row.id)
            with app.session() as session:
                if reopen_for_retry(session, row.id, INTERRUPTED_BEFORE_SUBMISSION) is None:
                    continue
            send(app, backend, request, row.id)
        except ReelvaultError as exc:
            resumed.outcomes.append((current(app, row.id), str(exc)))


def request_for(
    app: Reelvault, generation_id: str
) -> tuple[Backend, GenerationRequest | DerivedRequest]:
    """Rebuild the request a recorded (queued) generation stands for, from its row alone.

    A variant (``variant_of``) has a parent but is an ordinary generation of its own: only
    a derived clip's request names its parent's job.
    """
    with app.session() as session:
        row = get_generation(session, generation_id)
        sent_id = row.input_asset_id or row.source_asset_id  # a fitted still is what is sent
        source = asset_by_id(session, sent_id)
        derived = Relation.derives(row.relation)
        parent = generation_by_id(session, row.parent_id) if derived else None
    backend = app.backend(row.backend)
    image = app.store.local_path(source.file_sha256) if source else None
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
        imported = parent.status == GenerationStatus.IMPORTED  # derived from its first frame
        if not parent.remote_job_id and not imported:
            raise BackendError(f"{row.id}: its parent {parent.id} has no job id on record")
        request = DerivedRequest(
            relation=Relation(row.relation or Relation.REMIX_OF),
            parent_job_id=parent.remote_job_id or parent.id,
            prompt=row.prompt,
            model=row.model,
            seconds=row.seconds,
            size=row.size,
            parent_input_image=image,
            parameters=extra,
        )
    return backend, request
