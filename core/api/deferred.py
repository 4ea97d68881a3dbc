"""Modules imported at their first use instead of when the importing module loads.

Every plugin module is imported whenever a command loads the plugins (``list``
included), so a backend's HTTP stack (httpx pulls in ssl, asyncio, email and rich:
about 50 ms) would be paid by commands that never talk to a service. A module written

.. code-block:: python

    if TYPE_CHECKING:
        import httpx
    else:
        httpx = deferred_import("httpx")

keeps the full types for mypy, and at run time ``httpx.Client`` imports httpx the first
time it is read. Python's import lock makes that first import safe from any thread
(unlike :class:`importlib.util.LazyLoader`, which races on Python 3.11); every read after
it is an ordinary attribute lookup.

This module is part of the plugin API: third-party plugins may use it the same way.
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["deferred_import"]


class DeferredModule:
    """Stands for the module ``name`` until an attribute of it is read."""

    def __init__(self, name: str) -> None:
        self.__name__ = name

    def __getattr__(self, attr: str) -> Any:
        # Called only for attributes not copied here yet: the first read of each.
        if attr == "__name__":  # an instance made without __init__ (a copy): no module
            raise AttributeError(attr)
        value = getattr(importlib.import_module(self.__name__), attr)
        setattr(self, attr, value)
        return value

    def __repr__(self) -> str:
        return f"<deferred module {self.__name__!r}>"


def deferred_import(name: str) -> Any:
    """The module ``name``, imported when one of its attributes is first read."""
    return DeferredModule(name)
