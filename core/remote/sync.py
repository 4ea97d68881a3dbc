"""Importing a provider account's videos that the catalog does not know yet.

Videos made outside reelvault (the provider's playground, another tool, or a create whose
answer was lost) are still part of the library's history. ``sync`` lists the account's
videos (``GET /videos``, every page), catalogs each one it lacks with its state, and
links remixes to their parents through ``remixed_from_video_id``.

What an imported video becomes:

- ``queued`` / ``in_progress``: in flight, so ``reelvault jobs`` shows it and
  ``reelvault resume`` finishes it like any interrupted job;
- ``failed``: failed, with the service's error code and message;
- ``completed``: ``remote`` (finished there, not downloaded) unless ``download`` is set,
  in which case it is finished through :func:`core.generation.run_job` (poll, download,
  catalog) before its outputs expire. A later ``sync --download`` fetches earlier
  ``remote`` imports too, while they last.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sqlmodel import Session

from catalog.listed_jobs import imported_generation, matches_listed_job, unsent_rows
from catalog.models import Generation
from catalog.queries import generations_by_job_ids
from catalog.records import adopt_job_id, insert_or_ignore, touch
from catalog.statuses import ENDED
from core.api.capabilities import ListsJobs
from core.api.errors import ReelvaultError, RequestError
from core.api.types import GenerationStatus, RemoteJob
from core.generation import SUBMIT_WINDOW, run_job
from core.host.app import Reelvault


@dataclass
class SyncReport:
    listed: int = 0
    imported: list[Generation] = field(default_factory=list)
    adopted: list[Generation] = field(default_factory=list)
    """Rows of ours whose create reached the provider but whose job id a kill lost."""
    downloaded: list[Generation] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)


def _unsent_request(
    session: Session, backend: str, job: RemoteJob, provider: str | None
) -> Generation | None:
    """The ``submitting`` row (no job id yet) that asked for ``job``, if one did."""
    for row in unsent_rows(session, backend):
        if matches_listed_job(row, job, SUBMIT_WINDOW, provider):
            return row
    return None


def _state_of(job: RemoteJob) -> GenerationStatus:
    """What an adopted row becomes: in flight until ``resume`` downloads it."""
    state = job.status.state
    return GenerationStatus.IN_PROGRESS if state.is_terminal else state.status


def sync(
    app: Reelvault,
    *,
    backend: str = "sora",
    provider: str | None = None,
    download: bool = False,
    on_message: Callable[[str], None] | None = None,
) -> SyncReport:
    """Import what the provider lists and the catalog lacks; optionally download it."""
    backend_obj = app.backend(backend)
    if not isinstance(backend_obj, ListsJobs):
        raise RequestError(f"backend {backend} cannot list its jobs, so there is nothing to sync")
    jobs = sorted(backend_obj.list_jobs(provider), key=lambda job: job.created_at)
    report = SyncReport(listed=len(jobs))
    ids = [job.status.job_id for job in jobs] + [j.parent_job_id for j in jobs if j.parent_job_id]
    with app.session() as session:
        known = generations_by_job_ids(session, ids)
        for job in jobs:  # oldest first, so a parent is cataloged before its remixes
            if job.status.job_id in known:
                continue
            unsent = _unsent_request(session, backend, job, provider)
            if unsent is not None:  # our own create, whose recording a kill cut short
                adopt_job_id(session, unsent, job.status.job_id, listed=True)
                touch(unsent, status=_state_of(job), progress=job.status.progress)
                known[job.status.job_id] = unsent
                report.adopted.append(unsent)
                continue
            parent = known.get(job.parent_job_id or "")
            row = imported_generation(backend, job, parent, provider)
            # Another sync, or a create recording its id, may have written this job's
            # row since the look-up: the unique job id makes that an ignored insert.
            if insert_or_ignore(session, row):
                report.imported.append(row)
                known[job.status.job_id] = row
            else:
                known.update(generations_by_job_ids(session, [job.status.job_id]))
    if download:
        for job in jobs:
            row = known[job.status.job_id]
            if row.status != GenerationStatus.REMOTE:
                continue
            try:
                finished = run_job(app, row.id).generation
            except ReelvaultError as exc:
                report.problems.append(f"{row.id} ({job.status.job_id}): {exc}")
                continue
            if finished.status == GenerationStatus.COMPLETED:
                report.downloaded.append(finished)
            elif finished.status not in ENDED:
                report.problems.append(
                    f"{row.id} ({job.status.job_id}): being finished by {finished.lease_owner}"
                )
            else:
                report.problems.append(
                    f"{row.id} ({job.status.job_id}): {finished.error_code}: "
                    f"{finished.error_message}"
                )
            if on_message:
                on_message(f"{row.id} {finished.status}")
    return report
