"""Lineage rebuilt from Content Credentials, and ``reelvault import``.

Every file the catalog takes in goes through :func:`core.provenance.ingest.ingest`
(stored once per content, verified, filling in a placeholder that stood for it).
``reelvault import`` adds the rest: for a clip whose manifest says how it was made, a
generation row (status ``imported``) linked to its source still and parent clip as its
ingredients say, so ``reelvault lineage`` shows imported families like generated ones.
An ingredient whose file is not on disk becomes a placeholder asset that records what
the manifest says about it, until the file turns up.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlmodel import Session

from catalog.assets import clip_id_taken, generation_of_output
from catalog.lookups import asset_by_id
from catalog.models import Asset, Generation, utcnow
from catalog.queries import asset_by_sha, get_generation
from catalog.records import save
from core.api.errors import ReelvaultError, RequestError
from core.api.ids import CLIP_PREFIX, new_clip_id, short
from core.api.types import GenerationStatus, ProgressCallback, Relation
from core.host.app import Reelvault
from core.media.probe import MediaInfo, first_frame_jpeg, probe_image, probe_video
from core.provenance.credentials import (
    INPUT_TO,
    PARENT_OF,
    claim_supported,
    claimed_sha256,
    ingredients,
    manifest_of,
    same_signer,
)
from core.provenance.ingest import ingest
from core.provenance.ingredients import ingredient_asset
from core.provenance.relations import link_relations

_CLIP_ID = re.compile(rf"^{CLIP_PREFIX}[0-9a-z]{{6,34}}$")
MAX_CHAIN = 64


def link_lineage(
    session: Session,
    asset: Asset,
    manifest: Mapping[str, Any],
    trusted: Mapping[str, Any] | None = None,
) -> Generation | None:
    """The generation that made a clip: the catalog's, or one rebuilt from its manifest.

    The manifest's ``parentOf`` ingredient becomes the parent clip (recursively, from the
    ingredient's own manifest) and its ``inputTo`` ingredient the source still; a clip
    with a parent and no still of its own inherits the parent's, as remixes do. A hash
    the generation assertion claims for either is used only when the ingredient bears it
    out (:func:`~core.provenance.credentials.claim_supported`); otherwise it is kept as
    "claimed, not supported by ingredients". ``trusted`` is the file's manifest when it
    verified as trusted: only such a signer's clip ids are adopted.
    """
    return _link(session, asset, manifest, depth=0, trusted=trusted)


def _supported_sha(
    session: Session,
    ingredient: Mapping[str, Any],
    manifest: Mapping[str, Any],
    role: str,
    unsupported: dict[str, str],
) -> str | None:
    """The hash claimed for ``role``, unless it names a cataloged file the ingredient
    does not bear out (then noted in ``unsupported``)."""
    sha = claimed_sha256(manifest, role)
    found = asset_by_sha(session, sha) if sha else None
    if found is not None and not claim_supported(ingredient, found):
        assert sha is not None
        unsupported[role] = sha
        return None
    return sha


def _link(
    session: Session,
    asset: Asset,
    manifest: Mapping[str, Any],
    depth: int,
    trusted: Mapping[str, Any] | None = None,
) -> Generation | None:
    if asset.kind != "video" or depth > MAX_CHAIN:
        return None
    existing = generation_of_output(session, asset.id)
    if existing is not None:
        return existing
    claimed = manifest.get("generation")
    claimed = claimed if isinstance(claimed, Mapping) else {}
    parent: Generation | None = None
    source: Asset | None = None
    unlinked: list[str] = []
    unsupported: dict[str, str] = {}
    for ingredient in ingredients(manifest, PARENT_OF)[:1]:
        sha = _supported_sha(session, ingredient, manifest, "parent", unsupported)
        parent_asset = ingredient_asset(session, ingredient, sha)
        if parent_asset is None:
            unlinked.append(str(ingredient.get("title")))
            continue
        inner = ingredient.get("manifest") or {}
        parent = _link(session, parent_asset, inner, depth + 1, trusted)
    for ingredient in ingredients(manifest, INPUT_TO)[:1]:
        sha = _supported_sha(session, ingredient, manifest, "source", unsupported)
        source = ingredient_asset(session, ingredient, sha)
        if source is None:
            unlinked.append(str(ingredient.get("title")))
    for role, relationship in (("parent", PARENT_OF), ("source", INPUT_TO)):
        sha = claimed_sha256(manifest, role)
        if sha and not ingredients(manifest, relationship) and asset_by_sha(session, sha):
            unsupported[role] = sha  # a cataloged file claimed with no ingredient at all
    parameters = claimed.get("parameters")
    parameters = dict(parameters) if isinstance(parameters, Mapping) else {}
    made_at = _when(claimed.get("signed_at")) or _when(manifest.get("signed_at")) or utcnow()
    generation = Generation(
        id=_free_clip_id(
            session,
            claimed.get("generation_id")
            if trusted is not None and (depth == 0 or same_signer(trusted, manifest))
            else None,
        ),
        backend=_text(claimed.get("backend")) or "import",
        model=_text(claimed.get("model")) or _text(manifest.get("claim_generator")) or "unknown",
        prompt=str(claimed.get("prompt") or ""),
        seconds=_seconds(asset, parameters),
        size=_size(asset, parameters),
        parameters=parameters,
        status=GenerationStatus.IMPORTED,
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
            **({"claims_not_supported": unsupported} if unsupported else {}),
            **({"motion_plan": claimed["motion_plan"]} if claimed.get("motion_plan") else {}),
        },
        created_at=made_at,
        updated_at=utcnow(),
        completed_at=made_at,
    )
    save(session, generation)
    return generation


def _free_clip_id(session: Session, claimed: object) -> str:
    """The clip id the credentials name, unless it is malformed or already taken."""
    if isinstance(claimed, str) and _CLIP_ID.match(claimed) and not clip_id_taken(session, claimed):
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
    """A reelvault relation as claimed, else ``edit_of``: what C2PA's parentOf means (a
    parent ingredient is never a variant's: a variant names none)."""
    derived = {r.value for r in Relation if Relation.derives(r)}
    return value if value in derived else Relation.EDIT_OF.value


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

    @property
    def failed(self) -> bool:
        return self.status == "failed"


