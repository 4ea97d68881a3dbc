"""What ``reelvault audit`` reads and writes: assets in id order, what made each clip's
video, and what a batch of checks learnt.

The audit walks the catalog in batches by id, each in its own short session, so every
function here reads or writes one batch and holds nothing between calls.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import Asset, Generation, VerificationRecord
from catalog.queries import assets_by_id
from core.api.types import Relation


def _added_since(since: datetime | None) -> list[sa.ColumnElement[bool]]:
    return [col(Asset.created_at) >= since] if since else []


def count_assets(session: Session, since: datetime | None = None) -> int:
    """How many assets there are (added at or after ``since``, if given)."""
    stmt = select(sa.func.count()).select_from(Asset).where(*_added_since(since))
    return session.exec(stmt).one()


def assets_after(
    session: Session, last_id: str, limit: int, since: datetime | None = None
) -> list[Asset]:
    """The next ``limit`` assets whose id sorts after ``last_id`` (keyset paging)."""
    stmt = (
        select(Asset)
        .where(col(Asset.id) > last_id, *_added_since(since))
        .order_by(col(Asset.id))
        .limit(limit)
    )
    return list(session.exec(stmt))


@dataclass(frozen=True)
class ClipOrigin:
    """What the catalog says made one stored clip: its generation, the still it was
    made from, and its parent clip's video."""

    generation: Generation
    source: Asset | None
    parent: Asset | None


def clip_origins(session: Session, asset_ids: Sequence[str]) -> dict[str, ClipOrigin]:
    """For each of these assets that is a clip's video, what made it, in three queries."""
    made = list(
        session.exec(select(Generation).where(col(Generation.output_asset_id).in_(asset_ids)))
    )
    # A variant's parent is kin, not an ingredient: its video went into nothing.
    parent_ids = {g.parent_id for g in made if g.parent_id and Relation.derives(g.relation)}
    parents = (
        {
            g.id: g
            for g in session.exec(select(Generation).where(col(Generation.id).in_(parent_ids)))
        }
        if parent_ids
        else {}
    )
    wanted = [g.source_asset_id for g in made] + [p.output_asset_id for p in parents.values()]
    assets = assets_by_id(session, wanted)
    origins: dict[str, ClipOrigin] = {}
    for generation in made:
        parent = parents.get(generation.parent_id or "")
        origins[generation.output_asset_id or ""] = ClipOrigin(
            generation,
            assets.get(generation.source_asset_id or ""),
            assets.get(parent.output_asset_id or "") if parent else None,
        )
    return origins


def save_checks(
    session: Session, records: Sequence[VerificationRecord], labels: Mapping[str, str]
) -> None:
    """Store a batch's verification results, and the manifest labels learnt from files
    cataloged before their labels were recorded (by asset id)."""
    session.add_all(records)
    for asset_id, label in labels.items():
        session.execute(
            sa.update(Asset).where(col(Asset.id) == asset_id).values(manifest_label=label)
        )
