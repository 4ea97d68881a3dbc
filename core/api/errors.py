"""Every exception reelvault raises on purpose, in one place.

Each one is an expected failure with a message fit for a user. Anything raised that is
*not* a :class:`ReelvaultError` is a bug (a crash), and the CLI lets it show a traceback;
everything here becomes one clear line and a non-zero exit (:attr:`ReelvaultError.exit_code`).
A policy *denial* (:class:`PolicyDenied`) is an answer, not a crash: the attempt is kept.

::

    ReelvaultError                 exit 1: expected failure, one line for the user
    ├── RequestError               exit 2: the request itself is wrong
    ├── NotFoundError              no catalog entry matches an identifier
    ├── AmbiguousIdError           an identifier prefix matches several entries
    ├── BackendError               a backend could not do it (``transient`` may retry)
    ├── PluginError                a plugin is missing, misconfigured or broke its contract
    ├── CatalogError               exit 2: the catalog file is damaged or empty
    ├── StorageError               the media store could not be read or written
    │   └── MissingMediaError      a cataloged file is not in the store
    ├── PolicyDenied               a policy refused the request; kept as ``rejected``
    ├── JobStopped                 a worker stopped polling; the job goes on remotely
    └── WebhookRejected            a delivery that is not trusted

    KeyboardInterrupt
    └── JobInterrupted             Ctrl-C while a recorded job ran; names its clip
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

__all__ = [
    "AmbiguousIdError",
    "BackendError",
    "CatalogError",
    "JobInterrupted",
    "JobStopped",
    "MissingMediaError",
    "NotFoundError",
    "PluginError",
    "PolicyDenied",
    "ReelvaultError",
    "RequestError",
    "StorageError",
    "WebhookRejected",
]


class ReelvaultError(Exception):
    """An expected failure whose message is written for the person at the terminal."""

    exit_code = 1


class RequestError(ReelvaultError):
    """The request itself is wrong: missing or undecodable input, unknown model, bad size."""

    exit_code = 2


class NotFoundError(ReelvaultError):
    """No catalog entry matches the identifier the user gave."""


class AmbiguousIdError(ReelvaultError):
    """An identifier prefix matches more than one catalog entry."""


class BackendError(ReelvaultError):
    """A backend could not do what was asked (the job failed, the service refused).

    ``transient`` says that the same call may well work if tried again a little later (a
    dropped connection, a rate limit, a server error); the host retries downloads then.
    """

    def __init__(self, message: str, code: str | None = None, *, transient: bool = False) -> None:
        super().__init__(message)
        self.code = code
        self.transient = transient


class PluginError(ReelvaultError):
    """A plugin is missing, misconfigured or broke its contract."""


class CatalogError(ReelvaultError):
    """The catalog cannot be used as it is: its file is damaged (not a database, a
    malformed page) or was emptied while the store still holds files. Every command stops
    with one line naming the file and what to do, rather than a traceback or, worse, an
    empty listing that looks like a lost library."""

    exit_code = 2


class StorageError(ReelvaultError):
    """The media store could not be read or written: the folder, or the bucket behind it
    (unreachable, credentials refused, no such bucket). Messages never carry credentials.

    ``transient`` says the same call may work later (the server was unreachable).
    """

    def __init__(self, message: str, *, transient: bool = False) -> None:
        super().__init__(message)
        self.transient = transient


class MissingMediaError(StorageError):
    """A file the catalog records is not in the store (``reelvault audit`` finds them all)."""


class _Verdict(Protocol):
    """What :class:`PolicyDenied` reads of a :class:`~core.api.types.PolicyDecision`
    (named structurally: the types module builds on this one, not the reverse)."""

    @property
    def plugin(self) -> str: ...
    @property
    def rule_id(self) -> str: ...
    @property
    def reason(self) -> str: ...


class PolicyDenied(ReelvaultError):
    """The request was refused by a policy; the attempt is cataloged as ``rejected``."""

    def __init__(self, generation_id: str, decisions: Sequence[_Verdict]) -> None:
        super().__init__(
            f"request denied by policy ({self.summary(decisions)}); recorded as {generation_id}"
        )
        self.generation_id = generation_id
        self.decisions = list(decisions)

    @staticmethod
    def summary(decisions: Sequence[_Verdict]) -> str:
        """The denials as one line: the row's error message says the same as the exception."""
        return "; ".join(f"{d.plugin}/{d.rule_id}: {d.reason}" for d in decisions)


class JobStopped(ReelvaultError):
    """The caller asked to stop (a worker shutting down) while the job was in flight.

    Nothing is lost: the job keeps running at the backend, its id is on record, and the
    next worker (or ``reelvault resume``) polls it from where it is.
    """


class WebhookRejected(ReelvaultError):
    """A delivery that is not trusted: bad or missing signature, stale, or replayed."""


class JobInterrupted(KeyboardInterrupt):
    """Ctrl-C arrived after a clip's row was written: the interrupt, naming the clip.

    Still a :class:`KeyboardInterrupt`, so whatever stops on Ctrl-C stops as before; the
    CLI reads ``generation_id`` to cancel that job at its provider when asked to
    (``generate --cancel-remote``), or to say how to resume it. Only a plain
    ``KeyboardInterrupt`` (the signal) is wrapped; a subclass raised on purpose keeps its type.
    """

    def __init__(self, generation_id: str) -> None:
        super().__init__(generation_id)
        self.generation_id = generation_id
