"""Reading the catalog: id resolution and filtered listings (lineage: catalog.lineage)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlmodel import Session, col, select
from sqlmodel.sql.expression import SelectOfScalar

from catalog.models import (
    Annotation,
    Asset,
    Generation,
    PolicyDecisionRecord,
    VerificationRecord,
)
from catalog.organise import annotation_join, sort_columns, tagged
from catalog.search import check_search_text, listed_matching, matches_text
from catalog.statuses import ENDED, UNFINISHED
from core.api.errors import AmbiguousIdError, NotFoundError, RequestError
from core.api.ids import ASSET_PREFIXES, CLIP_PREFIX, short
from core.api.types import VerificationState

AMBIGUITY_SHOWN = 5
_Row = TypeVar("_Row", Generation, Asset)


def resolve(session: Session, text: str) -> Generation | Asset:
    """The one clip or asset whose id starts with ``text``, like git's short hashes."""
    prefix = text.strip().lower()
    if not prefix:
        raise NotFoundError("an empty id matches nothing")
    matches: list[Generation | Asset] = []
    if CLIP_PREFIX.startswith(prefix) or prefix.startswith(CLIP_PREFIX):
        matches += _by_prefix(session, Generation, prefix)
    if any(p.startswith(prefix) or prefix.startswith(p) for p in ASSET_PREFIXES.values()):
        matches += _by_prefix(session, Asset, prefix)
    if not matches:
        raise NotFoundError(f"no clip or asset matches {text!r}")
    if len(matches) > 1:
        shown = ", ".join(short(m.id) for m in matches[:AMBIGUITY_SHOWN])
        raise AmbiguousIdError(f"{text!r} is ambiguous: it matches {shown}; give more characters")
    return matches[0]


def _by_prefix(session: Session, table: type[_Row], prefix: str) -> list[_Row]:
    """Rows whose id starts with ``prefix``, read as a range of the primary key.

    Every id starting with ``prefix`` sorts at or after it and before :func:`_after_prefix`
    in byte order, so on SQLite the range alone selects them and walks only the matching
    entries of the primary key index, however large the table; a ``LIKE`` scans it all.

    PostgreSQL compares text by the database's collation, and its primary key index is
    built in that order: a ``COLLATE "C"`` range cannot use it, and a ``LIKE`` uses it only
    when the collation is exactly ``C`` (not ``C.UTF-8``, not ``en_US``). There the range
    is taken in the database's own order, wide enough under any collation: from the prefix
    up to the prefix followed by as many ``z`` as an id can hold, since ids are made of
    ``[0-9a-z_]`` only and ``z`` sorts last among those in every collation. An exact,
    byte-wise ``starts_with`` then drops whatever else an unusual collation files in that
    range, so no collation can make a prefix match an id it does not begin.
    """
    ident = col(table.id)
    if session.get_bind().dialect.name == "postgresql":
        widest = prefix + _LAST_ID_CHARACTER * _LONGEST_ID
        where = [ident >= prefix, ident <= widest, sa.func.starts_with(ident, prefix)]
    else:
        upper = _after_prefix(prefix)
        where = [ident >= prefix] + ([ident < upper] if upper is not None else [])
    stmt = select(table).where(*where).order_by(ident).limit(AMBIGUITY_SHOWN + 1)
    return list(session.exec(stmt))


_LAST_ID_CHARACTER = "z"
"""The character that sorts last among those ids are made of (``core.api.ids``)."""
_LONGEST_ID = 100
"""More characters than any id has (an asset's: a kind and a SHA-256, 68 characters)."""


def _after_prefix(prefix: str) -> str | None:
    """The smallest string greater than every string starting with ``prefix`` (``None``
    when there is none: a prefix of nothing but the highest code point)."""
    stripped = prefix.rstrip(chr(0x10FFFF))
    if not stripped:
        return None
    following = ord(stripped[-1]) + 1
    if 0xD800 <= following <= 0xDFFF:  # surrogates are no text: the next character is U+E000
        following = 0xE000
    return stripped[:-1] + chr(following)


def get_generation(session: Session, text: str) -> Generation:
    found = resolve(session, text)
    if not isinstance(found, Generation):
        raise NotFoundError(f"{short(found.id)} is an asset, not a clip")
    return found


def get_asset(session: Session, text: str) -> Asset:
    found = resolve(session, text)
    if not isinstance(found, Asset):
        raise NotFoundError(f"{found.id} is a clip, not an asset")
    return found


def asset_by_sha(session: Session, sha256: str) -> Asset | None:
    return session.exec(select(Asset).where(Asset.sha256 == sha256)).first()


