"""Listing every file of the library: stills, clips' videos and imported files, each with
a summary of its lineage (how many files it came from, how many clips came from it)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import Asset, Generation
from catalog.organise import tagged
from catalog.queries import UNCHECKED, latest_state, listed_in_order
from catalog.search import check_search_text

LISTED_KINDS = ("image", "video")
"""What ``assets`` lists: thumbnails and sprite sheets are parts of a clip, not files of
the library, and placeholders are files known only from credentials."""


@dataclass(frozen=True)
class AssetFilter:
    kind: str | None = None
    mime: str | None = None
    provenance: str | None = None
    tags: tuple[str, ...] = ()
    text: str | None = None
    sort: str = "created"
    limit: int | None = 50
    offset: int = 0
    # Keyset paging, as ClipFilter's: continue past this asset id in created order
    # (``oldest_first`` reverses it); title and rating sorts page by ``offset`` instead.
    cursor: str | None = None
    oldest_first: bool = False
    # The web grid shows placeholders too (marked as such); the CLI lists stored files.
    placeholders: bool = False

    def __post_init__(self) -> None:
        if self.text is not None:  # refused before any query is built
            check_search_text(self.text)


def list_assets(session: Session, filters: AssetFilter) -> list[Asset]:
    """The library's files, newest first (or by title or rating), narrowed by ``filters``."""
    ident: Any = col(Asset.id)
    where: list[sa.ColumnElement[bool]] = [
        col(Asset.kind).in_([filters.kind] if filters.kind else LISTED_KINDS),
    ]
    if not filters.placeholders:
        where.append(col(Asset.is_placeholder).is_(False))
    if filters.mime:
        where.append(col(Asset.mime) == filters.mime)
    if filters.provenance == UNCHECKED:
        where.append(latest_state(ident).is_(None))
    elif filters.provenance:
        where.append(latest_state(ident) == filters.provenance)
    where += tagged(ident, "asset_id", filters.tags)
    stmt = select(Asset).where(*where)
    return listed_in_order(session, stmt, Asset, "asset_id", "file", filters)


@dataclass(frozen=True)
class LineageSummary:
    parents: int  # the files it was made from: a clip's still (and its parent clip's video)
    children: int  # the clips made from it: from a still, or remixes of a clip's video
    clip: str | None  # the clip whose video (or fitted still) it is
    poster: str | None = None  # that clip's thumbnail, when the file is its video


def lineage_summaries(session: Session, asset_ids: Sequence[str]) -> dict[str, LineageSummary]:
    """The lineage summary of each asset, in four grouped queries whatever the count."""
    ids = list(asset_ids)
    if not ids:
        return {}
    g: Any = Generation  # plain columns here: mypy cannot type the aliased selects
    parent: Any = sa.orm.aliased(Generation)
    children: Counter[str] = Counter()
    made_from = (
        sa.select(g.source_asset_id, sa.func.count())
        .where(col(g.source_asset_id).in_(ids), col(g.parent_id).is_(None))
        .group_by(g.source_asset_id)
    )
    remixed = (
        sa.select(parent.output_asset_id, sa.func.count())
        .select_from(g)
        .join(parent, col(parent.id) == col(g.parent_id))
        .where(col(parent.output_asset_id).in_(ids))
        .group_by(parent.output_asset_id)
    )
    for stmt in (made_from, remixed):
        for asset_id, count in session.execute(stmt):
            children[asset_id] += count
    parents: Counter[str] = Counter()
    clips: dict[str, str] = {}
    posters: dict[str, str] = {}
    outputs = sa.select(
        g.id, g.output_asset_id, g.source_asset_id, g.parent_id, g.thumbnail_asset_id
    ).where(col(g.output_asset_id).in_(ids))
    for clip_id, output, source, parent_id, thumbnail in session.execute(outputs):
        parents[output] = int(source is not None) + int(parent_id is not None)
        clips[output] = clip_id
        if thumbnail:
            posters[output] = thumbnail
    fitted = sa.select(g.id, g.input_asset_id).where(col(g.input_asset_id).in_(ids))
    for clip_id, input_id in session.execute(fitted):
        parents[input_id] = 1  # fitted from the clip's source still
        clips.setdefault(input_id, clip_id)
    return {i: LineageSummary(parents[i], children[i], clips.get(i), posters.get(i)) for i in ids}
