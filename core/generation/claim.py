"""Claims on a generation: who works on a job, and how that hold is kept and given up.

Two kinds of holder work on jobs. A *worker* holds each job it runs under a lease
(:class:`WorkerLease`) that its main thread renews at the lease's own pace and gives
back once the job's thread returns. Anyone else who finishes a job once (``generate``,
``resume``, a webhook, ``sync``) takes a *finishing claim* (:class:`FinisherClaim`) for
exactly that, renews it once per downloaded variant and lets go of it at the end. A job
is finished once, whoever notices it first: the first finisher holds the row (status
``finishing``) while it works, and the others wait for it or leave the job alone.
"""

from __future__ import annotations

import abc
import os
import secrets
import socket
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeGuard

from sqlmodel import Session

from catalog.models import Generation
from catalog.queue import (
    begin_submit,
    claim_finish,
    claim_next,
    database_now,
    hand_back,
    release,
    renew,
)
from catalog.records import lock_generation, touch
from catalog.statuses import ENDED
from core.api.errors import JobStopped
from core.api.processes import process_ended
from core.api.types import GenerationStatus
from core.host.app import Reelvault

FINISH_CLAIM = timedelta(seconds=300)
"""How long a finisher holds a job between signs of life (one per downloaded variant)."""
FINISH_WAIT_INTERVAL = 0.2
LAPSED = timedelta(seconds=1)
"""How far in the past a lease is set that should be taken over at once."""


def holder_name(role: str = "") -> str:
    """A name no other holder has: this machine, this process, and a random tail.

    Workers go by the bare name (``reelvault jobs`` shows it); a one-shot finisher's
    starts with ``finishing:``, so a listing tells the two apart.
    """
    prefix = f"{role}:" if role else ""
    return f"{prefix}{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Claim(abc.ABC):
    """A hold on jobs by one holder; subclasses say how it is kept alive and let go of."""

    holder: str

    @abc.abstractmethod
    def extend(self, session: Session, generation_id: str) -> None:
        """Renew the hold between two steps of finishing (one per variant)."""

    @abc.abstractmethod
    def let_go(self, row: Generation) -> None:
        """Give up the hold on a locked ``row`` this holder is done with (or failed on)."""

    def finishes(self, row: Generation | None) -> TypeGuard[Generation]:
        """Whether ``row`` is being finished under this claim (not lapsed and taken over)."""
        return (
            row is not None
            and row.status == GenerationStatus.FINISHING
            and row.lease_owner == self.holder
        )


@dataclass(frozen=True)
class WorkerLease(Claim):
    """A worker's lease on the jobs it runs, renewed by its main thread alone.

    Finishing neither extends nor lets go of it: the worker renews every lease at the
    lease's own pace while a thread works on the job, and releases it (the job ended),
    hands it back (the worker is stopping) or lets it lapse (another worker retries)
    once the thread has returned.
    """

    holder: str
    length: timedelta

    def extend(self, session: Session, generation_id: str) -> None:
        """Nothing to do: the worker's main thread renews the lease."""

    def let_go(self, row: Generation) -> None:
        """Nothing to do: the worker decides once the job's thread has returned."""

    def take_next(self, session: Session) -> Generation | None:
        """Claim the oldest claimable job for this worker (:func:`catalog.queue.claim_next`)."""
        return claim_next(session, self.holder, self.length)

    def renew(self, session: Session, generation_ids: list[str]) -> set[str]:
        """Extend the leases on ``generation_ids``; returns the ids still held."""
        return renew(session, self.holder, generation_ids, self.length)

    def begin_submit(self, session: Session, generation_id: str) -> bool:
        """Write ahead that the job is about to be sent, if the lease is still ours."""
        return begin_submit(session, self.holder, generation_id, self.length)

    def release(self, session: Session, generation_id: str) -> None:
        """Give up a job that reached an end."""
        release(session, self.holder, generation_id)

    def hand_back(self, session: Session, generation_id: str) -> None:
        """Give an unfinished job back at once (the worker is stopping)."""
        hand_back(session, self.holder, generation_id)

    def lapse(self, row: Generation, now: datetime) -> None:
        """Hold a locked ``row`` under a lease that has already run out, so that any
        worker (this one included) takes it over at once."""
        row.lease_owner = self.holder
        row.lease_expires_at = now - LAPSED


