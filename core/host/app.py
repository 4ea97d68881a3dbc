"""The application object: settings, plugins, catalog and store in one place.

Library functions and CLI commands take a :class:`Reelvault` so tests can build one
around a temporary home and call exactly what the CLI calls.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

from core.api import lifecycle as model_lifecycle
from core.api.errors import CatalogError, PluginError, RequestError
from core.api.settings import Settings
from core.api.types import Backend, ModelInfo
from core.host.plugins import PluginHost, call_each, load_host
from core.media.store import ContentStore
from core.media.stores import open_store

if TYPE_CHECKING:
    import sqlalchemy as sa
    from sqlmodel import Session

# The catalog (SQLAlchemy, SQLModel: half a second of imports) is imported when it is
# first opened: ``verify PATH`` and ``plugins`` never open it.

DEFAULT_BACKEND = "local"


class Reelvault:
    def __init__(self, settings: Settings, host: PluginHost | None = None) -> None:
        self.settings = settings
        self.host = host if host is not None else load_host(settings.disabled_plugins())
        self.store: ContentStore = open_store(
            settings.media, settings.home, settings.media_cache_bytes
        )
        self.announce: Callable[[str], None] | None = None
        """Where to tell the user something once, such as a new catalog (the CLI: stderr)."""
        # Worker and webhook threads share one application. From Python 3.12 on,
        # cached_property no longer locks, so two threads could each open an engine or
        # build a second set of backends (with their own connection pools).
        self._build_lock = threading.RLock()

    @classmethod
    def load(
        cls, home: str | Path | None = None, db_url: str | None = None, media: str | None = None
    ) -> Reelvault:
        return cls(Settings.load(home=home, db_url=db_url, media=media))

    @cached_property
    def engine(self) -> sa.Engine:
        """The catalog, opened (and upgraded) on first use only: ``plugins`` needs none."""
        with self._build_lock:
            if "engine" not in self.__dict__:  # another thread may have opened it meanwhile
                from catalog.db import open_catalog

                self._refuse_emptied_catalog()
                self.__dict__["engine"] = open_catalog(
                    self.settings.db_url, on_created=self._announce_new_catalog
                )
            return self.__dict__["engine"]

    def _announce_new_catalog(self) -> None:
        """Say once where a new, empty catalog was just made: a typo in ``--home`` or
        ``--db`` otherwise goes unnoticed until the library looks empty."""
        from catalog.db import masked_url, sqlite_file

        if self.announce is not None:
            url = self.settings.db_url
            file = sqlite_file(url)
            where = file.absolute() if file is not None else masked_url(url)
            self.announce(f"created a new empty catalog at {where}")

    def _refuse_emptied_catalog(self) -> None:
        """Stop before a 0-byte catalog file becomes a new, empty catalog while the store
        still holds the library's files: SQLite would open it as an empty database, and
        every listing would then look like a lost library. SQLite never leaves a catalog
        at 0 bytes (creating one writes the schema at once), so such a file was truncated.
        """
        from catalog.db import left_empty, sqlite_file

        path = sqlite_file(self.settings.db_url)
        if path is None or not path.is_file() or path.stat().st_size > 0:
            return
        if next(iter(self.store.digests()), None) is None:
            return  # nothing stored yet either: a new library
        if not left_empty(path):
            return  # another process was making this library's catalog at that moment
        raise CatalogError(
            f"the catalog {path} is empty (0 bytes) while the media store {self.store.url} "
            "holds files: restore the catalog from a backup, or move it aside and "
            "`reelvault import` your clips into a new one"
        )

    @contextmanager
    def session(self) -> Iterator[Session]:
        from catalog.db import session_scope

        with session_scope(self.engine) as session:
            yield session

    def close(self) -> list[str]:
        """Release the catalog's connections and every backend's (a backend's ``close()``).

        Returns a warning for each backend that failed to close: a plugin's bug must not
        keep the catalog open, nor stop the others from closing.
        """
        warnings: list[str] = []
        with self._build_lock:
            backends = self.__dict__.pop("backends", {})
            engine = self.__dict__.pop("engine", None)
        for backend in backends.values():
            close = getattr(backend, "close", None)
            if not callable(close):
                continue
            try:
                close()
            except Exception as exc:  # a plugin's bug must not keep the catalog open
                warnings.append(f"backend {backend.name} failed to close: {exc}")
        if engine is not None:
            engine.dispose()
        return warnings

    @cached_property
    def backends(self) -> dict[str, Backend]:
        with self._build_lock:
            if "backends" not in self.__dict__:  # another thread may have built them
                self.__dict__["backends"] = self._load_backends()
            return self.__dict__["backends"]

    def _load_backends(self) -> dict[str, Backend]:
        """Every plugin's backends, each plugin's ``register_backends`` called on its own.

        A plugin whose hook raises is recorded (:meth:`PluginHost.hook_failed`: ``reelvault
        plugins`` lists it, commands print a warning) and contributes no backend, not even
        one it registered before raising; every other plugin's backends load and every
        command that does not need the broken one keeps working. What ``register`` itself
        refuses (an object that is not a backend, a name already taken) stays a
        :class:`PluginError` for the caller: the host cannot tell which of two plugins
        should own a name, and guessing would run jobs on the wrong backend.
        """
        found: dict[str, Backend] = {}
        pending: dict[str, Backend] = {}  # the plugin being called, kept only if it returns
        refused: list[PluginError] = []

        def register(backend: Backend) -> None:
            if not isinstance(backend, Backend):
                refused.append(
                    PluginError(f"{backend!r} is not a backend (see core.api.types.Backend)")
                )
            elif backend.name in found or backend.name in pending:
                refused.append(
                    PluginError(f"two plugins register a backend named {backend.name!r}")
                )
            else:
                pending[backend.name] = backend
                return
            raise refused[-1]

        for plugin, _result, error in call_each(
            self.host, "register_backends", register=register, settings=self.settings
        ):
            if error is not None and refused:
                raise refused[-1]
            if error is not None:
                self.host.hook_failed(plugin, "register_backends", error)
            else:
                found.update(pending)
            pending.clear()
            refused.clear()  # a refusal the plugin caught and went on from is its business
        return found

    def lifecycle(self) -> dict[tuple[str, str, str | None], model_lifecycle.ModelLifecycle]:
        """The lifecycle registry: built-in entries, then plugins', then config.toml's."""
        from_plugins: list[model_lifecycle.ModelLifecycle] = []
        for name, result, error in call_each(self.host, "model_lifecycle", settings=self.settings):
            entries = list(result or []) if isinstance(result, Iterable) else []
            if error or not all(isinstance(e, model_lifecycle.ModelLifecycle) for e in entries):
                problem = (
                    error or "nothing: it returned something that is not a list of ModelLifecycle"
                )
                self.host.hook_failed(name, "model_lifecycle", problem)
                continue
            from_plugins.extend(entries)
        configured = model_lifecycle.from_config(
            self.settings.config, str(self.settings.config_path)
        )
        return model_lifecycle.merge(model_lifecycle.BUILTIN, from_plugins, configured)

    def lifecycle_of(self, backend: str, model: str) -> list[model_lifecycle.ModelLifecycle]:
        """The registry's entries for one model (everywhere first, then per host)."""
        entries = [e for (b, m, _), e in self.lifecycle().items() if (b, m) == (backend, model)]
        return sorted(entries, key=lambda e: e.where or "")

    def check_not_retired(self, backend: str, model: str, today: date | None = None) -> None:
        """Refuse a model retired everywhere, naming the alternatives; nothing is sent."""
        today = today or datetime.now(UTC).date()
        for entry in self.lifecycle_of(backend, model):
            if entry.where is None and entry.retired(today):
                raise RequestError(entry.refusal(today))

    def backend(self, name: str) -> Backend:
        try:
            return self.backends[name]
        except KeyError:
            known = ", ".join(sorted(self.backends)) or "none"
            raise RequestError(f"unknown backend {name!r} (loaded: {known})") from None

    def resolve_model(
        self, model: str | None = None, backend: str | None = None
    ) -> tuple[Backend, ModelInfo]:
        """Find the backend and model a request means.

        With neither given, the offline local backend's default model: reelvault must
        work with no key and no network. A model name alone is enough when exactly one
        backend offers it.
        """
        if backend is None and model is None:
            backend = DEFAULT_BACKEND
        candidates = [self.backend(backend)] if backend else list(self.backends.values())
        matches = [
            (b, info)
            for b in candidates
            for info in b.models()
            if model is None or info.name == model
        ]
        if not matches:
            where = f"backend {backend!r}" if backend else "any loaded backend"
            raise RequestError(f"unknown model {model!r} in {where}; `reelvault models` lists them")
        if model is not None and len(matches) > 1:
            names = ", ".join(b.name for b, _ in matches)
            raise RequestError(f"model {model!r} is offered by {names}; choose one with --backend")
        self.check_not_retired(matches[0][0].name, matches[0][1].name)
        return matches[0]
