"""Consent records: writing them, finding them, and the one a policy check relies on.

A consent is never deleted or rewritten but for its revocation stamp (see
:class:`catalog.models.ConsentRecord`), so these functions insert and stamp rows only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session, col, select

from catalog.models import ConsentImage, ConsentRecord
from catalog.queries import AMBIGUITY_SHOWN
from core.api.errors import AmbiguousIdError, NotFoundError
from core.api.ids import CONSENT_PREFIX, new_consent_id
from core.api.types import ConsentGrant


def insert_consent(
    session: Session,
    subject: str,
    images: Mapping[str, str | None],
    *,
    expires_at: datetime | None,
    note: str | None,
) -> tuple[ConsentRecord, list[ConsentImage]]:
    """Record a consent covering ``images`` (original file name by SHA-256), in the
    caller's transaction; the record is flushed first so its images can refer to it."""
    record = ConsentRecord(id=new_consent_id(), subject=subject, note=note, expires_at=expires_at)
    rows = [
        ConsentImage(consent_id=record.id, image_sha256=sha256, original_name=name)
        for sha256, name in images.items()
    ]
    session.add(record)
    session.flush()
    session.add_all(rows)
    return record, rows


def all_consents(session: Session) -> list[ConsentRecord]:
    """Every consent ever recorded, newest first."""
    stmt = select(ConsentRecord).order_by(
        col(ConsentRecord.granted_at).desc(), col(ConsentRecord.id).desc()
    )
    return list(session.exec(stmt).all())


def stamp_revoked(
    session: Session, record: ConsentRecord, when: datetime, reason: str | None
) -> None:
    """Mark a consent withdrawn from ``when`` on; the row itself stays."""
    record.revoked_at = when
    record.revoked_reason = reason
    session.add(record)


def get_consent(session: Session, text: str) -> ConsentRecord:
    """The one consent whose id starts with ``text`` (with or without ``consent_``)."""
    prefix = text.strip().lower()
    if not prefix:
        raise NotFoundError("an empty id matches nothing")
    if not (prefix.startswith(CONSENT_PREFIX) or CONSENT_PREFIX.startswith(prefix)):
        prefix = CONSENT_PREFIX + prefix
    stmt = (
        select(ConsentRecord)
        .where(col(ConsentRecord.id).startswith(prefix, autoescape=True))
        .order_by(col(ConsentRecord.id))
        .limit(AMBIGUITY_SHOWN + 1)
    )
    matches = list(session.exec(stmt))
    if not matches:
        raise NotFoundError(f"no consent matches {text!r}; `reelvault consent list` shows them")
    if len(matches) > 1:
        shown = ", ".join(m.id for m in matches[:AMBIGUITY_SHOWN])
        raise AmbiguousIdError(f"{text!r} is ambiguous: it matches {shown}; give more characters")
    return matches[0]


def active_consent(session: Session, image_sha256: str, now: datetime) -> ConsentGrant | None:
    """The newest consent covering these image bytes at ``now``, if any."""
    stmt = (
        select(ConsentRecord)
        .join(ConsentImage, col(ConsentImage.consent_id) == col(ConsentRecord.id))
        .where(
            ConsentImage.image_sha256 == image_sha256,
            col(ConsentRecord.revoked_at).is_(None),
            sa.or_(col(ConsentRecord.expires_at).is_(None), col(ConsentRecord.expires_at) > now),
        )
        .order_by(col(ConsentRecord.granted_at).desc(), col(ConsentRecord.id).desc())
        .limit(1)
    )
    record = session.exec(stmt).first()
    if record is None:
        return None
    return ConsentGrant(record.id, record.subject, record.granted_at, record.expires_at)


def images_of(session: Session, consent_ids: Sequence[str]) -> dict[str, list[ConsentImage]]:
    """The images each consent covers, by consent id, in one query."""
    if not consent_ids:
        return {}
    stmt = (
        select(ConsentImage)
        .where(col(ConsentImage.consent_id).in_(consent_ids))
        .order_by(col(ConsentImage.id))
    )
    found: dict[str, list[ConsentImage]] = {}
    for row in session.exec(stmt):
        found.setdefault(row.consent_id, []).append(row)
    return found
