"""Tags, titles, notes and ratings on clips and assets: writing them, reading them back,
and the filter and sort clauses that listings use.

A clip and an asset are organised alike; each row names exactly one of them, and
deleting the clip or asset deletes its tags and annotation (``ON DELETE CASCADE``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import Annotation, Asset, Generation, Tag, fold_case, utcnow
from core.api.deferred import deferred_import
from core.api.errors import RequestError

if TYPE_CHECKING:
    from sqlalchemy.dialects import postgresql, sqlite
else:  # the dialect a catalog does not use is never imported (PostgreSQL's: 30 ms)
    postgresql = deferred_import("sqlalchemy.dialects.postgresql")
    sqlite = deferred_import("sqlalchemy.dialects.sqlite")

MAX_TAG = 64
MAX_TITLE = 200
MAX_NOTE = 10_000
RATINGS = range(0, 6)
SORTS = ("created", "title", "rating")
"""How listings may be sorted: newest first, by title (A to Z, untitled last), or by
rating (best first, unrated last); ties go newest first."""

_NOT_A_WORD = re.compile(r"[\W_]+")

Item = Generation | Asset


def normalise_tag(text: str) -> str:
    """A tag as stored: case folded, every run of other characters than letters and digits
    made one ``-`` (``Sci Fi`` and ``sci_fi`` are both ``sci-fi``), so tags are easy to
    type in a shell and cannot differ by spelling alone."""
    tag = _NOT_A_WORD.sub("-", fold_case(text) or "").strip("-")
    if not tag:
        raise RequestError(f"{text!r} is not a tag: a tag needs a letter or a digit")
    if len(tag) > MAX_TAG:
        raise RequestError(f"the tag {tag[:20]!r}… is longer than {MAX_TAG} characters")
    return tag


def _owner(item: Item) -> dict[str, Any]:
    return {"generation_id": item.id} if isinstance(item, Generation) else {"asset_id": item.id}


def _owned_by(table: type[Tag] | type[Annotation], item: Item) -> sa.ColumnElement[bool]:
    if isinstance(item, Generation):
        return col(table.generation_id) == item.id
    return col(table.asset_id) == item.id


def add_tags(session: Session, item: Item, names: Iterable[str]) -> list[str]:
    """Tag ``item`` (a tag it already has is kept once); returns all its tags."""
    for name in dict.fromkeys(normalise_tag(n) for n in names):
        _insert_unless_there(session, Tag, {"name": name, "created_at": utcnow(), **_owner(item)})
    return tags_of(session, item)


def remove_tags(session: Session, item: Item, names: Iterable[str]) -> list[str]:
    """Take tags off ``item`` (one it lacks is no error); returns the tags it keeps."""
    wanted = {normalise_tag(n) for n in names}
    session.execute(sa.delete(Tag).where(_owned_by(Tag, item), col(Tag.name).in_(wanted)))
    return tags_of(session, item)


def _insert_unless_there(session: Session, table: Any, values: dict[str, Any]) -> None:
    """Insert a row (its id left to the database) unless a unique key already holds it:
    two processes tagging the same clip at once must not fail."""
    insert = postgresql.insert if session.get_bind().dialect.name == "postgresql" else sqlite.insert
    session.execute(insert(table).values(**values).on_conflict_do_nothing())


def tags_of(session: Session, item: Item) -> list[str]:
    return sorted(session.exec(select(Tag.name).where(_owned_by(Tag, item))))


UNSET: Any = object()
"""An ``annotate`` argument that was not given: the stored value stays."""


def annotate(
    session: Session,
    item: Item,
    *,
    title: str | None = UNSET,
    note: str | None = UNSET,
    rating: int | None = UNSET,
) -> Annotation:
    """Set the title, note or rating of ``item``; ``None`` (or empty text) clears one."""
    if rating is not UNSET and rating is not None and rating not in RATINGS:
        raise RequestError(f"a rating is a whole number from 0 to 5, not {rating}")
    if title is not UNSET and title is not None and len(title) > MAX_TITLE:
        raise RequestError(f"a title is at most {MAX_TITLE} characters")
    if note is not UNSET and note is not None and len(note) > MAX_NOTE:
        raise RequestError(f"a note is at most {MAX_NOTE:,} characters")
    stmt = select(Annotation).where(_owned_by(Annotation, item))
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    row = session.exec(stmt).first()
    if row is None:
        _insert_unless_there(session, Annotation, {"updated_at": utcnow(), **_owner(item)})
        row = session.exec(stmt).one()
    if title is not UNSET:
        row.title = " ".join(title.split()) or None if title else None
        row.title_folded = fold_case(row.title)
    if note is not UNSET:
        row.note = note.strip() or None if note else None
        row.note_folded = fold_case(row.note)
    if rating is not UNSET:
        row.rating = rating
    row.updated_at = utcnow()
    session.add(row)
    session.flush()
    return row


@dataclass
class Organised:
    """What a person added to one clip or asset."""

    tags: list[str] = field(default_factory=list)
    title: str | None = None
    note: str | None = None
    rating: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"tags": self.tags, "title": self.title, "note": self.note, "rating": self.rating}


def organised(session: Session, item: Item) -> Organised:
    return organised_by_id(session, [item.id], clips=isinstance(item, Generation))[item.id]


def organised_by_id(session: Session, ids: Sequence[str], *, clips: bool) -> dict[str, Organised]:
    """Tags and annotation of many clips (``clips``) or assets, in two queries."""
    found = {i: Organised() for i in ids}
    if not ids:
        return found
    tag_owner = col(Tag.generation_id) if clips else col(Tag.asset_id)
    note_owner = col(Annotation.generation_id) if clips else col(Annotation.asset_id)
    tag_rows = sa.select(tag_owner, col(Tag.name)).where(tag_owner.in_(ids)).order_by(Tag.name)
    for owner, name in session.execute(tag_rows):
        found[owner].tags.append(name)
    for row in session.exec(select(Annotation).where(note_owner.in_(ids))):
        entry = found[(row.generation_id if clips else row.asset_id) or ""]
        entry.title, entry.note, entry.rating = row.title, row.note, row.rating
    return found


def tagged(id_column: Any, owner: str, names: Sequence[str]) -> list[sa.ColumnElement[bool]]:
    """WHERE clauses: the clips (``owner="generation_id"``) or assets (``"asset_id"``)
    that carry every one of ``names``."""
    column = getattr(Tag, owner)
    return [
        id_column.in_(sa.select(column).where(col(Tag.name) == normalise_tag(name)))
        for name in names
    ]


def sort_columns(sort: str, id_column: Any, created: Any, owner: str) -> tuple[Any, ...]:
    """ORDER BY terms for ``sort`` (:data:`SORTS`); a title or rating sort needs the
    listing joined to :func:`annotation_join`."""
    newest = (created.desc(), id_column.desc())
    if sort == "title":
        return (col(Annotation.title_folded).asc().nulls_last(), *newest)
    if sort == "rating":
        return (col(Annotation.rating).desc().nulls_last(), *newest)
    if sort != "created":
        raise RequestError(f"unknown sort {sort!r} (choose {', '.join(SORTS)})")
    return newest


def annotation_join(id_column: Any, owner: str) -> sa.ColumnElement[bool]:
    """The ON clause joining a listing to its rows' annotations."""
    return getattr(Annotation, owner) == id_column


def tag_names(session: Session, limit: int = 200) -> list[str]:
    """The tags in use, A to Z (for the web page's filter menu)."""
    stmt = select(Tag.name).distinct().order_by(Tag.name).limit(limit)
    return list(session.exec(stmt))
