"""The groups of generation statuses every module tests a row against.

The statuses themselves are :class:`core.api.types.GenerationStatus`; the groups are
kept in one place, so that a status added for one feature (``finishing``) cannot be
missing from the checks of another: a row that some listing calls unfinished must also
be one that the queue may take over and that finishing treats as not ended.
"""

from __future__ import annotations

from core.api.types import GenerationStatus

ENDED = frozenset({GenerationStatus.COMPLETED, GenerationStatus.FAILED, GenerationStatus.REJECTED})
"""A job in one of these states is done for good: nothing changes it any more."""
RUNNING = frozenset(
    {
        GenerationStatus.CLAIMED,
        GenerationStatus.SUBMITTING,
        GenerationStatus.QUEUED,
        GenerationStatus.IN_PROGRESS,
        GenerationStatus.FINISHING,
    }
)
"""States a worker's job passes through; one whose lease ran out may be taken over."""
UNFINISHED = frozenset({GenerationStatus.PENDING, *RUNNING})
"""Started, or queued to start, and not at an end: what ``reelvault jobs`` lists."""
