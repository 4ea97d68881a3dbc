"""Every file the catalog takes in goes through :func:`ingest`, once per content.

A source still, a fitted still, a downloaded variant and an imported file all take the
same path: into the content store, verified, and recorded as one asset per distinct
content with its verification results. When the evidence shows the file is the one a
*placeholder* stood for (the SHA-256 another file's credentials claimed for it, or
trusted credentials with the label, signer and kind they named), it fills that
placeholder in. A manifest label alone is never proof: any signer can write any label.
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlmodel import Session

from catalog.assets import (
    add_verifications,
    latest_verification,
    merge_assets,
    placeholders_by_label,
)
from catalog.models import Asset, VerificationRecord
from catalog.queries import asset_by_sha
from catalog.records import ensure_asset, save
from catalog.relations import assets_by_instance_id
from catalog.verifications import verification_records
from core.api.ids import asset_id
from core.api.types import VerificationResult
from core.host.app import Reelvault
from core.media.probe import MediaInfo, probe_image, probe_video
from core.media.store import StoredFile
from core.provenance.credentials import manifest_of, same_signer, verify


@dataclass(frozen=True)
class Ingested:
    """What taking one file in did."""

    asset: Asset
    results: list[VerificationResult]
    filled: bool  # the file filled in a placeholder that stood for it
    existed: bool  # the same bytes were already cataloged


def ingest(
    app: Reelvault,
    source: Path | bytes,
    kind: str,
    *,
    info: MediaInfo | None = None,
    original_name: str | None = None,
    record_unchanged: bool = True,
) -> Ingested:
    """Store a file (or bytes), probe it unless ``info`` is known, verify and catalog it.

    The file is probed before anything is stored, so one reelvault cannot read leaves no
    trace. With ``record_unchanged`` false, a result equal to the verifier's last one for
    this asset is not recorded again, so importing a file twice changes nothing.
    """
    if info is None:
        if not isinstance(source, Path):
            raise TypeError("bytes to ingest need their MediaInfo")
        info = probe_video(source) if kind == "video" else probe_image(source)
    if isinstance(source, Path):
        stored = app.store.put_file(source)
    else:
        stored = app.store.put_stream(io.BytesIO(source))
    return _record(app, kind, stored, info, original_name, record_unchanged=record_unchanged)


def _record(
    app: Reelvault,
    kind: str,
    stored: StoredFile,
    info: MediaInfo,
    original_name: str | None,
    *,
    record_unchanged: bool,
) -> Ingested:
    """Verify a stored file and catalog it, once per distinct content."""
    results = verify(app.host, stored.path, info.mime, app.settings)
    manifest = manifest_of(results)
    trusted = manifest_of(results, trusted=True)
    read_any = manifest_of(results, intact=False) is not None
    row = Asset(
        id=asset_id(kind, stored.sha256),
        sha256=stored.sha256,
        kind=kind,
        mime=info.mime,
        bytes=stored.size,
        width=info.width,
        height=info.height,
        duration=info.duration,
        fps=info.fps,
        frame_count=info.frame_count,
        stored_path=stored.stored_path,
        original_name=original_name,
        manifest_label=manifest["label"] if manifest else None,
        instance_id=_instance_id(manifest, None if read_any else stored.path),
    )
    with app.session() as session:
        existing = asset_by_sha(session, stored.sha256)
        existed = existing is not None and not existing.is_placeholder
        asset, filled = _settle(session, row, existing, trusted, manifest)
        records = verification_records(asset.id, results)
        if not record_unchanged:
            records = [r for r in records if _changed(session, r)]
        add_verifications(session, records)
    return Ingested(asset, results, filled, existed)


def _settle(
    session: Session,
    row: Asset,
    existing: Asset | None,
    trusted: Mapping[str, Any] | None,
    intact: Mapping[str, Any] | None,
) -> tuple[Asset, bool]:
    """The catalog row for these bytes: existing, a filled placeholder, or a new one.

    A placeholder is taken to be this file only on evidence, since a manifest label is
    whatever its signer chose to write: the SHA-256 its referrer claimed for it (found as
    ``existing``), or, for a placeholder known by label alone, ``trusted`` credentials
    (the file's manifest, when it verified as trusted) with that label from the same
    signer and issuer, on a file of the same kind; or, for a placeholder known by its
    instance id, the same instance id on a file of the same kind: with the same label and
    signer in ``intact`` credentials (the file's manifest, when valid or trusted) if the
    placeholder's ingredient had credentials, on a file without credentials if not.
    """
    filled = False
    if existing is None:
        asset = ensure_asset(session, row)
    elif existing.is_placeholder:
        asset, filled = _fill(session, existing, row), True
    else:
        asset = existing
    if (row.manifest_label and not asset.manifest_label) or (
        row.instance_id and not asset.instance_id
    ):
        asset.manifest_label = asset.manifest_label or row.manifest_label
        asset.instance_id = asset.instance_id or row.instance_id
        save(session, asset)
    stand_ins = _stand_ins(session, asset, trusted) if trusted else []
    stand_ins += [p for p in _named_by_instance(session, asset, intact) if p not in stand_ins]
    for placeholder in stand_ins:
        merge_assets(session, placeholder, asset)
        filled = True
    return asset, filled


def _fill(session: Session, placeholder: Asset, row: Asset) -> Asset:
    """The file whose bytes a placeholder claimed takes its place.

    The bytes decide what the file is: when the referrer's credentials said another kind
    (a ``vid_`` placeholder for what is a JPEG), the file's own row replaces the
    placeholder and every reference moves to it.
    """
    if placeholder.id != row.id:
        placeholder.sha256 = None  # the hash belongs to the real row from now on
        save(session, placeholder)
        asset = ensure_asset(session, row)
        merge_assets(session, placeholder, asset)
        return asset
    for name in ("mime", "bytes", "width", "height", "duration", "fps", "frame_count",
                 "stored_path", "original_name", "instance_id"):  # fmt: skip
        setattr(placeholder, name, getattr(row, name))
    placeholder.manifest_label = row.manifest_label or placeholder.manifest_label
    placeholder.is_placeholder = False
    save(session, placeholder)
    return placeholder


def _stand_ins(session: Session, asset: Asset, trusted: Mapping[str, Any]) -> list[Asset]:
    """Placeholders known only by the label of ``asset``'s trusted manifest that its
    credentials vouch for: same kind, same signer and issuer, no other hash claimed."""
    candidates = placeholders_by_label(session, trusted["label"], asset.kind, besides=asset.id)
    return [p for p in candidates if same_signer(p.placeholder_info or {}, trusted)]


def _named_by_instance(
    session: Session, asset: Asset, intact: Mapping[str, Any] | None
) -> list[Asset]:
    """Placeholders (no hash claimed) that an ingredient's instance id made for this file."""
    if not asset.instance_id:
        return []
    found = []
    for placeholder in assets_by_instance_id(session, [asset.instance_id], asset.kind):
        if not placeholder.is_placeholder or placeholder.sha256 or placeholder.id == asset.id:
            continue
        if placeholder.manifest_label:
            if not (
                intact
                and intact.get("label") == placeholder.manifest_label
                and same_signer(placeholder.placeholder_info or {}, intact)
            ):
                continue
        elif asset.manifest_label:
            continue  # its ingredient had no credentials, and this file has
        found.append(placeholder)
    return found


XMP_INSTANCE_ID = re.compile(rb'xmpMM:InstanceID(?:="([^"]{1,200})"|>([^<]{1,200})<)')
XMP_SCAN_BYTES = 4 * 1024 * 1024
"""How far into a file its XMP packet is looked for (JPEG and PNG keep it near the start)."""


def _instance_id(manifest: Mapping[str, Any] | None, path: Path | None) -> str | None:
    """The id other files' ingredients name this file by: its intact manifest's instance
    id, or for a file without credentials (``path`` given) its XMP instance id."""
    if manifest is not None:
        value = manifest.get("instance_id")
        return value[:200] if isinstance(value, str) and value else None
    if path is None:
        return None
    with path.open("rb") as fh:
        match = XMP_INSTANCE_ID.search(fh.read(XMP_SCAN_BYTES))
    if match is None:
        return None
    return (match.group(1) or match.group(2)).decode("utf-8", "replace").strip() or None


def _changed(session: Session, record: VerificationRecord) -> bool:
    last = latest_verification(session, record.asset_id, record.verifier)
    return last is None or (last.state, list(last.codes)) != (record.state, record.codes)
