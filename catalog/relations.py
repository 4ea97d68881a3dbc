"""Relations between assets from C2PA ingredients: writing them, and walking them.

A relation row says that one asset (the child) names another (the parent) as an
ingredient. :mod:`core.provenance.relations` decides which asset an ingredient is; this
module only stores the answer and walks the graph level by level (one indexed query per
level, however many assets it holds), never visiting an asset twice, so a cycle the
credentials claim cannot make a walk run forever.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import Asset, AssetRelation
from catalog.records import insert_or_ignore

MAX_LEVELS = 64
"""How many levels a walk goes up or down, at most."""


@dataclass(frozen=True)
class RelationEdge:
    """One relation met on a walk, ``depth`` levels from where the walk began (1: direct)."""

    child_id: str
    parent_id: str
    relationship: str
    depth: int


def add_relation(session: Session, child_id: str, parent_id: str, relationship: str) -> bool:
    """Record that ``child_id`` names ``parent_id`` as a ``relationship`` ingredient;
    says whether it was new (recording the same relation twice changes nothing)."""
    if child_id == parent_id:
        return False  # a file cannot be its own ingredient, whatever its credentials say
    row = AssetRelation(
        child_asset_id=child_id, parent_asset_id=parent_id, relationship=relationship
    )
    return insert_or_ignore(session, row)


def walk_relations(session: Session, asset_id: str, *, upward: bool) -> list[RelationEdge]:
    """Every relation reachable from an asset, nearest first: its ingredients and theirs
    (``upward``), or the assets that name it and those that name them."""
    here, there = (
        (AssetRelation.child_asset_id, AssetRelation.parent_asset_id)
        if upward
        else (AssetRelation.parent_asset_id, AssetRelation.child_asset_id)
    )
    seen = {asset_id}
    frontier = [asset_id]
    edges: list[RelationEdge] = []
    for depth in range(1, MAX_LEVELS + 1):
        if not frontier:
            break
        stmt = (
            select(AssetRelation)
            .where(col(here).in_(frontier))
            .order_by(col(here), col(AssetRelation.relationship), col(there))
        )
        found = list(session.exec(stmt))
        frontier = []
        for row in found:
            edges.append(
                RelationEdge(row.child_asset_id, row.parent_asset_id, row.relationship, depth)
            )
            other = row.parent_asset_id if upward else row.child_asset_id
            if other not in seen:
                seen.add(other)
                frontier.append(other)
    return edges


def assets_by_instance_id(session: Session, instance_ids: Sequence[str], kind: str) -> list[Asset]:
    """Assets of ``kind`` with one of these instance ids, real files before placeholders."""
    if not instance_ids:
        return []
    stmt = (
        select(Asset)
        .where(col(Asset.instance_id).in_(instance_ids), Asset.kind == kind)
        .order_by(col(Asset.is_placeholder), col(Asset.id))
    )
    return list(session.exec(stmt))


def drop_clashing_relations(session: Session, old_id: str, new_id: str) -> None:
    """Before ``old_id``'s references move to ``new_id`` (a placeholder filled in): drop
    its relations that ``new_id`` already has, or that would relate it to itself."""

    def rows(asset_id: str) -> list[AssetRelation]:
        stmt = select(AssetRelation).where(
            sa.or_(
                col(AssetRelation.child_asset_id) == asset_id,
                col(AssetRelation.parent_asset_id) == asset_id,
            )
        )
        return list(session.exec(stmt))

    def key(row: AssetRelation, old: str) -> tuple[str, str, str]:
        moved = {old: new_id}
        child, parent = row.child_asset_id, row.parent_asset_id
        return moved.get(child, child), moved.get(parent, parent), row.relationship

    kept = {key(row, old_id) for row in rows(new_id)}
    clashing = [
        row.id
        for row in rows(old_id)
        if key(row, old_id) in kept or key(row, old_id)[0] == key(row, old_id)[1]
    ]
    if clashing:
        session.execute(sa.delete(AssetRelation).where(col(AssetRelation.id).in_(clashing)))
