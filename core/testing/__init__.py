"""Test support that ships with reelvault, for its own suite and for plugin authors.

``from core.testing import VideosAPIServer`` is the stable import of the loopback Videos
API stand-in (:mod:`core.testing.videos_api`). It parses multipart uploads with
``python-multipart``, which only this package needs, so it is an extra rather than a
runtime dependency: ``pip install 'reelvault[testing]'``.
"""

from __future__ import annotations

try:
    import python_multipart  # noqa: F401  (checked here, where its absence can be explained)
except ImportError as exc:  # pragma: no cover - exercised in a subprocess by the tests
    raise ImportError(
        "core.testing needs python-multipart, which is not installed: "
        "pip install 'reelvault[testing]'"
    ) from exc

from core.testing.videos_api import (
    ApiError,
    Fault,
    RecordedRequest,
    VideosAPIServer,
    WebhookDelivery,
    new_webhook_secret,
)

__all__ = [
    "ApiError",
    "Fault",
    "RecordedRequest",
    "VideosAPIServer",
    "WebhookDelivery",
    "new_webhook_secret",
]
