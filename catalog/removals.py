"""What ``reelvault rm`` and ``reelvault gc`` read and write: which rows a removal takes
with it, deleting them in one transaction with a record of each, and which stored files
no row refers to any more.

A clip's row refers to up to five assets (source still, still sent, video, thumbnail,
sprite sheet) and to its parent clip. Removing a clip takes its own files with it unless
another clip still refers to them; removing an asset (a still, an imported file) takes
nothing else, and both are refused while other clips are derived from them, unless the
caller asks for those clips to go too.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import Asset, Generation, PolicyDecisionRecord, Removal, VerificationRecord
from catalog.statuses import UNFINISHED
from core.api.errors import RequestError

ASSET_COLUMNS = (
    "source_asset_id",
    "input_asset_id",
    "output_asset_id",
    "thumbnail_asset_id",
    "spritesheet_asset_id",
)
"""The columns through which a clip refers to assets."""
OWN_FILES = ASSET_COLUMNS[1:]
"""A clip's own files, removed with it when no other clip shares them (not its source)."""


@dataclass
class RemovalPlan:
    """The rows a removal deletes; ``blocked`` names, for each item that cannot go alone,
    the clips derived from it that were not asked to go."""

    generations: dict[str, Generation] = field(default_factory=dict)
    assets: dict[str, Asset] = field(default_factory=dict)
    blocked: dict[str, list[str]] = field(default_factory=dict)

    @property
    def bytes(self) -> int:
        return sum(a.bytes or 0 for a in self.assets.values() if a.stored_path)


def _referring(session: Session, asset_ids: Iterable[str]) -> list[Generation]:
    ids = list(asset_ids)
    if not ids:
        return []
    refs = [col(getattr(Generation, name)).in_(ids) for name in ASSET_COLUMNS]
    return list(session.exec(select(Generation).where(sa.or_(*refs))))


def _children(session: Session, generation_ids: Iterable[str]) -> list[Generation]:
    ids = list(generation_ids)
    if not ids:
        return []
    return list(session.exec(select(Generation).where(col(Generation.parent_id).in_(ids))))


def _dependents(session: Session, plan: RemovalPlan) -> list[tuple[str, Generation]]:
    """Clips outside the plan derived from something in it, with what they derive from."""
    found: list[tuple[str, Generation]] = []
    for child in _children(session, plan.generations):
        if child.id not in plan.generations:
            found.append((child.parent_id or "", child))
    for clip in _referring(session, plan.assets):
        if clip.id not in plan.generations:
            used = [getattr(clip, n) for n in ASSET_COLUMNS if getattr(clip, n) in plan.assets]
            found.append((used[0], clip))
    return found


def plan_removal(
    session: Session,
    generations: Sequence[Generation],
    assets: Sequence[Asset],
    with_descendants: bool,
) -> RemovalPlan:
    """Everything removing these clips and assets deletes (see the module docstring).

    With ``with_descendants`` every clip derived from them, at any depth, is added;
    without, ``blocked`` says which clips stand in the way.
    """
    plan = RemovalPlan(generations={g.id: g for g in generations}, assets={a.id: a for a in assets})
    while dependents := _dependents(session, plan):
        if not with_descendants:
            for item_id, clip in dependents:
                plan.blocked.setdefault(item_id, []).append(clip.id)
            return plan
        plan.generations.update({clip.id: clip for _, clip in dependents})
    running = [g.id for g in plan.generations.values() if g.status in UNFINISHED]
    if running:
        raise RequestError(
            f"{running[0]} is still being made: wait for it to end before removing it"
        )
    own = {getattr(g, n) for g in plan.generations.values() for n in OWN_FILES} - {None}
    still_used = {
        getattr(clip, n)
        for clip in _referring(session, own)
        if clip.id not in plan.generations
        for n in ASSET_COLUMNS
    }
    for asset_id in own - still_used - set(plan.assets):
        asset = session.get(Asset, asset_id)
        if asset is not None:
            plan.assets[asset.id] = asset
    return plan


def remove(session: Session, plan: RemovalPlan, removed_by: str, when: datetime) -> None:
    """Delete the plan's rows, recording each removed clip and named asset."""
    clip_ids = list(plan.generations)
    asset_ids = list(plan.assets)
    records = [
        Removal(
            item_id=g.id,
            item_kind="clip",
            sha256=_sha(plan.assets.get(g.output_asset_id or "")),
            removed_by=removed_by,
            removed_at=when,
            summary={"status": g.status, "prompt": g.prompt, "model": g.model},
        )
        for g in plan.generations.values()
    ] + [
        Removal(
            item_id=a.id,
            item_kind="asset",
            sha256=a.sha256,
            removed_by=removed_by,
            removed_at=when,
            summary={"kind": a.kind, "mime": a.mime, "original_name": a.original_name},
        )
        for a in plan.assets.values()
    ]
    if clip_ids:
        session.execute(
            sa.delete(PolicyDecisionRecord).where(
                col(PolicyDecisionRecord.generation_id).in_(clip_ids)
            )
        )
        # Parent links inside the plan first: one clip may be deleted before its child.
        session.execute(
            sa.update(Generation).where(col(Generation.id).in_(clip_ids)).values(parent_id=None)
        )
        session.execute(sa.delete(Generation).where(col(Generation.id).in_(clip_ids)))
    if asset_ids:
        session.execute(
            sa.delete(VerificationRecord).where(col(VerificationRecord.asset_id).in_(asset_ids))
        )
        session.execute(sa.delete(Asset).where(col(Asset.id).in_(asset_ids)))
    session.add_all(records)


def _sha(asset: Asset | None) -> str | None:
    return asset.sha256 if asset is not None else None


def removals_of(session: Session, digests: Sequence[str]) -> dict[str, Removal]:
    """The latest removal of the file with each of these hashes, if it was removed."""
    if not digests:
        return {}
    stmt = (
        select(Removal)
        .where(col(Removal.sha256).in_(list(digests)))
        .order_by(col(Removal.removed_at))
    )
    return {r.sha256 or "": r for r in session.exec(stmt)}


def removal_rows(session: Session, limit: int) -> list[Removal]:
    """The latest removals, newest first."""
    stmt = select(Removal).order_by(col(Removal.removed_at).desc()).limit(limit)
    return list(session.exec(stmt))


def library_counts(session: Session) -> dict[str, Any]:
    """How many clips, stills and videos the catalog holds, and their stored bytes."""
    clips = session.exec(select(sa.func.count()).select_from(Generation)).one()
    rows = session.exec(
        select(Asset.kind, sa.func.count(), sa.func.coalesce(sa.func.sum(Asset.bytes), 0))
        .where(col(Asset.stored_path).is_not(None))
        .group_by(col(Asset.kind))
    ).all()
    by_kind = {kind: (int(count), int(size or 0)) for kind, count, size in rows}
    return {
        "clips": int(clips),
        "stills": by_kind.get("image", (0, 0))[0],
        "videos": by_kind.get("video", (0, 0))[0],
        "files": sum(count for count, _ in by_kind.values()),
        "bytes": sum(size for _, size in by_kind.values()),
    }
