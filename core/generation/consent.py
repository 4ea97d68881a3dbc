"""Consent records, the facts policy rules get about a request, and the policy dry run.

Consent is kept per image, by the SHA-256 of its bytes: a person agrees to the use of
their likeness in *these* pictures, and a rule can check that without ever seeing who
is in them. Only the hash (and the file's name, for the audit) is recorded; the image
itself is not stored. Records are never deleted: a revoke stamps the row, so the
catalog can always tell which consent a clip relied on when it was made.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from catalog.consents import (
    active_consent,
    all_consents,
    get_consent,
    images_of,
    insert_consent,
    stamp_revoked,
)
from catalog.lookups import asset_by_id
from catalog.models import Asset, ConsentImage, ConsentRecord, utcnow
from core.api.errors import RequestError
from core.api.times import timestamp_text
from core.api.types import (
    ConsentGrant,
    GenerationRequest,
    ImageFacts,
    ModelInfo,
    Outcome,
    PolicyContext,
    PolicyDecision,
    Size,
)
from core.generation.policy import denials, run_checks
from core.generation.rows import source_still_path
from core.host.app import Reelvault
from core.media.probe import probe_image
from core.media.store import hash_file

MAX_SUBJECT = 200


# --- consent records ---------------------------------------------------------------------


def parse_expiry(text: str, now: datetime | None = None) -> datetime:
    """An ISO date or time in the future; a bare date means the start of that day, UTC."""
    text = text.strip()
    try:
        value = datetime.fromisoformat(text)
    except ValueError:
        raise RequestError(
            f"expiry {text!r} is not a date: use e.g. 2027-06-30 or 2027-06-30T18:00"
        ) from None
    value = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    if value <= (now or utcnow()):
        raise RequestError(f"expiry {text!r} is not in the future")
    return value


def add_consent(
    app: Reelvault,
    subject: str,
    images: Sequence[Path],
    *,
    expires: datetime | None = None,
    note: str | None = None,
) -> dict[str, Any]:
    """Record that ``subject`` consents to their likeness in ``images``.

    Every image is read first, so a typo or a broken file records nothing at all.
    """
    subject = " ".join(subject.split())
    if not subject:
        raise RequestError("the subject is empty: name the person who consents")
    if len(subject) > MAX_SUBJECT:
        raise RequestError(f"the subject is longer than {MAX_SUBJECT} characters")
    if not images:
        raise RequestError("name at least one image the consent covers (--image)")
    if expires is not None and expires <= utcnow():
        raise RequestError("the expiry is not in the future")
    hashes: dict[str, str] = {}
    for path in images:
        probe_image(path)  # only a readable image can be recognised again later
        sha256, _ = hash_file(path)
        hashes.setdefault(sha256, path.name)
    with app.session() as session:
        record, rows = insert_consent(session, subject, hashes, expires_at=expires, note=note)
    return consent_dict(record, rows)


def list_consents(app: Reelvault) -> list[dict[str, Any]]:
    """Every consent ever recorded, newest first, with its current status."""
    with app.session() as session:
        records = all_consents(session)
        images = images_of(session, [r.id for r in records])
    return [consent_dict(r, images.get(r.id, [])) for r in records]


def revoke_consent(app: Reelvault, text: str, reason: str | None = None) -> dict[str, Any]:
    """Withdraw a consent from now on; the record and its history stay in the catalog."""
    with app.session() as session:
        record = get_consent(session, text)
        if record.revoked_at is not None:
            raise RequestError(
                f"{record.id} was already revoked at "
                f"{timestamp_text(record.revoked_at, seconds=False)} UTC"
            )
        stamp_revoked(session, record, utcnow(), reason)
        images = images_of(session, [record.id])
    return consent_dict(record, images.get(record.id, []))


def consent_status(record: ConsentRecord, now: datetime | None = None) -> str:
    if record.revoked_at is not None:
        return "revoked"
    if record.expires_at is not None and record.expires_at <= (now or utcnow()):
        return "expired"
    return "active"


def consent_dict(record: ConsentRecord, images: Sequence[ConsentImage]) -> dict[str, Any]:
    return {
        "id": record.id,
        "subject": record.subject,
        "status": consent_status(record),
        "note": record.note,
        "granted_at": record.granted_at.isoformat(),
        "expires_at": record.expires_at.isoformat() if record.expires_at else None,
        "revoked_at": record.revoked_at.isoformat() if record.revoked_at else None,
        "revoked_reason": record.revoked_reason,
        "images": [{"sha256": i.image_sha256, "original_name": i.original_name} for i in images],
    }


# --- what policy rules are told ----------------------------------------------------------


def consent_lookup(app: Reelvault) -> Callable[[str], ConsentGrant | None]:
    """``consent_for`` for a :class:`PolicyContext`: asks the catalog at the moment of use."""

    def consent_for(image_sha256: str) -> ConsentGrant | None:
        with app.session() as session:
            return active_consent(session, image_sha256, utcnow())

    return consent_for


def stored_image_facts(app: Reelvault, asset: Asset) -> ImageFacts:
    """Facts about a still already in the store: it was probed when it came in.

    Its file must still be there: a policy reading a missing file would crash, deny (fail
    closed) and leave a ``rejected`` row for what is really a damaged store.
    """
    path = source_still_path(app, asset)
    return ImageFacts(
        path=path,
        sha256=asset.file_sha256,
        bytes=asset.bytes or 0,
        mime=asset.mime,
        width=asset.width,
        height=asset.height,
    )


def file_image_facts(path: Path) -> ImageFacts:
    """Facts about a still on disk, read the same way ``generate`` admits one."""
    if not path.is_file():
        raise RequestError(f"{path}: no such file")
    sha256, size = hash_file(path)
    try:
        info = probe_image(path)
    except RequestError as exc:
        return ImageFacts(path=path, sha256=sha256, bytes=size, problem=str(exc))
    return ImageFacts(path, sha256, size, info.mime, info.width, info.height)


def request_context(
    app: Reelvault, model: ModelInfo | None, source_asset_id: str | None
) -> PolicyContext:
    """The context for a request whose still (if any) is already cataloged."""
    image = None
    if source_asset_id:
        with app.session() as session:
            asset = asset_by_id(session, source_asset_id)
        image = stored_image_facts(app, asset) if asset else None
    return PolicyContext(model=model, image=image, consent_for=consent_lookup(app))


# --- the dry run -------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyReport:
    """Every decision on a request that was checked but not submitted."""

    backend: str
    model: str
    decisions: list[PolicyDecision]

    @property
    def outcome(self) -> Outcome:
        if denials(self.decisions):
            return Outcome.DENY
        if any(d.outcome == Outcome.WARN for d in self.decisions):
            return Outcome.WARN
        return Outcome.ALLOW

    def as_dict(self) -> dict[str, Any]:
        return {
            "outcome": str(self.outcome),
            "backend": self.backend,
            "model": self.model,
            "decisions": [
                {
                    "plugin": d.plugin,
                    "rule_id": d.rule_id,
                    "outcome": str(d.outcome),
                    "reason": d.reason,
                }
                for d in self.decisions
            ],
        }


def check_policy(
    app: Reelvault,
    image: Path,
    prompt: str,
    *,
    model: str | None = None,
    backend: str | None = None,
    seconds: int | None = None,
    size: str | None = None,
    parameters: Mapping[str, Any] | None = None,
) -> PolicyReport:
    """Run every policy check on a request as ``generate`` would, submitting nothing.

    Where ``generate`` refuses a malformed request outright (an unknown model, a size
    the model does not allow, an unreadable still), the dry run hands it to the rules
    anyway, so the report names every problem at once.
    """
    backend_name, info = _resolve(app, model, backend)
    facts = file_image_facts(image)
    seconds = seconds if seconds is not None else (info.default_seconds if info else 0)
    size = size or (info.default_size if info else "")
    with contextlib.suppress(RequestError):  # else left as typed, for the rule to name
        size = str(Size.parse(size))
    request = GenerationRequest(
        model=info.name if info else model or "",
        prompt=prompt,
        seconds=seconds,
        size=size,
        input_image=image,
        parameters=dict(parameters or {}),
    )
    context = PolicyContext(model=info, image=facts, consent_for=consent_lookup(app))
    decisions = run_checks(app.host, request, backend_name, app.settings, context)
    return PolicyReport(backend_name, request.model, decisions)


def _resolve(
    app: Reelvault, model: str | None, backend: str | None
) -> tuple[str, ModelInfo | None]:
    """The backend and model meant; an unknown model is for the rules to judge."""
    try:
        found, info = app.resolve_model(model, backend)
    except RequestError:
        # An unknown --backend or an ambiguous model is a usage error; only a model no
        # backend offers becomes a decision.
        candidates = [app.backend(backend)] if backend else list(app.backends.values())
        if model is None or any(m.name == model for b in candidates for m in b.models()):
            raise
        return backend or "", None
    return found.name, info
