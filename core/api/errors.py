"""Exception types. Each one is an expected failure with a message fit for a user.

Anything raised that is *not* a :class:`ReelvaultError` is a bug (a crash), and the CLI
lets it show a traceback; everything here becomes one clear line and a non-zero exit.
"""

from __future__ import annotations


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
