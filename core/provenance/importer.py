"""Files entering the catalog, and lineage rebuilt from their Content Credentials.

Every file the catalog takes in (a source still, a downloaded clip, an imported file)
goes through :func:`catalog_file`: it is verified, stored once per content, and, when
the evidence shows it is the file a *placeholder* stood for (the SHA-256 another file's
credentials claimed for it, or trusted credentials with the label, signer and kind they
named), it fills that placeholder in. A manifest label alone is never proof: any signer
can write any label. ``reelvault import`` adds the rest: for a clip whose manifest says how it was
made, a generation row (status ``imported``) linked to its source still and parent clip
as its ingredients say, so ``reelvault lineage`` shows imported families like generated
ones. An ingredient whose file is not on disk becomes a placeholder asset that records
what the manifest says about it, until the file turns up.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, SQLModel, col, select

from catalog.models import Asset, Generation, VerificationRecord, utcnow
from catalog.queries import asset_by_sha
from catalog.records import ensure_asset
from core.api.errors import ReelvaultError, RequestError
from core.api.ids import ASSET_PREFIXES, CLIP_PREFIX, asset_id, new_clip_id, short
from core.api.types import Relation, VerificationResult, VerificationState
from core.host.app import Reelvault
from core.media.probe import MediaInfo, probe_image, probe_video
from core.media.store import StoredFile
from core.provenance.credentials import (
    INPUT_TO,
    PARENT_OF,
    claimed_sha256,
    ingredient_kind,
    ingredient_label,
    ingredients,
    manifest_of,
    same_signer,
    verification_records,
    verify,
)

IMPORTED = "imported"
"""The status of a generation rebuilt from a file's credentials rather than run here."""
PLACEHOLDER_MARK = "ph_"
_CLIP_ID = re.compile(rf"^{CLIP_PREFIX}[0-9a-z]{{6,34}}$")
MAX_CHAIN = 64


@dataclass(frozen=True)
class CatalogedFile:
    asset: Asset
    results: list[VerificationResult]
    filled: bool  # the file filled in a placeholder that stood for it
    existed: bool  # the same bytes were already cataloged


def catalog_file(
    app: Reelvault,
    kind: str,
    stored: StoredFile,
    info: MediaInfo,
    original_name: str | None,
    *,
    record_unchanged: bool = True,
) -> CatalogedFile:
    """Verify a stored file and catalog it, once per distinct content.

    With ``record_unchanged`` false, a result equal to the verifier's last one for this
    asset is not recorded again, so importing a file twice changes nothing.
    """
    results = verify(app.host, stored.path, info.mime, app.settings)
    manifest = manifest_of(results)
    trusted = manifest_of(results, trusted=True)
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
        stored_path=str(stored.path.relative_to(app.store.root)),
        original_name=original_name,
        manifest_label=manifest["label"] if manifest else None,
    )
    with app.session() as session:
        existing = asset_by_sha(session, stored.sha256)
        existed = existing is not None and not existing.is_placeholder
        asset, filled = _settle(session, row, existing, trusted)
        records = verification_records(asset.id, results)
        if not record_unchanged:
            records = [r for r in records if _changed(session, r)]
        session.add_all(records)
    return CatalogedFile(asset, results, filled, existed)


