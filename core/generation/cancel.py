"""Cancelling a job at its provider when the user stops a run (``generate --cancel-remote``).

Without being asked, an interrupted run leaves its job going at the provider: the row
holds the job id and ``reelvault resume`` finishes it later, so nothing paid for is lost.
Asked to cancel, reelvault tells the provider to stop the job (a backend that can:
:class:`~core.api.types.CancelsJobs`) and records the clip as failed with code
``cancelled``, so no job is left running that nobody will collect. A job that finished
before the cancel arrived is left for ``resume`` to catalog, not thrown away.
"""

from __future__ import annotations

from catalog.statuses import ENDED
from core.api.capabilities import CancelsJobs
from core.api.errors import BackendError, ReelvaultError
from core.api.types import JobState
from core.generation.rows import current, record_failure
from core.host.app import Reelvault

CANCELLED = "cancelled"
"""The error code of a clip whose job was cancelled at the user's request."""


def cancel_remote(app: Reelvault, generation_id: str) -> str:
    """Cancel the clip's job at its provider and record it; a line saying what happened.

    Raises :class:`ReelvaultError` when the job cannot be cancelled (no job id yet, a
    backend that cannot cancel, the provider refused): the job is then left resumable.
    """
    generation = current(app, generation_id)
    if generation.status in ENDED:
        return f"{generation.id} had already ended ({generation.status}); nothing to cancel"
    job = generation.remote_job_id
    if not job:
        raise ReelvaultError(
            f"{generation.id} has no job id on record yet, so it cannot be cancelled; "
            "`reelvault resume` settles whether it was sent"
        )
    backend = app.backend(generation.backend)
    if not isinstance(backend, CancelsJobs):
        raise ReelvaultError(
            f"backend {backend.name} cannot cancel jobs; {job} goes on remotely: "
            "`reelvault resume` finishes it"
        )
    try:
        status = backend.cancel(job)
    except BackendError as exc:
        raise ReelvaultError(
            f"could not cancel {job}: {exc}; it may still run: `reelvault resume` finishes it"
        ) from None
    if status.state != JobState.FAILED or status.error_code != CANCELLED:
        return (
            f"{generation.id}: {job} had already {status.state} at the provider; "
            "`reelvault resume` catalogs it"
        )
    reason = status.error_message or "the provider reported it cancelled"
    record_failure(
        app,
        generation.id,
        CANCELLED,
        f"cancelled at the user's request (Ctrl-C with --cancel-remote): {reason}",
        details=status.details,
    )
    return f"cancelled {generation.id}: {job} was stopped at the provider"
