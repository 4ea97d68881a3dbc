"""What exports read: selected clips and everything they refer to, a batch at a time.

Every reader streams (``yield_per``), so an export of any size holds one batch in memory;
the batch size is the caller's, so the exporter decides how much it writes at once.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import Asset, Generation, PolicyDecisionRecord
from catalog.queries import ClipFilter, clip_conditions


def generation_batches(
    session: Session, filters: ClipFilter, batch_size: int
) -> Iterator[list[Generation]]:
    """The selected clips, oldest first (parents before their remixes), a batch at a time.

    The ``limit`` of ``filters`` is ignored: an export is never cut short.
    """
    stmt = (
        select(Generation)
        .where(*clip_conditions(filters))
        .order_by(col(Generation.created_at), col(Generation.id))
        .execution_options(yield_per=batch_size)
    )
    for batch in session.exec(stmt).partitions():
        yield list(batch)


def decisions_by_generation(
    session: Session, generation_ids: Sequence[str]
) -> dict[str, list[PolicyDecisionRecord]]:
    """The policy decisions of many generations, in one query, in recorded order."""
    found: dict[str, list[PolicyDecisionRecord]] = {}
    if not generation_ids:
        return found
    stmt = (
        select(PolicyDecisionRecord)
        .where(col(PolicyDecisionRecord.generation_id).in_(set(generation_ids)))
        .order_by(col(PolicyDecisionRecord.id))
    )
    for decision in session.exec(stmt):
        found.setdefault(decision.generation_id, []).append(decision)
    return found


def parent_videos(session: Session, batch: Sequence[Generation]) -> dict[str, str | None]:
    """The video of each generation's parent, by parent id, in one query."""
    wanted = {g.parent_id for g in batch if g.parent_id}
    if not wanted:
        return {}
    stmt = select(Generation.id, Generation.output_asset_id).where(col(Generation.id).in_(wanted))
    return dict(session.exec(stmt).all())


def backend_model_pairs(session: Session, filters: ClipFilter) -> list[tuple[str, str]]:
    """The distinct (backend, model) pairs the selected clips were made with."""
    stmt = select(Generation.backend, Generation.model).where(*clip_conditions(filters)).distinct()
    return list(session.exec(stmt).all())


def referenced_asset_batches(
    session: Session, filters: ClipFilter, columns: Sequence[str], batch_size: int
) -> Iterator[list[Asset]]:
    """Each distinct asset the selected clips name in ``columns`` (``Generation`` asset
    columns), plus their parents' videos, in id order, a batch at a time: a still used
    by a thousand clips comes once."""
    conditions = clip_conditions(filters)
    parent = sa.orm.aliased(Generation)
    referenced = sa.union(
        *(select(getattr(Generation, column)).where(*conditions) for column in columns),
        select(parent.output_asset_id)
        .select_from(Generation)
        .join(parent, col(parent.id) == col(Generation.parent_id))
        .where(*conditions),
    ).subquery()
    stmt = (
        select(Asset)
        .where(col(Asset.id).in_(select(referenced.c[0])))
        .order_by(col(Asset.id))
        .execution_options(yield_per=batch_size)
    )
    for batch in session.exec(stmt).partitions():
        yield list(batch)