def _settle(
    session: Session, row: Asset, existing: Asset | None, trusted: Mapping[str, Any] | None
) -> tuple[Asset, bool]:
    """The catalog row for these bytes: existing, a filled placeholder, or a new one.

    A placeholder is taken to be this file only on evidence, since a manifest label is
    whatever its signer chose to write: the SHA-256 its referrer claimed for it (found as
    ``existing``), or, for a placeholder known by label alone, ``trusted`` credentials
    (the file's manifest, when it verified as trusted) with that label from the same
    signer and issuer, on a file of the same kind.
    """
    filled = False
    if existing is None:
        asset = ensure_asset(session, row)
    elif existing.is_placeholder:
        asset, filled = _fill(session, existing, row), True
    else:
        asset = existing
    if row.manifest_label and not asset.manifest_label:
        asset.manifest_label = row.manifest_label
        session.add(asset)
        session.flush()
    for placeholder in _stand_ins(session, asset, trusted) if trusted else []:
        merge_assets(session, placeholder, asset)
        session.refresh(asset)  # usable after the session, like any returned row
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
        session.add(placeholder)
        session.flush()
        asset = ensure_asset(session, row)
        merge_assets(session, placeholder, asset)
        session.refresh(asset)
        return asset
    for name in ("mime", "bytes", "width", "height", "duration", "fps", "frame_count",
                 "stored_path", "original_name"):  # fmt: skip
        setattr(placeholder, name, getattr(row, name))
    placeholder.manifest_label = row.manifest_label or placeholder.manifest_label
    placeholder.is_placeholder = False
    session.add(placeholder)
    session.flush()
    return placeholder


def _stand_ins(session: Session, asset: Asset, trusted: Mapping[str, Any]) -> list[Asset]:
    """Placeholders known only by the label of ``asset``'s trusted manifest that its
    credentials vouch for: same kind, same signer and issuer, no other hash claimed."""
    stmt = select(Asset).where(
        Asset.manifest_label == trusted["label"],
        col(Asset.is_placeholder).is_(True),
        col(Asset.sha256).is_(None),
        Asset.kind == asset.kind,
        Asset.id != asset.id,
    )
    return [p for p in session.exec(stmt) if same_signer(p.placeholder_info or {}, trusted)]


def _changed(session: Session, record: VerificationRecord) -> bool:
    last = session.exec(
        select(VerificationRecord)
        .where(
            VerificationRecord.asset_id == record.asset_id,
            VerificationRecord.verifier == record.verifier,
        )
        .order_by(col(VerificationRecord.checked_at).desc(), col(VerificationRecord.id).desc())
        .limit(1)
    ).first()
    return last is None or (last.state, list(last.codes)) != (record.state, record.codes)


def merge_assets(session: Session, old: Asset, new: Asset) -> None:
    """Make every reference to ``old`` (a placeholder) point at ``new``, then drop ``old``.

    When both were the output of a generation, the real file's generation is kept and
    the placeholder's (an imported one) gives way: its children are re-parented.
    """
    session.flush()
    old_made = _generation_of(session, old.id)
    new_made = _generation_of(session, new.id)
    if old_made is not None and new_made is not None:
        _repoint(session, Generation.__tablename__, old_made.id, new_made.id)
        session.execute(sa.delete(Generation).where(col(Generation.id) == old_made.id))
    _repoint(session, Asset.__tablename__, old.id, new.id)
    session.execute(sa.delete(Asset).where(col(Asset.id) == old.id))
    session.expire_all()


def _repoint(session: Session, table_name: str, old_id: str, new_id: str) -> None:
    """Rewrite every foreign key into ``table_name`` (in any feature's tables) to ``new_id``."""
    for table in SQLModel.metadata.sorted_tables:
        for fk in table.foreign_keys:
            if fk.column.table.name == table_name:
                session.execute(
                    sa.update(table).where(fk.parent == old_id).values({fk.parent.name: new_id})
                )


def _generation_of(session: Session, asset_id_: str) -> Generation | None:
    stmt = select(Generation).where(Generation.output_asset_id == asset_id_).limit(1)
    return session.exec(stmt).first()


# -- lineage from credentials ---------------------------------------------------------


def link_lineage(session: Session, asset: Asset, manifest: Mapping[str, Any]) -> Generation | None:
    """The generation that made a clip: the catalog's, or one rebuilt from its manifest.

    The manifest's ``parentOf`` ingredient becomes the parent clip (recursively, from the
    ingredient's own manifest) and its ``inputTo`` ingredient the source still; a clip
    with a parent and no still of its own inherits the parent's, as remixes do.
    """
    return _link(session, asset, manifest, depth=0)


