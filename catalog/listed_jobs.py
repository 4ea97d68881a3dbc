"""A provider's listed job as a catalog row: what ``reelvault sync`` imports.

The row is built here and inserted with :func:`catalog.records.insert_or_ignore`, whose
unique ``listed_job_id`` makes two syncs (or a sync and a create) import a job once.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlmodel import Session, col, select

from catalog.models import Generation
from core.api.ids import new_clip_id
from core.api.types import GenerationStatus, JobState, Relation, RemoteJob


def imported_generation(
    backend: str, job: RemoteJob, parent: Generation | None, provider: str | None
) -> Generation:
    """The row for a job made outside reelvault: ``remote`` when it finished there (not
    downloaded), else the job's own state; linked to ``parent`` when the catalog has it,
    and marked ``parent_not_in_catalog`` when it names a parent the catalog lacks."""
    status = job.status
    state = GenerationStatus.REMOTE if status.state == JobState.COMPLETED else status.state.status
    details = {**status.details, "imported": True}
    if job.parent_job_id and parent is None:
        details["parent_not_in_catalog"] = job.parent_job_id
    parameters: dict[str, object] = {"seconds": job.seconds, "size": job.size, "imported": True}
    if provider:
        parameters["provider"] = provider
    return Generation(
        id=new_clip_id(),
        backend=backend,
        model=job.model,
        prompt=job.prompt,
        seconds=job.seconds,
        size=job.size,
        parameters=parameters,
        status=state,
        progress=status.progress,
        remote_job_id=status.job_id,
        listed_job_id=status.job_id,
        parent_id=parent.id if parent else None,
        relation=Relation.REMIX_OF if parent else None,
        details=details,
        error_code=status.error_code,
        error_message=status.error_message,
        created_at=_time(job.created_at) or datetime.now(UTC),
        completed_at=_time(job.completed_at),
    )


def _time(unix: int | None) -> datetime | None:
    return datetime.fromtimestamp(unix, UTC) if unix else None


def unsent_rows(session: Session, backend: str) -> list[Generation]:
    """Rows of ``backend`` written ahead of a create whose job id was never recorded
    (``submitting`` with no job id): a kill between the create and its recording."""
    stmt = (
        select(Generation)
        .where(Generation.backend == backend, Generation.status == GenerationStatus.SUBMITTING)
        .where(col(Generation.remote_job_id).is_(None))
        .order_by(col(Generation.created_at), col(Generation.id))
    )
    return list(session.exec(stmt))


def matches_listed_job(
    row: Generation, job: RemoteJob, window: timedelta, provider: str | None = None
) -> bool:
    """Whether ``job`` (as its backend lists it) is what the unsent ``row`` asked for:
    same model, prompt, size and length, from the same provider, created within
    ``window`` of the row."""
    if (job.model, job.prompt, job.size, job.seconds) != (
        row.model,
        row.prompt,
        row.size,
        row.seconds,
    ):
        return False
    if provider is not None and row.parameters.get("provider") not in (None, provider):
        return False
    created = row.created_at if row.created_at.tzinfo else row.created_at.replace(tzinfo=UTC)
    listed = datetime.fromtimestamp(job.created_at, UTC)
    return created - timedelta(seconds=5) <= listed <= created + window


def failed_with(session: Session, code: str) -> list[Generation]:
    """Rows that failed with ``code``, oldest first."""
    stmt = (
        select(Generation)
        .where(Generation.status == GenerationStatus.FAILED, Generation.error_code == code)
        .order_by(col(Generation.created_at), col(Generation.id))
    )
    return list(session.exec(stmt))
