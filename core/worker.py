"""Workers: run queued generations from a catalog that several machines may share.

``reelvault submit`` records a validated request as ``pending``; any number of workers
(processes, or machines on one PostgreSQL catalog) claim pending jobs under a lease
(:mod:`catalog.queue`), submit them, poll them concurrently and catalog the results.
A worker that dies stops renewing its leases; once a lease runs out another worker takes
the job over and carries on from what the row records: a job whose backend id is on
record is polled, never submitted again.
"""

from __future__ import annotations

import os
import secrets
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta

from catalog.queue import CLAIMED, claim_next, release, renew
from catalog.records import lock_generation, touch
from core.app import Reelvault
from core.errors import ReelvaultError
from core.generate import record_failure, request_for, run_job, send

EventCallback = Callable[[str], None]


@dataclass
class WorkerReport:
    """What one worker run did, for the CLI to print and tests to check."""

    completed: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    lost: list[str] = field(default_factory=list)


def worker_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


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
        self.lease = timedelta(seconds=lease_seconds)
        self.idle_wait = idle_wait
        self.name = name or worker_name()
        self._event = on_event or (lambda _message: None)
        self.stop = threading.Event()

    def run(self, until_idle: bool = False) -> WorkerReport:
        """Take and run jobs until stopped (or, with ``until_idle``, until none are left).

        Jobs run in a thread pool of ``concurrency`` threads, sharing the backends'
        connection pools; the main thread claims work and keeps the leases alive.
        """
        report = WorkerReport()
        running: dict[str, Future[str | None]] = {}
        renew_every = self.lease.total_seconds() / 3
        last_renewal = time.monotonic()
        with ThreadPoolExecutor(self.concurrency, thread_name_prefix="job") as pool:
            try:
                while not self.stop.is_set():
                    self._reap(running, report)
                    if time.monotonic() - last_renewal >= renew_every:
                        self._renew(running, report)
                        last_renewal = time.monotonic()
                    claimed = self._claim(running, pool)
                    if until_idle and not running and not claimed:
                        break
                    self.stop.wait(0.05 if claimed else min(self.idle_wait, renew_every))
            finally:
                self.stop.set()
                for future in running.values():
                    future.cancel()
                pool.shutdown(wait=True, cancel_futures=True)
                self._reap(running, report)
        return report

    def _claim(self, running: dict[str, Future[str | None]], pool: ThreadPoolExecutor) -> bool:
        claimed = False
        while len(running) < self.concurrency and not self.stop.is_set():
            with self.app.session() as session:
                job = claim_next(session, self.name, self.lease)
            if job is None:
                break
            claimed = True
            self._event(f"{job.id} claimed (attempt {job.attempts})")
            running[job.id] = pool.submit(self._run_one, job.id)
        return claimed

    def _renew(self, running: dict[str, Future[str | None]], report: WorkerReport) -> None:
        with self.app.session() as session:
            held = renew(session, self.name, list(running), self.lease)
        for job_id in set(running) - held:
            # Another worker took the job over (we were too slow to renew). Finishing is
            # idempotent, so letting our thread run on is harmless; stop counting it.
            report.lost.append(job_id)
            self._event(f"{job_id} lease lost to another worker")
            running.pop(job_id)

    def _reap(self, running: dict[str, Future[str | None]], report: WorkerReport) -> None:
        for job_id, future in list(running.items()):
            if not future.done():
                continue
            running.pop(job_id)
            if future.cancelled():
                continue
            try:
                problem = future.result()
            except Exception as exc:  # a crash in one job must not stop the worker
                problem = f"{type(exc).__name__}: {exc}"
            if problem is None:
                report.completed.append(job_id)
                self._event(f"{job_id} completed")
            else:
                report.failed[job_id] = problem
                self._event(f"{job_id} failed: {problem}")

    def _run_one(self, job_id: str) -> str | None:
        """Run one claimed job to its end; returns None on success, else the reason."""
        try:
            with self.app.session() as session:
                row = lock_generation(session, job_id)
                if row is None or row.lease_owner != self.name:
                    return "the lease was taken over before the job started"
                must_send = row.status == CLAIMED
                if must_send:
                    touch(row, status="submitting")  # write-ahead: about to reach the backend
                unknown = row.status == "submitting" and not row.remote_job_id and not must_send
            if unknown:
                # An earlier worker died between starting the submission and recording
                # the job id. Sending again could make a second paid job; refuse instead.
                message = "interrupted while submitting; not sent again to avoid a duplicate"
                record_failure(self.app, job_id, "submit_interrupted", message)
                return message
            if must_send:
                backend, request = request_for(self.app, job_id)
                send(self.app, backend, request, job_id)
            result = run_job(self.app, job_id)
            if result.status == "completed":
                return None
            return f"{result.error_code}: {result.error_message}"
        except ReelvaultError as exc:
            return str(exc)
        finally:
            with self.app.session() as session:
                release(session, self.name, job_id)