def _link(
    session: Session, asset: Asset, manifest: Mapping[str, Any], depth: int
) -> Generation | None:
    if asset.kind != "video" or depth > MAX_CHAIN:
        return None
    existing = _generation_of(session, asset.id)
    if existing is not None:
        return existing
    claimed = manifest.get("generation")
    claimed = claimed if isinstance(claimed, Mapping) else {}
    parent: Generation | None = None
    source: Asset | None = None
    unlinked: list[str] = []
    for ingredient in ingredients(manifest, PARENT_OF)[:1]:
        parent_asset = ingredient_asset(session, ingredient, claimed_sha256(manifest, "parent"))
        if parent_asset is None:
            unlinked.append(str(ingredient.get("title")))
            continue
        parent = _link(session, parent_asset, ingredient.get("manifest") or {}, depth + 1)
    for ingredient in ingredients(manifest, INPUT_TO)[:1]:
        source = ingredient_asset(session, ingredient, claimed_sha256(manifest, "source"))
        if source is None:
            unlinked.append(str(ingredient.get("title")))
    parameters = claimed.get("parameters")
    parameters = dict(parameters) if isinstance(parameters, Mapping) else {}
    made_at = _when(claimed.get("signed_at")) or _when(manifest.get("signed_at")) or utcnow()
    generation = Generation(
        id=_free_clip_id(session, claimed.get("generation_id")),
        backend=_text(claimed.get("backend")) or "import",
        model=_text(claimed.get("model")) or _text(manifest.get("claim_generator")) or "unknown",
        prompt=str(claimed.get("prompt") or ""),
        seconds=_seconds(asset, parameters),
        size=_size(asset, parameters),
        parameters=parameters,
        status=IMPORTED,
        progress=100,
        source_asset_id=source.id if source else (parent.source_asset_id if parent else None),
        parent_id=parent.id if parent else None,
        relation=_relation(claimed.get("relation")) if parent else None,
        output_asset_id=asset.id,
        details={
            "imported_from": {
                "manifest": manifest.get("label"),
                "claim_generator": manifest.get("claim_generator"),
                "signer": manifest.get("signer"),
                "issuer": manifest.get("issuer"),
                "digital_source_type": manifest.get("digital_source_type"),
                "unlinked_ingredients": unlinked,
            },
            **({"motion_plan": claimed["motion_plan"]} if claimed.get("motion_plan") else {}),
        },
        created_at=made_at,
        updated_at=utcnow(),
        completed_at=made_at,
    )
    session.add(generation)
    session.flush()
    return generation


def ingredient_asset(
    session: Session, ingredient: Mapping[str, Any], claimed_sha: str | None
) -> Asset | None:
    """The catalog asset an ingredient stands for, made a placeholder if not yet known.

    The SHA-256 that reelvault's generation assertion recorded is decisive. A manifest
    label is not (any signer can write any label), so it names only an asset of the
    ingredient's kind whose hash does not contradict the claim, and then only with the
    same signer and issuer: a placeholder made from the same claim, or a file whose own
    latest credentials carry that label and verified as trusted. With neither hash nor
    label, nothing can be linked.
    """
    if claimed_sha and (found := asset_by_sha(session, claimed_sha)) is not None:
        return found
    label = ingredient_label(ingredient)
    if not label and not claimed_sha:
        return None
    manifest = ingredient.get("manifest")
    manifest = manifest if isinstance(manifest, Mapping) else {}
    kind = ingredient_kind(ingredient)
    if label:
        stmt = (
            select(Asset)
            .where(Asset.manifest_label == label, Asset.kind == kind)
            .order_by(col(Asset.is_placeholder), col(Asset.id))
        )
        for candidate in list(session.exec(stmt)):
            if _stands_for(session, candidate, manifest, claimed_sha):
                return candidate
    if claimed_sha:
        placeholder_id = asset_id(kind, claimed_sha)
    else:  # one placeholder per label *and signer*: two signers' claims are two things
        identity = "\n".join(
            str(v) for v in (label, manifest.get("signer"), manifest.get("issuer"))
        )
        digest = hashlib.sha256(identity.encode()).hexdigest()[:40]
        placeholder_id = f"{ASSET_PREFIXES[kind]}{PLACEHOLDER_MARK}{digest}"
    existing = session.get(Asset, placeholder_id)
    if existing is not None:
        return existing
    mime = str(ingredient.get("format") or "application/octet-stream")
    placeholder = Asset(
        id=placeholder_id,
        sha256=claimed_sha,
        kind=kind,
        mime=mime[:100],
        is_placeholder=True,
        manifest_label=label,
        original_name=_text(ingredient.get("title"), 500),
        placeholder_info={
            "title": ingredient.get("title"),
            "format": ingredient.get("format"),
            "relationship": ingredient.get("relationship"),
            "instance_id": ingredient.get("instance_id"),
            "manifest": label,
            "claim_generator": manifest.get("claim_generator"),
            "signer": manifest.get("signer"),
            "issuer": manifest.get("issuer"),
            "signed_at": manifest.get("signed_at"),
            "digital_source_type": manifest.get("digital_source_type"),
            "sha256_claimed": claimed_sha,
        },
    )
    session.add(placeholder)
    session.flush()
    return placeholder


