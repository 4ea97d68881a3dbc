"""A provider's listed job as a catalog row: what ``reelvault sync`` imports.

The row is built here and inserted with :func:`catalog.records.insert_or_ignore`, whose
unique ``listed_job_id`` makes two syncs (or a sync and a create) import a job once.
"""

from __future__ import annotations

from datetime import UTC, datetime

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
