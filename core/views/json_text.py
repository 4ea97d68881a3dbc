"""JSON text of data nested to any depth, exactly as :func:`json.dumps` writes it.

A lineage is nested JSON (each clip holds its children), so a 10,000-deep remix chain is
20,000 levels of objects and lists. :func:`json.dumps` recurses once per level, in Python
with ``indent`` and in C without, and stops at the recursion limit (about 1,000); raising
that limit only trades the error for a crash of the C stack. This encoder keeps its own
stack instead, so depth costs memory, not recursion. It handles what reelvault prints
(dicts with string keys, lists, tuples, strings, numbers, booleans, ``None``) and raises
:class:`TypeError` for anything else, as :func:`json.dumps` does.

Pretty-printed, a deep chain has a second problem: each level indents further, so the
text grows with the square of the depth (gigabytes at 10,000). ``indent_levels`` caps
that: levels deeper than it are indented no further. The text stays valid JSON, the
same data, and identical to :func:`json.dumps` for anything shallower than the cap.
"""

from __future__ import annotations

import json.encoder
from collections.abc import Iterator
from typing import Any

_END = object()


def dumps(
    value: Any,
    *,
    indent: int | None = None,
    ensure_ascii: bool = True,
    allow_nan: bool = True,
    sort_keys: bool = False,
    separators: tuple[str, str] | None = None,
    indent_levels: int | None = None,
) -> str:
    """The text :func:`json.dumps` gives for these arguments, at any nesting depth; with
    ``indent``, nesting past ``indent_levels`` (if given) is indented no further."""
    encoder = _Encoder(indent, ensure_ascii, allow_nan, sort_keys, separators, indent_levels)
    return "".join(encoder.chunks(value))


class _Encoder:
    def __init__(
        self,
        indent: int | None,
        ensure_ascii: bool,
        allow_nan: bool,
        sort_keys: bool,
        separators: tuple[str, str] | None,
        indent_levels: int | None,
    ) -> None:
        self.indent = indent
        self.indent_levels = indent_levels
        self.allow_nan = allow_nan
        self.sort_keys = sort_keys
        default = (",", ": ") if indent is not None else (", ", ": ")
        self.item_separator, self.key_separator = separators or default
        self.string = (
            json.encoder.encode_basestring_ascii if ensure_ascii else json.encoder.encode_basestring
        )

    def chunks(self, value: Any) -> Iterator[str]:
        # Each open container is one frame: its remaining items, its closing bracket and
        # whether an item has been written yet; the frames' count is the indent level.
        stack: list[tuple[Iterator[Any], str, list[bool]]] = []
        open_ids: set[int] = set()  # containers being written, to refuse a cycle
        owners: list[int] = []
        yield from self._open(value, stack, open_ids, owners)
        while stack:
            items, closer, started = stack[-1]
            item: Any = next(items, _END)
            if item is _END:
                stack.pop()
                open_ids.discard(owners.pop())
                if self.indent is not None:
                    yield self._newline(len(stack))
                yield closer
                continue
            if started[0]:
                yield self.item_separator
            started[0] = True
            if self.indent is not None:
                yield self._newline(len(stack))
            if closer == "}":
                key, item = item
                yield self._key(key) + self.key_separator
            yield from self._open(item, stack, open_ids, owners)

    def _newline(self, level: int) -> str:
        assert self.indent is not None
        if self.indent_levels is not None:
            level = min(level, self.indent_levels)
        return "\n" + " " * (self.indent * level)

    def _open(
        self,
        value: Any,
        stack: list[tuple[Iterator[Any], str, list[bool]]],
        open_ids: set[int],
        owners: list[int],
    ) -> Iterator[str]:
        """A scalar's text, or a container's opening bracket (its frame is pushed)."""
        if isinstance(value, dict):
            if not value:
                yield "{}"
                return
            items: Iterator[Any] = iter(
                sorted(value.items()) if self.sort_keys else list(value.items())
            )
            opener, closer = "{", "}"
        elif isinstance(value, list | tuple):
            if not value:
                yield "[]"
                return
            items, opener, closer = iter(value), "[", "]"
        else:
            yield self._scalar(value)
            return
        if id(value) in open_ids:
            raise ValueError("Circular reference detected")
        open_ids.add(id(value))
        owners.append(id(value))
        stack.append((items, closer, [False]))
        yield opener

    def _key(self, key: Any) -> str:
        if isinstance(key, str):
            return self.string(key)
        if key is None or isinstance(key, bool | int | float):
            return self.string(self._scalar(key).strip('"'))
        raise TypeError(f"keys must be str, int, float, bool or None, not {type(key).__name__}")

    def _scalar(self, value: Any) -> str:
        if isinstance(value, str):
            return self.string(value)
        if value is None:
            return "null"
        if value is True:
            return "true"
        if value is False:
            return "false"
        if isinstance(value, int):
            return int.__repr__(value)
        if isinstance(value, float):
            if value != value or value in (float("inf"), float("-inf")):
                if not self.allow_nan:
                    raise ValueError(f"Out of range float values are not JSON compliant: {value}")
                return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
            return float.__repr__(value)
        raise TypeError(f"Object of type {type(value).__name__} is not JSON serializable")