def stored_hashes(session: Session) -> list[str]:
    """The SHA-256 of every file the catalog says is in the media store (a placeholder,
    known only from credentials, has no stored file)."""
    rows = session.exec(select(Asset.sha256).where(col(Asset.stored_path).is_not(None))).all()
    return [sha for sha in rows if sha]


@dataclass(frozen=True)
class ClipFilter:
    model: str | None = None
    backend: str | None = None
    status: str | None = None
    text: str | None = None
    source_asset_id: str | None = None
    since: datetime | None = None
    until: datetime | None = None
    limit: int | None = 50
    # The latest verification state of the clip's video (or UNCHECKED: never verified).
    provenance: str | None = None
    # Keyset paging: continue past this clip id in the listing's order (stays fast deep in
    # a large catalog, unlike an OFFSET); ``oldest_first`` reverses that order.
    cursor: str | None = None
    oldest_first: bool = False
    # Only clips carrying every one of these tags; the order (see catalog.organise.SORTS,
    # keyset paging with ``cursor`` is for "created" only) and how many to skip.
    tags: tuple[str, ...] = ()
    sort: str = "created"
    offset: int = 0

    def __post_init__(self) -> None:
        if self.text is not None:  # refused before any query is built
            check_search_text(self.text)


UNCHECKED = "unchecked"
PROVENANCE_STATES = (*(state.value for state in VerificationState), UNCHECKED)
"""What ``ClipFilter.provenance`` accepts."""


def latest_state(
    asset_id: sa.ColumnElement[str | None] | sa.orm.Mapped[str | None],
) -> sa.ScalarSelect[str]:
    """The state of the newest verification of ``asset_id``, as a correlated subquery."""
    v = sa.orm.aliased(VerificationRecord)
    return (
        select(v.state)
        .where(v.asset_id == asset_id)
        .order_by(col(v.checked_at).desc(), col(v.id).desc())
        .limit(1)
        .scalar_subquery()
    )


def clip_conditions(filters: ClipFilter) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses of a filter (not its paging), for listings and exports alike."""
    where: list[sa.ColumnElement[bool]] = []
    if filters.model:
        where.append(col(Generation.model) == filters.model)
    if filters.backend:
        where.append(col(Generation.backend) == filters.backend)
    if filters.status:
        where.append(col(Generation.status) == filters.status)
    if filters.text:
        where.append(matches_text(col(Generation.id), "generation_id", filters.text))
    where += tagged(col(Generation.id), "generation_id", filters.tags)
    if filters.source_asset_id:
        where.append(col(Generation.source_asset_id) == filters.source_asset_id)
    if filters.since:
        where.append(col(Generation.created_at) >= filters.since)
    if filters.until:
        where.append(col(Generation.created_at) < filters.until)
    if filters.provenance == UNCHECKED:
        where.append(latest_state(col(Generation.output_asset_id)).is_(None))
    elif filters.provenance:
        where.append(latest_state(col(Generation.output_asset_id)) == filters.provenance)
    return where


def list_generations(session: Session, filters: ClipFilter) -> list[Generation]:
    """Newest first (or oldest first, or by title or rating), narrowed by every filter
    (the text by :func:`catalog.search.listed_matching`, fast in creation order)."""
    stmt = select(Generation).where(*clip_conditions(replace(filters, text=None)))
    return listed_in_order(session, stmt, Generation, "generation_id", "clip", filters)


def listed_in_order(
    session: Session,
    stmt: Any,
    model: type[Generation] | type[Asset],
    owner: str,
    noun: str,
    filters: Any,
) -> list[Any]:
    """The clip and the asset listings' shared end: ``stmt`` (their rows, narrowed by
    every filter but the text) in ``filters.sort`` order, continued past
    ``filters.cursor`` in created order, paged, then narrowed by ``filters.text``
    (:func:`catalog.search.listed_matching`, fast in creation order). ``owner`` is the
    search documents' column for ``model``; ``noun`` names a row in messages."""
    created, ident = col(model.created_at), col(model.id)
    if filters.sort != "created":
        if filters.cursor:
            raise RequestError(f"continuing a listing from a {noun} works in created order only")
        stmt = stmt.outerjoin(Annotation, annotation_join(ident, owner))
        stmt = stmt.order_by(*sort_columns(filters.sort, ident, created, owner))
    else:
        anchor: Generation | Asset | None = None
        if filters.cursor:
            anchor = cast("Generation | Asset | None", session.get(model, filters.cursor))
            if anchor is None:
                raise NotFoundError(f"no {noun} {filters.cursor!r} to continue the listing from")
        stmt = in_created_order(stmt, created, ident, anchor, oldest_first=filters.oldest_first)
    stmt = stmt.offset(filters.offset or None).limit(filters.limit)
    return listed_matching(
        session, stmt, ident, owner, filters.text, limit=filters.limit,
        by_creation=filters.sort == "created", newest_first=not filters.oldest_first,
    )  # fmt: skip