def _stands_for(
    session: Session, candidate: Asset, manifest: Mapping[str, Any], claimed_sha: str | None
) -> bool:
    """Whether an asset with the ingredient's label and kind is the ingredient's file."""
    if claimed_sha and candidate.sha256:
        return False  # its bytes are known, and they are not the ones claimed
    if candidate.is_placeholder:
        return same_signer(candidate.placeholder_info or {}, manifest)
    own = _latest_credentials(session, candidate.id)
    return (
        own is not None
        and own[0] == VerificationState.TRUSTED
        and own[1].get("label") == candidate.manifest_label
        and same_signer(own[1], manifest)
    )


def _latest_credentials(session: Session, asset_id_: str) -> tuple[str, Mapping[str, Any]] | None:
    """The state and manifest of an asset's most recent verification that read one."""
    stmt = (
        select(VerificationRecord)
        .where(VerificationRecord.asset_id == asset_id_)
        .order_by(col(VerificationRecord.checked_at).desc(), col(VerificationRecord.id).desc())
    )
    for record in session.exec(stmt):
        manifest = (record.details or {}).get("manifest")
        if isinstance(manifest, Mapping) and manifest.get("label"):
            return record.state, manifest
    return None


def _free_clip_id(session: Session, claimed: object) -> str:
    """The clip id the credentials name, unless it is malformed or already taken."""
    if (
        isinstance(claimed, str)
        and _CLIP_ID.match(claimed)
        and not session.get(Generation, claimed)
    ):
        return claimed
    return new_clip_id()


def _text(value: object, limit: int = 100) -> str | None:
    return str(value)[:limit] if value else None


def _when(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else None


def _seconds(asset: Asset, parameters: Mapping[str, Any]) -> int:
    if isinstance(parameters.get("seconds"), int):
        return parameters["seconds"]
    return round(asset.duration) if asset.duration else 0


def _size(asset: Asset, parameters: Mapping[str, Any]) -> str:
    if isinstance(parameters.get("size"), str):
        return parameters["size"][:20]
    return f"{asset.width}x{asset.height}" if asset.width and asset.height else ""


def _relation(value: object) -> str:
    """A reelvault relation as claimed, else ``edit_of``: what C2PA's parentOf means."""
    return value if value in {r.value for r in Relation} else Relation.EDIT_OF.value


# -- reelvault import ------------------------------------------------------------------


@dataclass(frozen=True)
class ImportOutcome:
    path: Path
    status: str  # imported | filled | already | failed
    message: str = ""
    asset_id: str | None = None
    kind: str | None = None
    states: tuple[str, ...] = ()
    generation_id: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path),
            "status": self.status,
            "message": self.message,
            "asset_id": self.asset_id,
            "kind": self.kind,
            "verification": list(self.states),
            "generation_id": self.generation_id,
        }


