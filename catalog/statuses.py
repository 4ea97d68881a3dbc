"""The values of ``generations.status``, and the groups every module tests them against.

One place, so that a status added for one feature (``finishing``) cannot be missing from
the checks of another: a row that some listing calls unfinished must also be one that
the queue may take over and that finishing treats as not ended.
"""

from __future__ import annotations

PENDING = "pending"
"""Recorded by ``reelvault submit``, waiting for a worker."""
CLAIMED = "claimed"
"""Leased by a worker and not sent to a backend yet: safe to submit if the worker dies."""
SUBMITTING = "submitting"
"""Written just before the backend is called; the job id follows as soon as it is known."""
QUEUED = "queued"
IN_PROGRESS = "in_progress"
FINISHING = "finishing"
"""Finished at the backend; one process holds the claim to download and catalog it."""
REMOTE = "remote"
"""Imported by ``sync``: finished at the provider and not downloaded."""
COMPLETED = "completed"
FAILED = "failed"
REJECTED = "rejected"

ENDED = (COMPLETED, FAILED, REJECTED)
"""A job in one of these states is done for good: nothing changes it any more."""
RUNNING = (CLAIMED, SUBMITTING, QUEUED, IN_PROGRESS, FINISHING)
"""States a worker's job passes through; one whose lease ran out may be taken over."""
UNFINISHED = (PENDING, *RUNNING)
"""Started, or queued to start, and not at an end: what ``reelvault jobs`` lists."""
