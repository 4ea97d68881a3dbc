"""Writes to a generation's row that every step of a run shares: its failure, its details.

Kept apart from the steps themselves so that submitting, polling and finishing can each
record an end the same way (once, and never over an end already recorded).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from catalog.models import Asset, Generation, utcnow
from catalog.queries import get_generation
from catalog.records import add_decisions, lock_generation, touch
from catalog.statuses import ENDED
from core.api.errors import MissingMediaError
from core.api.types import GenerationStatus, Outcome, PolicyDecision
from core.host.app import Reelvault


@dataclass(frozen=True)
class GenerationResult:
    """A generation as a call left it, with what the user should hear of that did not
    stop the work (a policy warning, a plugin that failed in ``clip_cataloged``).

    Warnings travel with the result rather than on the application, which workers and
    webhook receivers share across many jobs: each caller gets its own job's, once.
    """

    generation: Generation
    warnings: tuple[str, ...] = ()


def merged(recorded: Mapping[str, Any], reported: Mapping[str, Any]) -> dict[str, Any]:
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
            status=GenerationStatus.FAILED,
            error_code=code,
            error_message=message,
            completed_at=utcnow(),
            details=merged(generation.details, details or {}),
        )
        if refused_by is not None:
            refusal = PolicyDecision(Outcome.DENY, code, message, plugin=refused_by)
            add_decisions(session, generation_id, [refusal])
        return generation


def current(app: Reelvault, generation_id: str) -> Generation:
    with app.session() as session:
        return get_generation(session, generation_id)


SOURCE_MISSING = "the source still's file is missing from the store; run `reelvault audit`"


def source_still_path(app: Reelvault, source: Asset) -> Path:
    """A cataloged still's file, checked before any row is written: a request whose
    source file is gone must stop with a line that says so, not reach the policy checks
    (which would read a missing file, fail closed and record a ``rejected`` row)."""
    if not source.sha256:
        raise MissingMediaError(SOURCE_MISSING)
    try:
        return app.store.local_path(source.sha256)
    except MissingMediaError:
        raise MissingMediaError(SOURCE_MISSING) from None
