"""A clip's family at any depth, each kind of lineage in one recursive query.

Two readings of the same family:

- :func:`lineage` and :func:`clips_from_source` give whole clips (ORM objects), for the
  few callers that need every column (the PROV export);
- :func:`lineage_rows` and :func:`source_lineage_rows` give only what a lineage view
  shows, as the database driver's own tuples. ``reelvault lineage``, its ``--json`` and
  the web pages read these: a 10,000-deep chain must stay cheap, and at that size each
  step per clip counts (see :data:`LineageRow`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from operator import itemgetter
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import Generation, IsoTimeText


@dataclass(frozen=True)
class LineageNode:
    generation: Generation
    depth: int  # negative: an ancestor; 0: the clip asked about; positive: a descendant


LINEAGE_FIELDS = (
    "id",
    "status",
    "backend",
    "model",
    "prompt",
    "seconds",
    "size",
    "source_asset_id",
    "input_asset_id",
    "output_asset_id",
    "thumbnail_asset_id",
    "parent_id",
    "relation",
    "created_at",
    "depth",
)
"""What each value of a :data:`LineageRow` is: the columns of a clip that a lineage view
shows (a listing's summary of it, in the same order), then its depth (as in
:class:`LineageNode`)."""

LineageRow = Sequence[Any]
"""One clip of a lineage as the database driver returns it (a plain tuple), in
:data:`LINEAGE_FIELDS` order, with ``created_at`` already as the ISO 8601 text the views
show. Only these, as the driver's own values, keep a 10,000-deep chain cheap: no JSON
columns decoded, no ORM object or SQLAlchemy row, no datetime made per clip (see
:class:`~catalog.models.IsoTimeText`)."""

_STORED_COLUMNS = LINEAGE_FIELDS[:-2]  # read as stored: all but created_at and depth
_AT_DEPTH = LINEAGE_FIELDS.index("depth")
_DEPTH = itemgetter(_AT_DEPTH)
_IN_ORDER = itemgetter(_AT_DEPTH, LINEAGE_FIELDS.index("created_at"), LINEAGE_FIELDS.index("id"))


def lineage(session: Session, generation_id: str) -> list[LineageNode]:
    """Ancestors and descendants of a clip at any depth, in one recursive query.

    Ancestors are the chain of parents up to the first clip; descendants are the whole
    tree of clips derived from this one. Rows come ordered by depth, then age.
    """
    return _nodes(session, _family(), {"seed": generation_id})


def lineage_rows(session: Session, generation_id: str) -> list[LineageRow]:
    """:func:`lineage` with only the columns a lineage view shows (see :class:`LineageRow`),
    in the same order."""
    return _rows(session, "family", generation_id)


def clips_from_source(session: Session, asset_id: str) -> list[LineageNode]:
    """Every clip made from a source image, with all their descendants, in one query.

    Depth 0 holds the clips made directly from the image; remixes follow below them.
    """
    return _nodes(session, _made_from(), {"seed": asset_id})


def source_lineage_rows(session: Session, asset_id: str) -> list[LineageRow]:
    """:func:`clips_from_source` with only the columns a lineage view shows, in the same
    order."""
    return _rows(session, "made_from", asset_id)


# The full-row queries take the clip (or still) as a bound parameter, ``seed``, so each is
# built once and then found in SQLAlchemy's compiled cache by identity: building and
# hashing the recursive statement anew cost more than a whole short lineage.


def _family() -> sa.Subquery:
    """(id, depth) of the ancestors of the clip ``seed``, itself and its descendants."""
    seed = sa.bindparam("seed", type_=sa.String)
    g = sa.orm.aliased(Generation)
    up = (
        select(col(Generation.id).label("id"), col(Generation.parent_id).label("next_id"))
        .add_columns(sa.literal(0).label("depth"))
        .where(col(Generation.id) == seed)
        .cte("up", recursive=True)
    )
    up = up.union_all(select(g.id, g.parent_id, up.c.depth - 1).where(g.id == up.c.next_id))
    down = _descendants_cte(col(Generation.id) == seed)
    return sa.union_all(
        sa.select(up.c.id, up.c.depth).where(up.c.depth < 0),
        sa.select(down.c.id, down.c.depth),
    ).subquery("related")


def _made_from() -> sa.Subquery:
    """(id, depth) of the clips made from the still ``seed`` and all their descendants."""
    seed = sa.bindparam("seed", type_=sa.String)
    seeds = sa.and_(col(Generation.source_asset_id) == seed, col(Generation.parent_id).is_(None))
    down = _descendants_cte(seeds)
    return sa.select(down.c.id, down.c.depth).subquery("related")


def _descendants_cte(seed: sa.ColumnElement[bool]) -> sa.CTE:
    g = sa.orm.aliased(Generation)
    down = (
        select(col(Generation.id).label("id"), sa.literal(0).label("depth"))
        .where(seed)
        .cte("down", recursive=True)
    )
    return down.union_all(select(g.id, down.c.depth + 1).where(g.parent_id == down.c.id))


def _nodes(session: Session, related: sa.Subquery, seed: dict[str, str]) -> list[LineageNode]:
    stmt = (
        select(Generation, related.c.depth)
        .join(related, col(Generation.id) == related.c.id)
        .order_by(related.c.depth, col(Generation.created_at), col(Generation.id))
    )
    return [LineageNode(gen, depth) for gen, depth in session.exec(stmt, params=seed)]


# The narrow queries are SQL text, one per kind of lineage and dialect, in the shape of the
# full-row ones above, with two differences that the full rows cannot have:
# - SQLite finds each clip again by its rowid, carried through the recursion, instead of a
#   second search of the primary key's index (the text ids); each recursive step itself
#   reads only the indexes (id, parent_id) and (parent_id, id), on either database;
# - the database does not sort them: a sorter copies every row whole, and ordering ten
#   thousand rows there (SQLite, or PostgreSQL on the server: 2.5 ms of its 40) cost more
#   than Python's sort of the tuples, which the recursion hands over almost in order
#   (ancestors nearest first, then descendants level by level). The result is the same:
#   an ISO time's text sorts as the time does, and ids, compared only between clips of
#   the same depth and time, sort alike byte by byte (SQLite's BINARY collation, Python's
#   comparison) and in PostgreSQL's usual collations (C, glibc's and ICU's language
#   orders): they are ``clip_`` and lowercase letters or digits only, twelve for a new
#   clip (:func:`core.api.ids.new_clip_id`), 6 to 34 for an imported one's own.

_UP = """up(row_key, next_id, depth) AS (
    SELECT {key}, parent_id, 0 FROM generations WHERE id = :seed
    UNION ALL
    SELECT g.{key}, g.parent_id, up.depth - 1 FROM generations g JOIN up ON g.id = up.next_id
)"""
_DOWN = """down(row_key, id, depth) AS (
    SELECT {key}, id, 0 FROM generations WHERE {seeds}
    UNION ALL
    SELECT g.{key}, g.id, down.depth + 1 FROM generations g JOIN down ON g.parent_id = down.id
)"""
_KINDS = {  # the recursive parts, the clips they start from, and the (row_key, depth) found
    "family": (
        (_UP, _DOWN),
        "id = :seed",
        "SELECT row_key, depth FROM up WHERE depth < 0 UNION ALL SELECT row_key, depth FROM down",
    ),
    "made_from": (
        (_DOWN,),
        "source_asset_id = :seed AND parent_id IS NULL",
        "SELECT row_key, depth FROM down",
    ),
}


@cache
def _narrow_statement(kind: str, dialect_name: str) -> sa.TextClause:
    """The narrow lineage query of ``kind`` (a key of ``_KINDS``) in the SQL of the dialect
    named, with the clip or still as the parameter ``seed``; made once, so that SQLAlchemy
    finds it compiled in its cache."""
    sqlite = dialect_name == "sqlite"
    key = "rowid" if sqlite else "id"
    recursive, seeds, related = _KINDS[kind]
    ctes = ",\n".join(part.format(key=key, seeds=seeds) for part in recursive)
    stored = ", ".join(f"g.{name}" for name in _STORED_COLUMNS)
    dialect = sa.engine.make_url(f"{dialect_name}://").get_dialect()()
    created = IsoTimeText(sa.literal_column("g.created_at")).compile(dialect=dialect)
    return sa.text(
        f"WITH RECURSIVE {ctes}\n"
        f"SELECT {stored}, {created} AS created_at, related.depth\n"
        f"FROM ({related}) AS related JOIN generations g ON g.{key} = related.row_key"
    )


def _rows(session: Session, kind: str, seed: str) -> list[LineageRow]:
    connection = session.connection()
    result = connection.execute(_narrow_statement(kind, connection.dialect.name), {"seed": seed})
    try:
        # The driver's own tuples: SQLAlchemy's rows would cost a wrapper object per clip.
        rows = list(result.cursor.fetchall())
    finally:
        result.close()
    rows.sort(key=_DEPTH)  # ancestors come nearest first, so this mostly reverses them
    if rows and rows[-1][_AT_DEPTH] - rows[0][_AT_DEPTH] + 1 < len(rows):
        # Some depth holds several clips (depths run without a gap, so a chain has
        # exactly one at each): age, then id, orders those (five times the cost).
        rows.sort(key=_IN_ORDER)
    return rows
