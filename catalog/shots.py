"""Shots: every clip made of the same shot (its variants), found from any one of them.

``reelvault regenerate`` records a new clip as ``variant_of`` the clip it remade. A
variant may be remade again, so a shot's variants form a tree under one original (the
first clip of the shot: the one that is no variant itself). Two recursive queries find
that family, whichever of its clips one starts from: up the ``variant_of`` links to the
original, then down every ``variant_of`` link from it. Remixes and other derived clips
are not variants and stay out, as do their own variants (another shot).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import Generation
from core.api.types import Relation

VARIANT = Relation.VARIANT_OF.value


def shot_variants(session: Session, generation_id: str) -> list[Generation]:
    """The original of this clip's shot and all its variants, oldest first; a clip that
    has none (and is none) is alone in the list."""
    g = sa.orm.aliased(Generation)
    up = (
        select(
            col(Generation.id).label("id"),
            col(Generation.parent_id).label("parent_id"),
            col(Generation.relation).label("relation"),
        )
        .where(col(Generation.id) == generation_id)
        .cte("variant_up", recursive=True)
    )
    up = up.union_all(
        select(g.id, g.parent_id, g.relation).where(
            g.id == up.c.parent_id, up.c.relation == VARIANT
        )
    )
    # COALESCE: a NULL relation would make the test NULL, and NOT NULL drops the row.
    is_variant = sa.and_(
        sa.func.coalesce(up.c.relation, "") == VARIANT, up.c.parent_id.is_not(None)
    )
    original = select(up.c.id).where(sa.not_(is_variant))
    down = (
        select(col(Generation.id).label("id"))
        .where(col(Generation.id).in_(original))
        .cte("variant_down", recursive=True)
    )
    down = down.union_all(select(g.id).where(g.parent_id == down.c.id, g.relation == VARIANT))
    stmt = (
        select(Generation)
        .where(col(Generation.id).in_(select(down.c.id)))
        .order_by(col(Generation.created_at), col(Generation.id))
    )
    return list(session.exec(stmt))
