"""Provenance checks in the catalog: each asset's verification history, appended to only.

A new check never replaces an old one; it joins the history, so a file whose credentials
were stripped, or whose signer stopped being trusted, shows the change.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import VerificationRecord
from core.api.types import VerificationResult


def verification_records(
    asset_id: str, results: Sequence[VerificationResult]
) -> list[VerificationRecord]:
    """Rows for one asset's verifier results, not yet added to any session."""
    return [
        VerificationRecord(
            asset_id=asset_id,
            verifier=r.verifier,
            state=r.state,
            codes=list(r.codes),
            details=dict(r.details),
        )
        for r in results
    ]


def record_verifications(
    session: Session, asset_id: str, results: Sequence[VerificationResult]
) -> None:
    """Append one asset's verifier results to its history, in the caller's transaction."""
    session.add_all(verification_records(asset_id, results))


def last_states(session: Session, asset_ids: Sequence[str]) -> dict[tuple[str, str], str]:
    """Each (asset, verifier)'s most recent recorded state (the history can be long)."""
    latest = (
        select(sa.func.max(VerificationRecord.id))
        .where(col(VerificationRecord.asset_id).in_(asset_ids))
        .group_by(col(VerificationRecord.asset_id), col(VerificationRecord.verifier))
    )
    stmt = select(
        VerificationRecord.asset_id, VerificationRecord.verifier, VerificationRecord.state
    ).where(col(VerificationRecord.id).in_(latest))
    return {(a, v): s for a, v, s in session.exec(stmt)}