def in_created_order(
    stmt: SelectOfScalar[Any],
    created: Any,
    ident: Any,
    anchor: Generation | Asset | None,
    *,
    oldest_first: bool,
) -> SelectOfScalar[Any]:
    """``stmt`` newest first (or oldest first), continuing past ``anchor`` when given.

    Keyset paging, shared by the clip and asset listings: the rows past a known row, in
    (created, id) order, stay as fast deep in a large catalog as on the first page, unlike
    an OFFSET.
    """
    if anchor is not None:
        if oldest_first:
            past = sa.or_(created > anchor.created_at, ident > anchor.id)
            stmt = stmt.where(created >= anchor.created_at, past)
        else:
            past = sa.or_(created < anchor.created_at, ident < anchor.id)
            stmt = stmt.where(created <= anchor.created_at, past)
    if oldest_first:
        return stmt.order_by(created, ident)
    return stmt.order_by(created.desc(), ident.desc())


def list_in_flight(session: Session) -> list[Generation]:
    """Generations that have not reached an end: queued for a worker, or running."""
    stmt = (
        select(Generation)
        .where(col(Generation.status).in_(UNFINISHED))
        .order_by(col(Generation.created_at), col(Generation.id))
    )
    return list(session.exec(stmt))


def list_ended(session: Session, limit: int) -> list[Generation]:
    """The most recently finished, failed or rejected generations, newest first."""
    stmt = (
        select(Generation)
        .where(col(Generation.status).in_(ENDED))
        .order_by(col(Generation.updated_at).desc(), col(Generation.id).desc())
        .limit(limit)
    )
    return list(session.exec(stmt))


def assets_by_id(session: Session, ids: Sequence[str | None]) -> dict[str, Asset]:
    wanted = {i for i in ids if i}
    if not wanted:
        return {}
    return {a.id: a for a in session.exec(select(Asset).where(col(Asset.id).in_(wanted)))}


def decisions_for(session: Session, generation_id: str) -> list[PolicyDecisionRecord]:
    stmt = (
        select(PolicyDecisionRecord)
        .where(PolicyDecisionRecord.generation_id == generation_id)
        .order_by(col(PolicyDecisionRecord.id))
    )
    return list(session.exec(stmt))


def verifications_for(session: Session, asset_id: str) -> list[VerificationRecord]:
    stmt = (
        select(VerificationRecord)
        .where(VerificationRecord.asset_id == asset_id)
        .order_by(col(VerificationRecord.checked_at), col(VerificationRecord.id))
    )
    return list(session.exec(stmt))


def latest_states(session: Session, asset_ids: Sequence[str | None]) -> dict[str, str]:
    """The newest verification state of each asset that has one, in one query."""
    wanted = {i for i in asset_ids if i}
    if not wanted:
        return {}
    stmt = (
        select(VerificationRecord.asset_id, VerificationRecord.state)
        .where(col(VerificationRecord.asset_id).in_(wanted))
        .order_by(col(VerificationRecord.checked_at), col(VerificationRecord.id))
    )
    return dict(session.exec(stmt).all())  # later rows overwrite earlier ones


def clip_facets(session: Session) -> dict[str, list[str]]:
    """The backends, models and statuses in use, for filter menus."""
    return {
        name: sorted(v for v in session.execute(_distinct_values(name)).scalars() if v)
        for name in ("backend", "model", "status")
    }


def _distinct_values(name: str) -> sa.Select[tuple[str]]:
    """The distinct values of an indexed ``generations`` column, by a loose index scan.

    ``SELECT DISTINCT`` reads every entry of the index (a full scan of a million clips for
    a menu of four models); this asks the index for the smallest value, then for the
    smallest one past it, and so on: one index seek per distinct value, on either database.
    """
    table = sa.inspect(Generation).local_table
    column = table.c[name]
    smallest = sa.select(sa.func.min(column)).scalar_subquery()
    values = sa.select(smallest.label("value")).cte("facet_values", recursive=True)
    following = (
        sa.select(sa.func.min(column)).select_from(table).where(column > values.c.value)
    ).scalar_subquery()
    values = values.union_all(sa.select(following).where(values.c.value.is_not(None)))
    return sa.select(values.c.value).where(values.c.value.is_not(None))


def generations_by_job_ids(session: Session, job_ids: Sequence[str]) -> dict[str, Generation]:
    """The generations that recorded these remote job ids, by job id, in one query."""
    wanted = set(job_ids)
    if not wanted:
        return {}
    stmt = select(Generation).where(col(Generation.remote_job_id).in_(wanted))
    return {g.remote_job_id: g for g in session.exec(stmt) if g.remote_job_id}
