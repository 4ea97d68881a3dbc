"""Assets entering the catalog: the look-ups and merges that ingesting a file needs.

Taking a file in may fill in a *placeholder* (an asset known only from another file's
credentials) or merge one into the file's own row; the SQL for that lives here, so
:mod:`core.provenance.ingest` and :mod:`core.provenance.importer` decide *what* is the
same file and this module only reads and rewrites rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import Asset, Generation, VerificationRecord
from catalog.records import repoint_references
from catalog.relations import drop_clashing_relations


def placeholders_by_label(session: Session, label: str, kind: str, besides: str) -> list[Asset]:
    """Placeholders of ``kind`` known by the manifest ``label`` alone (no hash claimed),
    other than the asset ``besides``."""
    stmt = select(Asset).where(
        Asset.manifest_label == label,
        col(Asset.is_placeholder).is_(True),
        col(Asset.sha256).is_(None),
        Asset.kind == kind,
        Asset.id != besides,
    )
    return list(session.exec(stmt))


def assets_by_label(session: Session, label: str, kind: str) -> list[Asset]:
    """Every asset of ``kind`` with the manifest ``label``, real files before placeholders."""
    stmt = (
        select(Asset)
        .where(Asset.manifest_label == label, Asset.kind == kind)
        .order_by(col(Asset.is_placeholder), col(Asset.id))
    )
    return list(session.exec(stmt))


def latest_verification(
    session: Session, asset_id: str, verifier: str
) -> VerificationRecord | None:
    """The most recent result ``verifier`` recorded for an asset, if any."""
    stmt = (
        select(VerificationRecord)
        .where(VerificationRecord.asset_id == asset_id, VerificationRecord.verifier == verifier)
        .order_by(col(VerificationRecord.checked_at).desc(), col(VerificationRecord.id).desc())
        .limit(1)
    )
    return session.exec(stmt).first()


def verifications_newest_first(session: Session, asset_id: str) -> Iterator[VerificationRecord]:
    """An asset's verification history, the most recent result first."""
    stmt = (
        select(VerificationRecord)
        .where(VerificationRecord.asset_id == asset_id)
        .order_by(col(VerificationRecord.checked_at).desc(), col(VerificationRecord.id).desc())
    )
    yield from session.exec(stmt)


def generation_of_output(session: Session, asset_id: str) -> Generation | None:
    """The generation that made the asset (its ``output_asset_id``), if the catalog has it."""
    stmt = select(Generation).where(Generation.output_asset_id == asset_id).limit(1)
    return session.exec(stmt).first()


def add_verifications(session: Session, records: Iterable[VerificationRecord]) -> None:
    """Add verification results to their assets' histories."""
    session.add_all(list(records))
    session.flush()


def clip_id_taken(session: Session, generation_id: str) -> bool:
    """Whether a generation already has this id."""
    return session.get(Generation, generation_id) is not None


def merge_assets(session: Session, old: Asset, new: Asset) -> None:
    """Make every reference to ``old`` (a placeholder) point at ``new``, then drop ``old``.

    When both were the output of a generation, the real file's generation is kept and
    the placeholder's (an imported one) gives way: its children are re-parented.
    """
    session.flush()
    old_made = generation_of_output(session, old.id)
    new_made = generation_of_output(session, new.id)
    if old_made is not None and new_made is not None:
        repoint_references(session, Generation.__tablename__, old_made.id, new_made.id)
        session.execute(sa.delete(Generation).where(col(Generation.id) == old_made.id))
    drop_clashing_relations(session, old.id, new.id)
    repoint_references(session, Asset.__tablename__, old.id, new.id)
    session.execute(sa.delete(Asset).where(col(Asset.id) == old.id))
    session.expire_all()
    session.refresh(new)  # usable after the session, like any returned row
