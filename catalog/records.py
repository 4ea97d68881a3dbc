"""Writing to the catalog: small, idempotent operations shared by every command."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlmodel import Session

from catalog.models import Asset, Generation, utcnow


def ensure_asset(session: Session, asset: Asset) -> Asset:
    """Insert an asset unless its bytes are already cataloged; return the stored row.

    Two processes may store the same bytes at the same moment (the same source image
    in two ``generate`` runs), so this is an insert that ignores a conflict on the
    hash rather than a check followed by an insert.
    """
    values = asset.model_dump()
    dialect = session.get_bind().dialect.name
    insert = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}.get(dialect)
    if insert is None:
        existing = session.get(Asset, asset.id)
        if existing is None:
            session.add(asset)
            session.flush()
            return asset
        return existing
    session.execute(insert(Asset).values(**values).on_conflict_do_nothing())
    stored = session.get(Asset, asset.id)
    assert stored is not None, "asset vanished right after its insert"
    return stored


def touch(generation: Generation, **changes: object) -> None:
    """Apply changes to a generation and stamp ``updated_at``."""
    for key, value in changes.items():
        setattr(generation, key, value)
    generation.updated_at = utcnow()


def lock_generation(session: Session, generation_id: str) -> Generation | None:
    """Load a generation for update, so two finishers of one job cannot both write it."""
    stmt = sa.select(Generation).where(Generation.id == generation_id)
    if session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    return session.execute(stmt).scalar_one_or_none()
