"""The part every HTTP backend shares: settings, one service per provider profile, closing.

fal, Replicate and Veo backends were each built the same way: keep the settings, make a
:class:`~core.api.remote.ServicePool` with the provider's error parser and a user agent,
say in ``models`` where the models are served, and close the pool at the end. A backend
now says only what differs, as class attributes::

    class FalBackend(HttpBackend):
        name = "fal"
        service_class = _FalService

        def error_fields(self, response: httpx.Response) -> ErrorFields:
            return fal_error_fields(response)

This module is part of the plugin API: third-party backends may subclass
:class:`HttpBackend` (it lives apart from :mod:`core.api.remote`, which holds the
HTTP rules themselves).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from core.api.errors import ReelvaultError, RequestError
from core.api.providers import check_url, get_profile
from core.api.remote import ErrorFields, RemoteService, ServicePool, default_error_fields
from core.api.settings import Settings

if TYPE_CHECKING:  # annotations only: httpx is imported where a request is made
    import httpx

__all__ = ["HttpBackend"]


class HttpBackend:
    """A backend that talks to one kind of provider over HTTP (see the module docstring).

    ``transport`` and ``sleep`` are for tests (a mock transport, no real waits).
    """

    name: str
    """The backend's name, which is also its kind of provider profile."""
    service_class: ClassVar[type[RemoteService]] = RemoteService

    def __init__(
        self,
        settings: Settings,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self._pool = ServicePool(
            settings,
            self.name,
            parse_error=self.error_fields,
            user_agent=f"reelvault-{self.name}/0.1",
            service_class=type(self).service_class,
            transport=transport,
            sleep=sleep,
        )

    def error_fields(self, response: httpx.Response) -> ErrorFields:
        """How the provider writes its error answers (override for a provider's own shape)."""
        return default_error_fields(response)

    @property
    def config(self) -> Mapping[str, Any]:
        """The backend's ``[plugins.NAME]`` table of config.toml."""
        return self._pool.config

    def availability(self) -> str:
        """Where the models are served, for ``reelvault models``; a broken config.toml is
        reported here rather than hiding the model list."""
        try:
            profile = get_profile(self.settings, kind=self.name)
        except Exception as exc:
            return f"misconfigured: {exc}"
        return f"available via {profile.name} ({profile.host})"

    def webhook_url(self) -> str | None:
        """Where the provider should announce finished jobs (``webhook_url`` in
        ``[plugins.NAME]``: a ``reelvault webhooks serve`` reachable from the provider),
        or ``None`` to rely on polling alone."""
        value = self.config.get("webhook_url")
        if value is None or value == "":
            return None
        where = f"{self.settings.config_path}: [plugins.{self.name}] webhook_url"
        if not isinstance(value, str):
            raise ReelvaultError(f"{where} must be a URL")
        try:
            return check_url(value)
        except RequestError as exc:
            raise ReelvaultError(f"{where}: {exc}") from None

    def close(self) -> None:
        self._pool.close()
