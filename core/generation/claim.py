"""The finishing claim: who downloads and catalogs a finished job, and for how long.

A finished job is finished once, whoever notices it first (a poll, a webhook, a worker
that took a dead worker's job over): the first finisher holds the row (status
``finishing``) while it works, and the others wait for it or leave the job alone.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from datetime import datetime, timedelta

from catalog.models import Generation
from catalog.queue import claim_finish, release, renew
from catalog.records import lock_generation, touch
from catalog.statuses import ENDED, FINISHING, IN_PROGRESS
from core.api.errors import JobStopped
from core.host.app import Reelvault

FINISH_CLAIM = timedelta(seconds=300)
"""How long a finisher holds a job between signs of life (one per downloaded variant)."""
FINISH_WAIT_INTERVAL = 0.2
LAPSED = timedelta(seconds=1)
"""How far in the past a lease is set that should be taken over at once."""


def pause(seconds: float, stop: threading.Event | None, generation_id: str) -> None:
    """Sleep between polls, or raise :class:`JobStopped` as soon as ``stop`` is set."""
    if stop is None:
        time.sleep(seconds)
    elif stop.is_set() or stop.wait(seconds):
        raise JobStopped(
            f"{generation_id} was left in flight on request; it keeps running remotely "
            "and is picked up again by the next worker or `reelvault resume`"
        )


def finisher_name() -> str:
    """Who holds a finishing claim outside a worker: this process, once per job."""
    return f"finishing:{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class ClaimLost(Exception):
    """Another process took the finishing claim over (ours lapsed): drop our work."""


def take_finish_claim(
    app: Reelvault, generation_id: str, finisher: str, stop: threading.Event | None
) -> str | Generation:
    """Take the finishing claim; returns the status it replaced, or the row to return.

    While another process is finishing the job this waits for it (its claim is renewed
    per variant, and taken over if it lapses), so a ``generate`` whose job a webhook
    finished still returns the completed clip. A job held by a worker that is still
    polling it is left to that worker.
    """
    while True:
        with app.session() as session:
            row = lock_generation(session, generation_id)
            assert row is not None
            if row.status in ENDED:
                return row
            before = row.status if row.status != FINISHING else IN_PROGRESS
            if claim_finish(session, row, finisher, FINISH_CLAIM):
                return before
            if row.status != FINISHING:
                return row
        pause(FINISH_WAIT_INTERVAL, stop, generation_id)


def keep_claim(app: Reelvault, generation_id: str, finisher: str, *, extend: bool) -> None:
    """Check the finishing claim is still ours (and ``extend`` it), else :class:`ClaimLost`.

    A worker's claim is its lease, which its main thread renews at the lease's own pace;
    anyone else extends the claim here, once per variant.
    """
    with app.session() as session:
        row = lock_generation(session, generation_id)
        if row is None or row.status != FINISHING or row.lease_owner != finisher:
            raise ClaimLost(generation_id)
        if extend:
            renew(session, finisher, [generation_id], FINISH_CLAIM)


def give_back(
    app: Reelvault, generation_id: str, finisher: str, before: str, *, owned: bool
) -> None:
    """Undo a finishing claim whose work failed, so the job is tried again.

    A worker keeps its lease and lets it run out (another worker retries after that);
    anyone else lets go at once, as a ``generate`` always has: ``resume`` retries it.
    """
    with app.session() as session:
        row = lock_generation(session, generation_id)
        if row is None or row.status != FINISHING or row.lease_owner != finisher:
            return
        touch(row, status=before)
        if not owned:
            row.lease_owner, row.lease_expires_at = None, None


def release_claim(app: Reelvault, finisher: str, generation_id: str) -> None:
    with app.session() as session:
        release(session, finisher, generation_id)


def held(generation: Generation, now: datetime) -> bool:
    """Under a live lease or finishing claim (in the database's time): someone has it."""
    expires = generation.lease_expires_at
    return generation.lease_owner is not None and (expires is None or expires >= now)
