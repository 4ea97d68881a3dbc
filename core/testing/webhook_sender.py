"""Webhook deliveries from a stand-in: post once a job ends, retry what was not accepted.

The fal and Replicate stand-ins announce finished jobs to the URL a request named, as
their services do: each job with a webhook gets a watcher thread that waits for the job
to end, then posts the delivery the stand-in builds (signed its provider's way), retrying
a non-2xx answer a few times. Every attempt's outcome is kept in :attr:`Announcer.sent`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import httpx

WATCH_SECONDS = 120.0
"""How long a watcher waits for its job to end before giving up."""


@dataclass(frozen=True)
class Sent:
    """One delivery as posted: what a test may replay, and the receiver's answer."""

    job: str
    url: str
    headers: dict[str, str]
    body: bytes
    status: int | None


class Announcer:
    """Posts deliveries for a stand-in; :meth:`stop` ends its watchers."""

    def __init__(self) -> None:
        self.sent: list[Sent] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def post(
        self, job: str, url: str, body: bytes, headers: Mapping[str, str], retries: int = 0
    ) -> int:
        """Post one delivery now (``retries`` more times on a non-2xx); the last status."""
        status: int | None = None
        for attempt in range(retries + 1):
            try:
                status = httpx.post(
                    url, content=body, headers=dict(headers), timeout=10
                ).status_code
            except httpx.HTTPError:
                status = None
            with self._lock:
                self.sent.append(Sent(job, url, dict(headers), body, status))
            if status is not None and 200 <= status < 300:
                break
            if attempt < retries:
                time.sleep(0.05 * 2**attempt)
        return status or 0

    def when_done(self, job: str, ended: Callable[[], bool], send: Callable[[], object]) -> None:
        """Call ``send`` from a thread once ``ended()`` is true (unless stopped first)."""

        def watch() -> None:
            deadline = time.monotonic() + WATCH_SECONDS
            while not ended():
                if self._stop.wait(0.01) or time.monotonic() > deadline:
                    return
            send()

        threading.Thread(target=watch, name=f"announce-{job}", daemon=True).start()

    def delivered(self, job: str) -> list[Sent]:
        with self._lock:
            return [s for s in self.sent if s.job == job]

    def stop(self) -> None:
        self._stop.set()
