"""Generation: from a request to a cataloged clip, in three steps of one flow.

:mod:`~core.generation.request` validates a request, runs the policy checks and writes
the generation row ahead of submitting it; :mod:`~core.generation.run` submits it,
records the job id and polls it to its end; :mod:`~core.generation.finish` downloads,
signs and catalogs what it made, under the claim of :mod:`~core.generation.claim`.
:mod:`~core.generation.remake` sends a clip's shot through the same flow again, with
another model (``regenerate``).
Callers (the CLI, workers, webhooks, sync) use only what is exported here.
"""

from core.generation.cancel import CANCELLED, cancel_remote
from core.generation.remake import regenerate, variants_of
from core.generation.request import derive, generate
from core.generation.rows import GenerationResult, record_failure
from core.generation.run import (
    INTERRUPTED_BEFORE_SUBMISSION,
    SUBMIT_INTERRUPTED,
    SUBMIT_WINDOW,
    Resumed,
    in_flight,
    model_info,
    request_for,
    resume,
    run_job,
    send,
)

__all__ = [
    "CANCELLED",
    "INTERRUPTED_BEFORE_SUBMISSION",
    "SUBMIT_INTERRUPTED",
    "SUBMIT_WINDOW",
    "GenerationResult",
    "Resumed",
    "cancel_remote",
    "derive",
    "generate",
    "in_flight",
    "model_info",
    "record_failure",
    "regenerate",
    "request_for",
    "resume",
    "run_job",
    "send",
    "variants_of",
]
