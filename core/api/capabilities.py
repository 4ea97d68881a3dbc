"""What a backend may offer beyond the :class:`~core.api.types.Backend` protocol.

Each is optional and checked at run time (``isinstance``): the host lists jobs for
``sync``, cancels on ``generate --cancel-remote`` and shares poll rounds only with a
backend that says it can. See docs/plugins.md for each.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Protocol, runtime_checkable

from core.api.types import JobStatus, RemoteJob

__all__ = ["CancelsJobs", "ListsJobs", "PollsMany"]


@runtime_checkable
class ListsJobs(Protocol):
    """A backend that can list its account's jobs, for ``reelvault sync`` (sora can).

    Listing implies that every create is a job of its own, with an id of its own (a
    provider's video), so the catalog keeps one clip per such job. A backend whose job
    ids name their inputs, so that identical requests share one job (the local backend),
    does not list its jobs.
    """

    def list_jobs(self, scope: str | None = None) -> Iterable[RemoteJob]: ...


@runtime_checkable
class CancelsJobs(Protocol):
    """A backend that can stop a job at its provider (``generate --cancel-remote``).

    ``cancel`` returns the job's status once the provider took the request: ``failed``
    (code ``cancelled``) when it is being stopped, or the job's own state when it had
    already ended. An unknown job is a ``BackendError`` (``unknown_job``), as for ``poll``.
    """

    def cancel(self, job_id: str) -> JobStatus: ...


@runtime_checkable
class PollsMany(Protocol):
    """Reads many jobs' statuses at once (sora: its job list), for shared poll rounds:
    return those you could read, by job id, and leave out any you could not (not found,
    the service failed); the host polls those with ``poll``, which reports a failure job
    by job. Raising means "none answered". See docs/plugins.md.
    """

    def poll_many(self, job_ids: Sequence[str]) -> Mapping[str, JobStatus]: ...
