"""Single rows by their exact primary key, for callers that already hold the id.

Ids a person types go through :func:`catalog.queries.resolve` (prefixes, ambiguity);
these are for ids the catalog itself handed out: a clip's source still, its video, a
file the web app was asked for by the id on one of its own pages.
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import Asset, Generation


def asset_by_id(session: Session, asset_id: str | None) -> Asset | None:
    """The asset with exactly this id, or ``None`` (also for no id: a clip without a
    video); served from the session's identity map when it already holds the row."""
    return session.get(Asset, asset_id) if asset_id else None


def generation_by_id(session: Session, generation_id: str | None) -> Generation | None:
    """The generation with exactly this id, or ``None`` (also for no id: a clip without a
    parent)."""
    return session.get(Generation, generation_id) if generation_id else None


def clip_of_file(session: Session, asset_id: str) -> Generation | None:
    """The clip this asset is the video, thumbnail or sprite sheet of, if any (what a
    download of the file is named after)."""
    owns = sa.or_(
        col(Generation.output_asset_id) == asset_id,
        col(Generation.thumbnail_asset_id) == asset_id,
        col(Generation.spritesheet_asset_id) == asset_id,
    )
    return session.exec(select(Generation).where(owns).limit(1)).first()