@dataclass
class ImportReport:
    outcomes: list[ImportOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[ImportOutcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return counts


ImportProgress = Callable[[str, int], None]


def import_paths(
    app: Reelvault,
    paths: Sequence[Path],
    *,
    recursive: bool = False,
    on_progress: ImportProgress | None = None,
) -> ImportReport:
    """Catalog existing images and videos and rebuild their lineage from credentials.

    A file that cannot be read is reported and skipped; the others are still imported.
    Running it twice changes nothing the second time.
    """
    files = list(_expand(paths, recursive))
    report = ImportReport()
    for number, path in enumerate(files, 1):
        try:
            outcome = import_file(app, path)
        except ReelvaultError as exc:
            outcome = ImportOutcome(path, "failed", str(exc).removeprefix(f"{path}: "))
        except OSError as exc:  # no permission, a disk error: this file fails, not the run
            outcome = ImportOutcome(path, "failed", _os_error(exc, path))
        report.outcomes.append(outcome)
        if on_progress:
            on_progress(f"{number}/{len(files)}", number * 100 // max(len(files), 1))
    return report


def _expand(paths: Sequence[Path], recursive: bool) -> Iterator[Path]:
    """Every file named, checking all arguments before anything is imported."""
    for path in paths:
        if not path.exists():
            raise RequestError(f"{path}: no such file or folder")
        if path.is_dir() and not recursive:
            raise RequestError(f"{path} is a folder: add --recursive to import what is in it")
    seen: set[Path] = set()
    for path in paths:
        # A file named on its own is imported even if hidden: only what a folder holds
        # is filtered, the way the user would not have picked it.
        found: Iterable[Path] = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in found:
            if file.is_file() and not _hidden(file, path) and file.resolve() not in seen:
                seen.add(file.resolve())
                yield file


def _hidden(file: Path, root: Path) -> bool:
    """Whether ``file`` is hidden below the folder ``root`` (a dotfile or in a dot-folder)."""
    return file != root and any(part.startswith(".") for part in file.relative_to(root).parts)


def _os_error(exc: OSError, path: Path) -> str:
    """An OS error as one line: what went wrong, and where when not the file itself."""
    where = f" ({exc.filename})" if exc.filename and str(exc.filename) != str(path) else ""
    return f"{exc.strerror or exc}{where}"


def import_file(app: Reelvault, path: Path) -> ImportOutcome:
    kind, info = _probe(path)
    stored = app.store.put_file(path)
    cataloged = catalog_file(app, kind, stored, info, path.name, record_unchanged=False)
    manifest = manifest_of(cataloged.results)
    generation = None
    if manifest is not None:
        with app.session() as session:
            asset = session.get(Asset, cataloged.asset.id)
            assert asset is not None, "the asset vanished right after it was cataloged"
            generation = link_lineage(session, asset, manifest)
    status = "filled" if cataloged.filled else ("already" if cataloged.existed else "imported")
    return ImportOutcome(
        path,
        status,
        asset_id=cataloged.asset.id,
        kind=kind,
        states=tuple(f"{r.verifier}: {r.state}" for r in cataloged.results),
        generation_id=generation.id if generation else None,
        message=f"{short(cataloged.asset.id)}"
        + (f" made by {generation.id}" if generation else ""),
    )


def _probe(path: Path) -> tuple[str, MediaInfo]:
    """Image or video, decided by the file's content: MP4 and QuickTime files say ``ftyp``
    in their first box (PyAV alone would also open a still, as a one-frame video)."""
    with path.open("rb") as fh:
        head = fh.read(12)
    if not head:
        raise RequestError(f"{path}: the file is empty")
    if head[4:8] == b"ftyp":
        return "video", probe_video(path)
    try:
        return "image", probe_image(path)
    except RequestError as exc:
        reason = str(exc).removeprefix(f"{path}: ")
        raise RequestError(f"{path}: not an image or video reelvault can read ({reason})") from None
