"""The part every HTTP backend shares: settings, one service per provider profile, closing.

fal, Replicate and Veo backends were each built the same way: keep the settings, make a
:class:`ServicePool` with the provider's error parser and a user agent, say in
``models`` where the models are served, and close the pool at the end. A backend now
says only what differs, as class attributes::

    class FalBackend(HttpBackend):
        name = "fal"
        service_class = _FalService

        def error_fields(self, response: httpx.Response) -> ErrorFields:
            return fal_error_fields(response)

This module is part of the plugin API: third-party backends may subclass
:class:`HttpBackend`, or keep a :class:`ServicePool` of their own (sora does, for its
service subclass); both live apart from :mod:`core.api.remote`, which holds the HTTP
rules themselves.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, ClassVar

from core.api.errors import BackendError, ReelvaultError, RequestError
from core.api.providers import ProviderProfile, api_key, check_url, get_profile, key_source
from core.api.remote import ErrorFields, ErrorParser, RemoteService, default_error_fields
from core.api.settings import Settings

if TYPE_CHECKING:  # annotations only: httpx is imported where a request is made
    import httpx

__all__ = ["HttpBackend", "ServicePool"]


class ServicePool:
    """One :class:`RemoteService` per provider profile of a backend's kind, built on first
    use and rebuilt when the profile's key changes; shared by the backend's threads.

    Every HTTP backend needs the same bookkeeping (find the profile, refuse a missing key
    with the line that says where to put it, reuse one connection pool per provider), so
    it is written once here.
    """

    def __init__(
        self,
        settings: Settings,
        kind: str,
        *,
        parse_error: ErrorParser,
        user_agent: str,
        service_class: type[RemoteService] | None = None,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.settings = settings
        self.kind = kind
        self.config: Mapping[str, Any] = settings.section(kind)
        self._parse_error = parse_error
        self._user_agent = user_agent
        self._service_class = service_class or RemoteService
        self._transport = transport
        self._sleep = sleep
        self._services: dict[str, RemoteService] = {}
        self._lock = threading.Lock()

    def get(self, provider: str | None) -> tuple[ProviderProfile, RemoteService]:
        """The profile a job runs at (``provider``, else the kind's default) and its service."""
        profile = get_profile(self.settings, provider, kind=self.kind)
        key = api_key(self.settings, profile)
        where = key_source(self.settings, profile)
        if key is None:
            raise BackendError(f"no API key for provider {profile.name}: {where}", code="auth")
        with self._lock:
            service = self._services.get(profile.name)
            if service is None or service.key != key:
                service = self._service_class(
                    profile.name,
                    profile.api_root,
                    key,
                    profile.auth_headers(key),
                    key_source=where,
                    key_fix=f"reelvault keys set {profile.name}",
                    parse_error=self._parse_error,
                    config=self.config,
                    transport=self._transport,
                    sleep=self._sleep,
                    user_agent=self._user_agent,
                )
                self._services[profile.name] = service
            return profile, service

    def close(self) -> None:
        with self._lock:
            services, self._services = list(self._services.values()), {}
        for service in services:
            service.close()


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
