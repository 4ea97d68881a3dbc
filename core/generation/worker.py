"""Workers: run queued generations from a catalog that several machines may share.

``reelvault submit`` records a validated request as ``pending``; any number of workers
(processes, or machines on one PostgreSQL catalog) claim pending jobs under a lease
(:mod:`catalog.queue`), submit them, poll them concurrently and catalog the results.
A worker that dies stops renewing its leases; once a lease runs out another worker takes
the job over and carries on from what the row records: a job whose backend id is on
record is polled, never submitted again.

Only the main thread touches leases (claims, renewals, and giving jobs back once their
threads return), so a lease is held for exactly as long as a thread works on the job. A
job that reached an end is released; one left in flight (a poll timeout, a failed
download) keeps its owner and lapses, so another worker retries it after the lease; a
worker that is stopping hands its jobs back at once.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Literal

import sqlalchemy as sa

from catalog.models import Generation
from catalog.records import lock_generation
from catalog.statuses import ENDED
from core.api.errors import JobStopped, ReelvaultError, StorageError
from core.api.types import GenerationStatus
from core.generation import (
    SUBMIT_INTERRUPTED,
    record_failure,
    request_for,
    run_job,
    send,
)
from core.generation.claim import WorkerLease, holder_name
from core.generation.run import adopt_listed_job
from core.host.app import Reelvault

EventCallback = Callable[[str], None]

DATABASE_ERRORS = (sa.exc.OperationalError, sa.exc.InterfaceError)
"""The catalog is unreachable or busy for now: worth waiting out, never worth dying of."""
DB_RETRY_FIRST = 1.0
DB_RETRY_MAX = 30.0
DRAIN_TICK = 0.1


@dataclass
class WorkerReport:
    """What one worker run did, for the CLI to print and tests to check."""

    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)
    unfinished: dict[str, str] = field(default_factory=dict)
    """Left in flight (stopped, timed out, download to retry): another run carries on."""


Kind = Literal["completed", "failed", "unfinished", "stopped", "lost"]


@dataclass(frozen=True)
class _Outcome:
    """How a job thread ended; the main thread turns it into a lease decision."""

    kind: Kind
    message: str | None = None


class Worker:
    def __init__(
        self,
        app: Reelvault,
        *,
        concurrency: int = 4,
        lease_seconds: float = 60.0,
        idle_wait: float = 1.0,
        name: str | None = None,
        on_event: EventCallback | None = None,
    ) -> None:
        if concurrency < 1:
            raise ReelvaultError("a worker needs a concurrency of at least 1")
        self.app = app
        self.concurrency = concurrency
        self.claim = WorkerLease(name or holder_name(), timedelta(seconds=lease_seconds))
        self.idle_wait = idle_wait
        self._event = on_event or (lambda _message: None)
        self.stop = threading.Event()

    @property
    def name(self) -> str:
        """Who holds this worker's leases, as ``reelvault jobs`` shows it."""
        return self.claim.holder

    @property
    def lease(self) -> timedelta:
        """How long a job stays this worker's without a renewal."""
        return self.claim.length

    @property
    def _renew_every(self) -> float:
        return self.lease.total_seconds() / 3

    def run(self, until_idle: bool = False) -> WorkerReport:
        """Take and run jobs until stopped (or, with ``until_idle``, until none are left).

        Jobs run in a thread pool of ``concurrency`` threads, sharing the backends'
        connection pools; the main thread claims work and keeps the leases alive. When
        stopped (``stop`` set, or Ctrl-C), running jobs leave their polls at once and are
        handed back; leases stay renewed until each thread has returned.
        """
        # Opened here, before any job thread exists, so threads never race to build them.
        _ = self.app.engine, self.app.backends
        report = WorkerReport()
        running: dict[str, Future[_Outcome]] = {}
        last_renewal = time.monotonic()
        backoff = DB_RETRY_FIRST
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="job") as pool:
            try:
                while not self.stop.is_set():
                    try:
                        self._reap(running, report)
                        if time.monotonic() - last_renewal >= self._renew_every:
                            self._renew(running, report)
                            last_renewal = time.monotonic()
                        claimed = self._claim(running, pool)
                    except DATABASE_ERRORS as exc:
                        self._event(f"catalog unavailable ({_brief(exc)}); retry in {backoff:g} s")
                        self.stop.wait(backoff)
                        backoff = min(backoff * 2, DB_RETRY_MAX)
                        continue
                    backoff = DB_RETRY_FIRST
                    if until_idle and not running and not claimed:
                        break
                    wait_for = 0.05 if claimed else min(self.idle_wait, self._renew_every)
                    self.stop.wait(wait_for)
            finally:
                self.stop.set()
                self._drain(running, report)
        return report

    def _drain(self, running: dict[str, Future[_Outcome]], report: WorkerReport) -> None:
        """Wait for the job threads to return, keeping their leases alive meanwhile.

        A thread that is polling returns at once (``stop`` is set); one in the middle of
        a create or a download finishes that first, since abandoning a create would lose
        the job's id. Never-started jobs are handed back without waiting.
        """
        for future in running.values():
            future.cancel()
        if running:  # some may have returned already: they are handed back all the same
            self._event(
                f"stopping: handing back {len(running)} running job(s) as soon as each one's "
                "current step ends; their remote jobs keep running and the next worker "
                "carries on"
            )
        last_renewal = time.monotonic()
        db_down = False
        while running:
            try:
                self._reap(running, report)
                if running and time.monotonic() - last_renewal >= self._renew_every:
                    self._renew(running, report)
                    last_renewal = time.monotonic()
            except DATABASE_ERRORS as exc:
                if not db_down:
                    self._event(f"catalog unavailable while stopping ({_brief(exc)})")
                db_down = True
                if all(f.done() for f in running.values()):
                    break  # nothing more to wait for; the leases run out on their own
            wait(list(running.values()), timeout=DRAIN_TICK, return_when=FIRST_COMPLETED)

    def _claim(self, running: dict[str, Future[_Outcome]], pool: ThreadPoolExecutor) -> bool:
        claimed = False
        while len(running) < self.concurrency and not self.stop.is_set():
            with self.app.session() as session:
                job = self.claim.take_next(session)
            if job is None:
                break
            claimed = True
            self._event(f"{job.id} claimed (attempt {job.attempts})")
            running[job.id] = pool.submit(self._run_one, job.id)
        return claimed

    def _renew(self, running: dict[str, Future[_Outcome]], report: WorkerReport) -> None:
        self._reap(running, report)  # a job that just ended is reported as such, not "lost"
        live = [job_id for job_id, future in running.items() if not future.done()]
        with self.app.session() as session:
            held = self.claim.renew(session, live)
        for job_id in set(live) - held:
            if running[job_id].done():
                continue  # it ended meanwhile; the next reap reports it
            # Another worker took the job over (we were too slow to renew). Finishing
            # takes a claim, so letting our thread run on is harmless; stop counting it.
            report.lost.append(job_id)
            self._event(f"{job_id} lease lost to another worker")
            running.pop(job_id)

    def _reap(self, running: dict[str, Future[_Outcome]], report: WorkerReport) -> None:
        for job_id, future in list(running.items()):
            if not future.done():
                continue
            if future.cancelled():
                outcome = _Outcome("stopped", "not started")
            else:
                try:
                    outcome = future.result()
                except Exception as exc:  # a crash in one job must not stop the worker
                    outcome = _Outcome("unfinished", f"{type(exc).__name__}: {exc}")
            self._settle(job_id, outcome)  # may fail on the catalog: kept for the next reap
            running.pop(job_id)
            self._report(job_id, outcome, report)

    def _settle(self, job_id: str, outcome: _Outcome) -> None:
        """The lease decision for a job whose thread has returned."""
        with self.app.session() as session:
            if outcome.kind in ("completed", "failed"):
                self.claim.release(session, job_id)
            elif outcome.kind == "stopped":
                self.claim.hand_back(session, job_id)
            # "unfinished" keeps its owner and lapses: another worker retries after the
            # lease; "lost" is another worker's now.

    def _report(self, job_id: str, outcome: _Outcome, report: WorkerReport) -> None:
        message = outcome.message or ""
        if outcome.kind == "completed":
            report.completed.append(job_id)
            self._event(f"{job_id} completed")
        elif outcome.kind == "failed":
            report.failed[job_id] = message
            self._event(f"{job_id} failed: {message}")
        elif outcome.kind == "lost":
            report.lost.append(job_id)
            self._event(f"{job_id} taken over: {message}")
        else:
            report.unfinished[job_id] = message
            verb = "handed back" if outcome.kind == "stopped" else "left for a retry"
            self._event(f"{job_id} {verb}: {message}")

    def _run_one(self, job_id: str) -> _Outcome:
        """Run one claimed job as far as it goes; never touches the lease itself."""
        with self.app.session() as session:
            row = lock_generation(session, job_id)
            if row is None or row.lease_owner != self.claim.holder:
                return _Outcome("lost", "the lease was taken over before the job started")
            status, remote_job_id = row.status, row.remote_job_id
        if status == GenerationStatus.CLAIMED:
            if self.stop.is_set():
                return _Outcome("stopped", "not started")
            problem = self._submit(job_id)
            if problem is not None:
                return problem
        elif status == GenerationStatus.SUBMITTING and not remote_job_id:
            refused = self._adopt_unrecorded_create(row)
            if refused is not None:
                return refused
        try:
            result = run_job(self.app, job_id, claim=self.claim, stop=self.stop).generation
        except JobStopped as exc:
            return _Outcome("stopped", str(exc))
        except ReelvaultError as exc:
            return _Outcome("unfinished", str(exc))
        if result.status == GenerationStatus.COMPLETED:
            return _Outcome("completed")
        if result.status in ENDED:
            return _Outcome("failed", f"{result.error_code}: {result.error_message}")
        return _Outcome("lost", f"now held by {result.lease_owner}")

    def _adopt_unrecorded_create(self, row: Generation) -> _Outcome | None:
        """Take over a row whose earlier worker died between starting the submission and
        recording the job id: a backend that lists its jobs shows whether the create
        arrived, and that job is adopted and finished. Otherwise sending again could make
        a second paid job, so the row fails instead."""
        if adopt_listed_job(self.app, row, self.claim):
            return None
        message = "interrupted while submitting; not sent again to avoid a duplicate"
        record_failure(self.app, row.id, SUBMIT_INTERRUPTED, message)
        return _Outcome("failed", message)

    def _submit(self, job_id: str) -> _Outcome | None:
        """Send a claimed job, unless something stops it first; ``None`` once it is sent.

        Everything that can fail without reaching the backend (its plugin missing here,
        the still unreadable, the parent without a job id) is tried before the row says
        ``submitting``, and recorded as ``not_sent``: nothing was sent, nothing is lost.
        """
        try:
            backend, request = request_for(self.app, job_id)
        except Exception as exc:
            if isinstance(exc, StorageError) and exc.transient:
                # the bucket is out of reach (the still is read from it): nothing was
                # sent, so the job waits for the next try instead of failing for good
                return _Outcome("unfinished", f"not sent yet: {exc}")
            message = f"not sent: {exc if isinstance(exc, ReelvaultError) else repr(exc)}"
            record_failure(self.app, job_id, "not_sent", message)
            return _Outcome("failed", message)
        with self.app.session() as session:
            still_ours = self.claim.begin_submit(session, job_id)
        if not still_ours:
            return _Outcome("lost", "the lease ran out before sending; not sent")
        try:
            send(self.app, backend, request, job_id, lease=self.claim)
        except Exception as exc:  # send recorded the failure on the row already
            return _Outcome("failed", str(exc) or type(exc).__name__)
        return None


def _brief(exc: sa.exc.DBAPIError) -> str:
    """The driver's own one-line complaint, without SQLAlchemy's statement dump."""
    return str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
