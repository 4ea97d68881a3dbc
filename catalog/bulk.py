"""Writing many clips at once: one Core ``INSERT`` per batch, no ORM object per row.

An import of a whole library (``bench/ingest.py`` measures 100,000 clips) spent most of
its time building one ORM object per clip and flushing each through the unit of work:
about 13x a raw ``executemany`` of the same rows. Here every row is turned into plain
insert values up front (defaults filled, the prompt folded) and the batch goes to the
database as one executemany through SQLAlchemy Core, so the column types still write
each value exactly as the ORM does (JSON text, UTC timestamps; a naive time is refused).

The caller's transaction holds the batch: a failure leaves none of its rows behind. The
database itself keeps the rest in step, as for any other insert: the search index rows
come from the triggers of migration 0009, and a parent clip must be in the catalog (or
earlier in the same batch, rows go in in order) before the clips derived from it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import sqlalchemy as sa
from pydantic_core import PydanticUndefined
from sqlmodel import Session

from catalog.models import Generation, fold_case

_FIELDS = Generation.model_fields
_REQUIRED = frozenset(name for name, field in _FIELDS.items() if field.is_required())
_CONSTANT_DEFAULTS = {
    name: field.default
    for name, field in _FIELDS.items()
    if field.default is not PydanticUndefined and field.default_factory is None
}
_FACTORIES = {
    name: field.default_factory
    for name, field in _FIELDS.items()
    if field.default_factory is not None
}


def generation_values(row: Mapping[str, Any]) -> dict[str, Any]:
    """The insert values of one clip: every column, as the model's defaults fill them.

    ``row`` holds :class:`~catalog.models.Generation` fields as Python values (a dict for
    ``parameters``, aware datetimes); an unknown field or a missing required one is a
    mistake of the caller's and raises ``ValueError`` before anything is written.
    """
    unknown = row.keys() - _FIELDS.keys()
    missing = _REQUIRED - row.keys()
    if unknown or missing:
        raise ValueError(
            f"clip {row.get('id')!r}: unknown fields {sorted(unknown)}, "
            f"missing fields {sorted(missing)}"
        )
    values = {**_CONSTANT_DEFAULTS, **row}
    for name, factory in _FACTORIES.items():
        if name not in row:
            values[name] = factory()  # type: ignore[call-arg]  # no-argument factories
    if values.get("prompt_folded") is None:
        values["prompt_folded"] = fold_case(values["prompt"])
    return values


def insert_generations(session: Session, rows: Iterable[Mapping[str, Any]]) -> int:
    """Insert clips in the caller's transaction, as one statement; returns how many.

    Rows already in the catalog are a conflict (an error, as with the ORM): an import
    that may meet its own earlier rows checks for them first.
    """
    values = [generation_values(row) for row in rows]
    if not values:
        return 0
    session.execute(sa.insert(Generation), values)
    return len(values)
