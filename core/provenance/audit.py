"""Auditing the whole catalog: files, credentials and lineage, checked against each other.

For every stored file: is it still there, does it still hash to the SHA-256 on record,
do its Content Credentials still verify, and does the lineage the catalog holds for the
clip it belongs to agree with the ingredients its manifest names? Each disagreement is
a :class:`Finding`; a clean audit has none.

The catalog is walked in batches by id, each in a short session, and files are hashed
in chunks, so memory stays flat however large the library is (c2pa-rs holds one file at
a time while validating it). New verification results join each asset's history.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from catalog.audits import ClipOrigin, assets_after, clip_origins, count_assets, save_checks
from catalog.models import Asset, VerificationRecord
from catalog.removals import removals_of
from catalog.verifications import last_states, verification_records
from core.api.errors import MissingMediaError
from core.api.ids import short
from core.api.times import timestamp_text
from core.api.types import ProgressCallback, Relation, VerificationResult, VerificationState
from core.host.app import Reelvault
from core.media.store import CheckedCopy
from core.provenance.credentials import compare_lineage, manifest_of, verify

BATCH = 200
FINDING_KINDS = (
    "missing",
    "changed",
    "invalid",
    "unreadable",
    "credentials_removed",
    "lineage_missing",
    "lineage_contradiction",
)
"""Every kind of finding, in the order the summary lists them."""
SIGNED = {VerificationState.TRUSTED, VerificationState.VALID, VerificationState.INVALID}


@dataclass(frozen=True)
class Finding:
    kind: str
    asset_id: str
    message: str
    generation_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "asset_id": self.asset_id,
            "generation_id": self.generation_id,
            "message": self.message,
        }


@dataclass
class AuditReport:
    checked: int = 0
    placeholders: int = 0
    states: Counter[str] = field(default_factory=Counter)
    findings: list[Finding] = field(default_factory=list)
    notes: list[Finding] = field(default_factory=list)
    """Worth knowing, not wrong: lineage nothing confirms, a signer no longer trusted."""

    @property
    def clean(self) -> bool:
        return not self.findings

    def counts(self) -> dict[str, int]:
        found = Counter(f.kind for f in self.findings)
        return {kind: found.get(kind, 0) for kind in FINDING_KINDS}

    def to_json(self) -> dict[str, Any]:
        return {
            "clean": self.clean,
            "checked": self.checked,
            "placeholders": self.placeholders,
            "verification_states": dict(sorted(self.states.items())),
            "counts": self.counts(),
            "findings": [f.to_json() for f in self.findings],
            "notes": [n.to_json() for n in self.notes],
        }


def audit(
    app: Reelvault,
    *,
    since: datetime | None = None,
    on_progress: ProgressCallback | None = None,
    batch_size: int = BATCH,
) -> AuditReport:
    """Check every asset (added at or after ``since``, if given); see the module doc."""
    report = AuditReport()
    with app.session() as session:
        total = count_assets(session, since)
    last_id = ""
    while True:
        with app.session() as session:
            batch = assets_after(session, last_id, batch_size, since)
            if not batch:
                break
            lineages = clip_origins(session, [a.id for a in batch])
            previous = last_states(session, [a.id for a in batch])
        last_id = batch[-1].id
        records: list[VerificationRecord] = []
        labels: dict[str, str] = {}
        for asset in batch:
            checked = _check(app, report, asset, lineages.get(asset.id), previous)
            if checked is not None:
                results, intact = checked
                records += verification_records(asset.id, results)
                manifest = manifest_of(results)
                if intact and manifest and not asset.manifest_label:
                    labels[asset.id] = manifest["label"]
            if on_progress:
                done = report.checked + report.placeholders
                on_progress(f"{done}/{total}", done * 100 // max(total, 1))
        with app.session() as session:
            save_checks(session, records, labels)
    return report


def _check(
    app: Reelvault,
    report: AuditReport,
    asset: Asset,
    lineage: ClipOrigin | None,
    previous: Mapping[tuple[str, str], str],
) -> tuple[list[VerificationResult], bool] | None:
    """Check one asset: its results (``None`` when there is no file to verify) and whether
    the file is still the one cataloged.

    A file that no longer hashes to its SHA-256 is someone else's content: its credentials
    are verified and recorded, but say nothing about the cataloged asset, so neither its
    manifest label is learnt nor the catalog's lineage compared with its ingredients.
    """
    if asset.is_placeholder or not asset.stored_path:
        report.placeholders += 1
        return None
    report.checked += 1
    generation_id = lineage.generation.id if lineage else None

    def find(kind: str, message: str) -> None:
        report.findings.append(Finding(kind, asset.id, message, generation_id))

    try:
        with app.store.checked_copy(asset.sha256 or "") as copy:
            return _check_copy(app, report, asset, lineage, previous, copy, find)
    except MissingMediaError as exc:
        with app.session() as session:
            removal = removals_of(session, [asset.sha256 or ""]).get(asset.sha256 or "")
        if removal is None:
            find("missing", str(exc))
        else:  # someone removed this file on purpose (``rm``): worth knowing, not a loss
            when = f"{timestamp_text(removal.removed_at)} UTC"
            report.notes.append(
                Finding(
                    "removed",
                    asset.id,
                    f"file removed by {removal.removed_by} at {when} "
                    f"(with {removal.item_kind} {removal.item_id})",
                    generation_id,
                )
            )
        return None


def _check_copy(
    app: Reelvault,
    report: AuditReport,
    asset: Asset,
    lineage: ClipOrigin | None,
    previous: Mapping[tuple[str, str], str],
    copy: CheckedCopy,
    find: Callable[[str, str], None],
) -> tuple[list[VerificationResult], bool]:
    """The checks of one file read back from the store (see :func:`_check`)."""
    generation_id = lineage.generation.id if lineage else None
    where = app.store.location(asset.sha256 or "")
    intact = copy.sha256 == asset.sha256
    if not intact:
        find(
            "changed",
            f"{where} changed in the store: SHA-256 {copy.sha256[:12]}…, {copy.size:,} bytes",
        )
    results = verify(app.host, copy.path, asset.mime, app.settings)
    for result in results:
        report.states[result.state] += 1
        before = previous.get((asset.id, result.verifier))
        codes = ", ".join(result.codes) or "no codes"
        if result.state == VerificationState.INVALID:
            find("invalid", f"{result.verifier}: credentials do not match the file ({codes})")
        elif result.state == VerificationState.UNREADABLE:
            error = result.details.get("error") or codes
            find("unreadable", f"{result.verifier}: {error}")
        elif result.state == VerificationState.ABSENT and before in SIGNED:
            find("credentials_removed", f"{result.verifier}: was {before}, now has no manifest")
        elif result.state == VerificationState.VALID and before == VerificationState.TRUSTED:
            report.notes.append(
                Finding(
                    "trust_changed",
                    asset.id,
                    f"{result.verifier}: the signer was trusted, now is not (trust anchors?)",
                    generation_id,
                )
            )
    if lineage is not None:
        unsupported = (lineage.generation.details or {}).get("claims_not_supported") or {}
        for role, sha in sorted(unsupported.items()):
            find(
                "lineage_contradiction",
                f"its credentials claim {role} {sha}, which no ingredient bears out "
                "(claimed, not supported by ingredients): not linked",
            )
    manifest = manifest_of(results) if intact else None
    if lineage is not None and manifest is not None:
        for problem in compare_lineage(
            manifest,
            source=lineage.source,
            parent=lineage.parent,
            derived=lineage.generation.parent_id is not None
            and Relation.derives(lineage.generation.relation),
        ):
            finding = Finding(problem.kind, asset.id, problem.message, generation_id)
            if problem.kind in FINDING_KINDS:
                report.findings.append(finding)
            else:
                report.notes.append(finding)
    return results, intact


def describe(finding: Finding) -> str:
    where = f"{short(finding.asset_id)}" + (
        f" ({finding.generation_id})" if finding.generation_id else ""
    )
    return f"{finding.kind:<22} {where}: {finding.message}"