@dataclass(frozen=True)
class FinisherClaim(Claim):
    """A one-shot finisher's claim: held for one job, renewed per variant, then let go.

    A failure lets go at once, as a ``generate`` always has: ``resume`` retries it.
    """

    holder: str = field(default_factory=lambda: holder_name("finishing"))

    def extend(self, session: Session, generation_id: str) -> None:
        renew(session, self.holder, [generation_id], FINISH_CLAIM)

    def let_go(self, row: Generation) -> None:
        row.lease_owner, row.lease_expires_at = None, None


def pause(seconds: float, stop: threading.Event | None, generation_id: str) -> None:
    """Sleep between polls, or raise :class:`JobStopped` as soon as ``stop`` is set."""
    if stop is None:
        time.sleep(seconds)
    elif stop.is_set() or stop.wait(seconds):
        raise JobStopped(
            f"{generation_id} was left in flight on request; it keeps running remotely "
            "and is picked up again by the next worker or `reelvault resume`"
        )


class ClaimLost(Exception):
    """Another process took the finishing claim over (ours lapsed): drop our work."""


def take_finish_claim(
    app: Reelvault, generation_id: str, claim: Claim, stop: threading.Event | None
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
            finishing = row.status == GenerationStatus.FINISHING
            before = GenerationStatus.IN_PROGRESS if finishing else row.status
            if finishing and holder_gone(row.lease_owner):  # killed mid-finish: take over
                row.lease_expires_at = database_now(session) - LAPSED
            if claim_finish(session, row, claim.holder, FINISH_CLAIM):
                return before
            if row.status != GenerationStatus.FINISHING:
                return row
        pause(FINISH_WAIT_INTERVAL, stop, generation_id)


def keep_claim(app: Reelvault, generation_id: str, claim: Claim) -> None:
    """Check the finishing claim is still ours and extend it, else :class:`ClaimLost`."""
    with app.session() as session:
        row = lock_generation(session, generation_id)
        if not claim.finishes(row):
            raise ClaimLost(generation_id)
        claim.extend(session, generation_id)


def give_back(app: Reelvault, generation_id: str, claim: Claim, before: str) -> None:
    """Undo a finishing claim whose work failed, so the job is tried again.

    The row goes back to the status ``before`` the claim; a worker keeps its lease and
    lets it run out (another worker retries after that), anyone else lets go at once.
    """
    with app.session() as session:
        row = lock_generation(session, generation_id)
        if not claim.finishes(row):
            return
        touch(row, status=before)
        claim.let_go(row)


def let_go(app: Reelvault, generation_id: str, claim: Claim) -> None:
    """Let go of a job that ended without being finished here (its outputs expired)."""
    with app.session() as session:
        row = lock_generation(session, generation_id)
        if row is not None and row.lease_owner == claim.holder:
            claim.let_go(row)


def held(generation: Generation, now: datetime) -> bool:
    """Under a live lease or finishing claim (in the database's time) of a holder that
    may still be working on it: someone has it."""
    expires = generation.lease_expires_at
    live = generation.lease_owner is not None and (expires is None or expires >= now)
    return live and not holder_gone(generation.lease_owner)


def holder_gone(holder: str | None) -> bool:
    """Whether a lease's holder is a process of this machine that has ended.

    A killed ``generate`` cannot let go of its finishing claim, and waiting out the
    claim (minutes) would leave ``resume`` unable to finish the job it was killed on.
    Holder names end in ``HOST:PID:TOKEN`` (:func:`holder_name`); only a process on this
    host can be checked (:func:`core.api.processes.process_ended` says where), and a
    reused pid merely keeps the claim until it runs out, as before.
    """
    if not holder:
        return False
    parts = holder.rsplit(":", 3)
    if len(parts) < 3 or parts[-3].rsplit(":", 1)[-1] != socket.gethostname():
        return False
    try:
        pid = int(parts[-2])
    except ValueError:
        return False
    return process_ended(pid)
