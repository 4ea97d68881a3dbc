"""The plugin host: loads built-in and third-party plugins the same way.

Plugins come from entry points in the ``reelvault`` group (built-ins included) and from
``REELVAULT_PLUGINS``. A plugin that fails to import is remembered as a
:class:`PluginFailure` instead of taking the whole CLI down, so ``reelvault plugins``
can say what broke.

Hooks whose plugins must not be able to break each other (policy, verification,
backends, signing, notifications) are called through :func:`call_each`: one plugin at a
time, in plugin-name order, each exception caught and handed to the caller, which decides
what a crash means for that hook (a deny, an ``unreadable`` result, a missing backend, a
refused clip). A hook that raised is recorded with :meth:`PluginHost.hook_failed`.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pluggy

from core.api import hookspecs

PLUGINS_ENV = "REELVAULT_PLUGINS"


@dataclass(frozen=True)
class PluginFailure:
    name: str
    source: str
    error: str
    hook: str | None = None
    """The hook that raised, or ``None`` when the plugin failed to load at all."""


@dataclass(frozen=True)
class PluginInfo:
    name: str
    source: str
    hooks: tuple[str, ...]
    version: str | None = None


class PluginHost:
    """A pluggy manager plus the record of where each plugin came from."""

    def __init__(self) -> None:
        self.pm = pluggy.PluginManager(hookspecs.PROJECT)
        self.pm.add_hookspecs(hookspecs)
        self.failures: list[PluginFailure] = []
        """Plugins that failed to load (policy treats each as a deny until fixed or disabled)."""
        self.hook_failures: list[PluginFailure] = []
        """Loaded plugins whose hook raised where the host carried on without them."""
        self.on_hook_failure: Callable[[PluginFailure], None] | None = None
        """Told about each hook failure as it happens (the CLI prints a warning line)."""
        self._sources: dict[str, tuple[str, str | None]] = {}

    @property
    def hook(self) -> pluggy.HookRelay:
        return self.pm.hook

    def load_entry_points(self, disabled: frozenset[str] = frozenset()) -> None:
        # A distribution's name and version are read from its METADATA, parsed anew on
        # every ``dist.name`` or ``dist.version``: once per distribution is enough (all
        # built-in plugins share one), and start-up pays for every parse.
        described: dict[int, tuple[str, str]] = {}
        for ep in importlib.metadata.entry_points(group=hookspecs.PROJECT):
            if ep.name in disabled or self.pm.has_plugin(ep.name):
                continue
            dist = ep.dist
            if dist is not None and id(dist) not in described:
                metadata = dist.metadata
                described[id(dist)] = (metadata["Name"], metadata["Version"])
            name, version = described[id(dist)] if dist is not None else (None, None)
            source = f"entry point {ep.value}" + (f" ({name})" if name else "")
            try:
                module = ep.load()
            except Exception as exc:
                self._fail(ep.name, source, exc)
                continue
            self.register(module, ep.name, source, version)

    def load_env(self, value: str | None = None) -> None:
        value = os.environ.get(PLUGINS_ENV, "") if value is None else value
        for module_name in filter(None, (part.strip() for part in value.split(","))):
            if self.pm.has_plugin(module_name):
                continue
            source = f"{PLUGINS_ENV}={module_name}"
            try:
                module = importlib.import_module(module_name)
            except Exception as exc:
                self._fail(module_name, source, exc)
                continue
            self.register(module, module_name, source)

    def register(
        self, plugin: object, name: str, source: str = "code", version: str | None = None
    ) -> None:
        try:
            self.pm.register(plugin, name=name)
            self._check_hook_names(plugin)
        except Exception as exc:  # a hookimpl that does not match its spec
            if self.pm.is_registered(plugin):
                self.pm.unregister(plugin)
            self._fail(name, source, exc)
            return
        self._sources[name] = (source, version)

    def _check_hook_names(self, plugin: object) -> None:
        """A misspelt hook would otherwise never be called, silently."""
        for caller in self.pm.get_hookcallers(plugin) or []:
            if caller.spec is None:
                raise pluggy.PluginValidationError(
                    plugin, f"unknown hook {caller.name!r}: not in core.api.hookspecs"
                )

    def _fail(self, name: str, source: str, exc: BaseException) -> None:
        last = traceback.extract_tb(exc.__traceback__)[-1:] if exc.__traceback__ else []
        where = f" ({last[0].filename}:{last[0].lineno})" if last else ""
        self.failures.append(PluginFailure(name, source, f"{type(exc).__name__}: {exc}{where}"))

    def hook_failed(self, plugin: str, hook: str, error: str) -> PluginFailure:
        """Record that ``plugin``'s ``hook`` raised ``error`` and the host went on without it.

        The plugin stays loaded (its other hooks still run). Each distinct failure is kept
        once, however many applications share this host; the listener hears every one.
        """
        source, _version = self._sources.get(plugin, ("code", None))
        failure = PluginFailure(plugin, source, f"{hook} raised {error}", hook)
        if failure not in self.hook_failures:
            self.hook_failures.append(failure)
        if self.on_hook_failure is not None:
            self.on_hook_failure(failure)
        return failure

    def plugin_name(self, plugin: object) -> str:
        return self.pm.get_name(plugin) or repr(plugin)

    def plugins(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = tuple(sorted(h.name for h in self.pm.get_hookcallers(plugin) or []))
            source, version = self._sources.get(name, ("code", None))
            infos.append(PluginInfo(name, source, hooks, version))
        return sorted(infos, key=lambda info: info.name)


def load_host(disabled: frozenset[str] = frozenset()) -> PluginHost:
    host = PluginHost()
    host.load_entry_points(disabled)
    host.load_env()
    return host


def call_each(
    host: PluginHost, hook_name: str, **kwargs: object
) -> Iterator[tuple[str, object, str | None]]:
    """Call one hook's implementations one by one, in plugin-name order.

    pluggy stops a hook call at the first exception and orders implementations by
    registration (last registered first); the host's hooks must instead hear each plugin
    on its own, keep a crash apart from a result, and run in an order that does not
    depend on how plugins were installed. Yields ``(plugin name, result, error)`` where
    ``error`` is set if the plugin raised. The call is lazy: a caller that stops
    iterating (the first signer that signs) calls no further plugin.
    """
    caller = getattr(host.pm.hook, hook_name)
    impls = sorted(caller.get_hookimpls(), key=lambda impl: impl.plugin_name)
    for impl in impls:
        args = {name: kwargs[name] for name in impl.argnames}
        try:
            yield impl.plugin_name, impl.function(**args), None
        except Exception as exc:
            yield impl.plugin_name, None, f"{type(exc).__name__}: {exc}"