@dataclass
class ImportReport:
    outcomes: list[ImportOutcome] = field(default_factory=list)

    @property
    def failed(self) -> list[ImportOutcome]:
        return [o for o in self.outcomes if o.failed]

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for outcome in self.outcomes:
            counts[outcome.status] = counts.get(outcome.status, 0) + 1
        return counts


def import_paths(
    app: Reelvault,
    paths: Sequence[Path],
    *,
    recursive: bool = False,
    on_progress: ProgressCallback | None = None,
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
    cataloged = ingest(app, path, kind, info=info, original_name=path.name, record_unchanged=False)
    manifest = manifest_of(cataloged.results)
    generation = None
    if manifest is not None or kind == "video":
        # Every video becomes a clip (status imported) so listings show it and it can be
        # derived from; a manifest, when intact, says how it was made.
        with app.session() as session:
            asset = asset_by_id(session, cataloged.asset.id)
            assert asset is not None, "the asset vanished right after it was cataloged"
            trusted = manifest_of(cataloged.results, trusted=True)
            generation = link_lineage(session, asset, manifest or {}, trusted)
            if manifest is not None:
                link_relations(session, asset, manifest)
    if generation is not None and generation.thumbnail_asset_id is None:
        generation = _add_first_frame(app, generation.id, path, info)
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


def _add_first_frame(app: Reelvault, generation_id: str, path: Path, info: MediaInfo) -> Generation:
    """Give an imported clip its first frame as thumbnail: what listings and the web grid
    show, and what a backend that animates a still starts from when it is remixed. A
    video whose frames cannot be decoded keeps no thumbnail; it is still cataloged."""
    try:
        frame = first_frame_jpeg(path)
    except RequestError:
        frame = None
    thumbnail = None
    if frame is not None:
        frame_info = MediaInfo(mime="image/jpeg", width=info.width, height=info.height)
        thumbnail = ingest(app, frame, "thumbnail", info=frame_info, record_unchanged=False)
    with app.session() as session:
        generation = get_generation(session, generation_id)
        if thumbnail is not None:
            generation.thumbnail_asset_id = thumbnail.asset.id
            save(session, generation)
        return generation


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
