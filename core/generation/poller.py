"""One shared poll round for every job a process waits for on one backend.

A worker (or a batch) may wait for hundreds of remote jobs at once. Polled one by one,
each job costs a request and its share of client CPU every few hundred milliseconds, and
a round of them outlasts the service's own hint of how often to ask. A backend that can
read many statuses at once (:class:`core.api.types.PollsMany`; sora reads its list of
recent jobs) is instead polled in rounds that all waiting jobs share: the first job due
leads a round for itself and for every job due within :data:`EARLY` seconds; the others
sleep until the round answers them. Jobs answered together ask again together, so after
a round or two one round serves them all. A job the round did not answer (the service
does not list it, the backend failed) is polled on its own, in its own thread, so its
errors stay its own. A backend without ``poll_many`` is polled job by job, as before.

There is one poller per backend object in the process (:func:`shared_poller`); the
backend groups a round's jobs by provider itself.
"""

from __future__ import annotations

import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

from core.api.capabilities import PollsMany
from core.api.types import Backend, JobStatus
from core.generation.claim import pause

EARLY = 1.0
"""A job due within this many seconds is polled with the round that runs now: polling
it a little early costs nothing in a shared round, and it then keeps in step."""
STOP_CHECK = 0.25
"""How often a job waiting for its turn looks at its ``stop`` event."""
MIN_BATCH = 2
"""A round for a single job is a plain poll: listing to find one job costs more."""


@dataclass(eq=False)
class _Waiter:
    job_id: str
    due: float
    ready: threading.Event = field(default_factory=threading.Event)
    in_round: bool = False
    answered: bool = False
    status: JobStatus | None = None
    error: Exception | None = None


class SharedPoller:
    """Statuses for the jobs of one backend, from rounds that all waiting jobs share."""

    def __init__(self, backend: Backend, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.backend = backend
        self._batch = backend if isinstance(backend, PollsMany) else None
        self._clock = clock
        self._lock = threading.Lock()
        self._waiting: list[_Waiter] = []
        self._round_running = False

    def status(
        self,
        job_id: str,
        due: float,
        *,
        stop: threading.Event | None = None,
        name: str | None = None,
    ) -> JobStatus:
        """The job's status, read no earlier than :data:`EARLY` seconds before ``due``.

        ``due`` is a time on the poller's clock (``time.monotonic``). Raises the
        backend's error for this job, or :class:`core.api.errors.JobStopped` once
        ``stop`` is set while the job waits for its turn (``name`` names it then).
        """
        if self._batch is None:
            wait = due - self._clock()
            if wait > 0:
                pause(wait, stop, name or job_id)
            return self.backend.poll(job_id)
        waiter = _Waiter(job_id, due)
        with self._lock:
            self._waiting.append(waiter)
        try:
            self._wait_for_round(waiter, stop, name or job_id)
        finally:
            with self._lock:
                if waiter in self._waiting:
                    self._waiting.remove(waiter)
        if waiter.error is not None:
            raise waiter.error
        return waiter.status if waiter.status is not None else self.backend.poll(job_id)

    def _wait_for_round(self, waiter: _Waiter, stop: threading.Event | None, name: str) -> None:
        """Lead a round or sleep until one answers the job."""
        while True:
            batch: list[_Waiter] = []
            with self._lock:
                if waiter.answered:
                    return
                waiter.ready.clear()
                now = self._clock()
                if waiter.in_round:
                    timeout: float | None = None  # a round is reading it: bounded by its calls
                elif not self._round_running and waiter.due <= now:
                    batch = self._start_round(now)
                else:
                    timeout = max(0.0, waiter.due - now) if waiter.due > now else None
                    if stop is not None:
                        timeout = STOP_CHECK if timeout is None else min(timeout, STOP_CHECK)
            if batch:
                self._run_round(batch)
                continue
            if stop is not None and stop.is_set() and not waiter.in_round:
                pause(0.0, stop, name)  # raises JobStopped
            waiter.ready.wait(timeout)

    def _start_round(self, now: float) -> list[_Waiter]:
        """Take every waiting job due soon into a new round (the lock is held)."""
        batch = [w for w in self._waiting if w.due <= now + EARLY]
        for waiter in batch:
            self._waiting.remove(waiter)
            waiter.in_round = True
        self._round_running = True
        return batch

    def _run_round(self, batch: list[_Waiter]) -> None:
        """Read the batch's statuses in one go; always answer every waiter in it.

        A round of one job is that job's plain poll (its error is the job's own). Jobs
        that come due meanwhile wait for the next round either way, so that a round
        always gathers every job due while the previous one ran.
        """
        found: dict[str, JobStatus] = {}
        error: Exception | None = None
        job_ids = list(dict.fromkeys(w.job_id for w in batch))
        try:
            if len(job_ids) < MIN_BATCH:
                found = {job: self.backend.poll(job) for job in job_ids}
            elif self._batch is not None:
                answer = self._batch.poll_many(job_ids)
                found = {j: s for j, s in answer.items() if isinstance(s, JobStatus)}
        except Exception as exc:
            if len(job_ids) < MIN_BATCH:
                error = exc
            # else the contract: a round that raises answers none, and each job is then
            # polled on its own, which reports its own trouble
        finally:
            with self._lock:
                for waiter in batch:
                    waiter.status = found.get(waiter.job_id)
                    waiter.error = error
                    waiter.answered = True
                    waiter.ready.set()
                self._round_running = False
                now = self._clock()
                due = [w for w in self._waiting if w.due <= now]
                if due:  # the next round is theirs: wake one of them to lead it
                    min(due, key=lambda w: w.due).ready.set()


_POLLERS: weakref.WeakKeyDictionary[Backend, SharedPoller] = weakref.WeakKeyDictionary()
_POLLERS_LOCK = threading.Lock()


def shared_poller(backend: Backend) -> SharedPoller:
    """The process's poller for ``backend``, made on first use and kept as long as it is."""
    with _POLLERS_LOCK:
        try:
            poller = _POLLERS.get(backend)
            if poller is None:
                poller = _POLLERS[backend] = SharedPoller(backend)
        except TypeError:  # an object that cannot be weakly referenced polls on its own
            return SharedPoller(backend)
        return poller
