"""Finishing a job: download every variant, sign the video, catalog the outputs.

The work happens under a finishing claim (:mod:`core.generation.claim`), so a job is
downloaded, signed and cataloged once, however many processes notice it has ended.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from sqlmodel import Session

from catalog.health import running_job_ids
from catalog.lookups import asset_by_id, generation_by_id
from catalog.models import Asset, Generation, utcnow
from catalog.records import (
    lock_generation,
    record_downloaded,
    record_storing,
    storing_intents,
    touch,
)
from core.api.errors import BackendError, RequestError
from core.api.files import disk_error
from core.api.types import (
    Backend,
    ClipView,
    GenerationStatus,
    JobStatus,
    ModelInfo,
    Relation,
    Variant,
)
from core.generation.claim import (
    Claim,
    ClaimLost,
    FinisherClaim,
    give_back,
    keep_claim,
    let_go,
    take_finish_claim,
)
from core.generation.rows import GenerationResult, current, merged, record_failure
from core.host.app import Reelvault
from core.host.plugins import call_each
from core.media.probe import probe_image, probe_video, video_thumbnail
from core.media.store import hash_file
from core.provenance.credentials import sign
from core.provenance.ingest import ingest

DOWNLOAD_ATTEMPTS = 4
DOWNLOAD_BACKOFF = 0.5
RETRY_CEILING = 10.0
"""The longest wait between two download attempts."""
VARIANT_KINDS = {
    Variant.VIDEO: "video",
    Variant.THUMBNAIL: "thumbnail",
    Variant.SPRITESHEET: "spritesheet",
}


def finish(
    app: Reelvault,
    generation: Generation,
    backend: Backend,
    info: ModelInfo,
    status: JobStatus,
    claim: Claim | None = None,
    stop: threading.Event | None = None,
) -> GenerationResult:
    """Download, sign and catalog every variant, once, whoever else is finishing the job.

    The work happens under a finishing claim taken before the first byte is fetched, so
    a second finisher (a webhook next to a poll, a worker whose lease lapsed next to its
    successor, ``resume`` next to a live ``generate``) waits for the first, or leaves
    the job to the worker that holds it, instead of storing and signing a second copy.
    """
    claim = claim or FinisherClaim()
    claimed = take_finish_claim(app, generation.id, claim, stop)
    if isinstance(claimed, Generation):
        return GenerationResult(claimed)
    assets = _already_stored(app, generation.id)
    warnings: list[str] = []
    try:
        for variant in sorted(info.variants, key=lambda v: v != Variant.VIDEO):  # video first
            if variant in assets:
                continue  # stored by an earlier, interrupted finish: never fetched twice
            keep_claim(app, generation.id, claim)
            asset: Asset | None
            if variant == Variant.VIDEO:
                asset = _download_variant(app, generation, backend, variant, status, claim)
            else:
                asset, warning = _download_extra(
                    app, generation, backend, variant, status, claim, assets
                )
                warnings += [warning] if warning else []
            if asset is not None:
                assets[variant] = asset
                with app.session() as session:
                    record_downloaded(session, generation.id, variant.value, asset.id)
    except ClaimLost:
        return GenerationResult(current(app, generation.id))
    except BackendError as exc:
        if exc.code != "expired":
            give_back(app, generation.id, claim, claimed)
            raise  # the job stays in flight: a worker or `reelvault resume` tries again
        failed = record_failure(app, generation.id, "expired", str(exc), details=status.details)
        let_go(app, generation.id, claim)
        return GenerationResult(failed)
    except BaseException:
        give_back(app, generation.id, claim, claimed)
        raise
    with app.session() as session:
        row = lock_generation(session, generation.id)
        if not claim.finishes(row):  # our claim lapsed and someone else took the job
            return GenerationResult(row or generation)
        claim.let_go(row)  # a worker's lease: given back by the worker itself
        details = merged(row.details, status.details)
        details.pop("downloaded", None)  # the outputs' columns say it from now on
        details.pop("storing", None)
        if warnings:
            details["warnings"] = [*details.get("warnings", []), *warnings]
        touch(
            row,
            status=GenerationStatus.COMPLETED,
            progress=100,
            details=details,
            output_asset_id=assets[Variant.VIDEO].id if Variant.VIDEO in assets else None,
            thumbnail_asset_id=assets[Variant.THUMBNAIL].id
            if Variant.THUMBNAIL in assets
            else None,
            spritesheet_asset_id=assets[Variant.SPRITESHEET].id
            if Variant.SPRITESHEET in assets
            else None,
            completed_at=utcnow(),
        )
        finished = row
    _release(app, backend, finished)
    return GenerationResult(finished, (*warnings, *_announce(app, finished)))


def _release(app: Reelvault, backend: Backend, finished: Generation) -> None:
    """Let the backend drop the job's working files, now that its outputs are cataloged,
    unless another unfinished row shares the job (identical local requests share one)."""
    release = getattr(backend, "release", None)
    job_id = finished.remote_job_id
    if not callable(release) or not job_id:
        return
    with app.session() as session:
        if job_id in running_job_ids(session):
            return
    try:
        release(job_id)
    except Exception as exc:  # a plugin's bug: the clip is done; doctor finds the files
        app.host.hook_failed(backend.name, "release", f"{type(exc).__name__}: {exc}")


def _already_stored(app: Reelvault, generation_id: str) -> dict[Variant, Asset]:
    """The outputs an interrupted finish of this job stored already and the store holds."""
    with app.session() as session:
        row = lock_generation(session, generation_id)
        noted = dict((row.details or {}).get("downloaded", {})) if row else {}
        found = {Variant(v): asset_by_id(session, asset_id) for v, asset_id in noted.items()}
    return {
        variant: asset
        for variant, asset in found.items()
        if asset is not None and asset.sha256 and app.store.has(asset.sha256)
    }


def _download_extra(
    app: Reelvault,
    generation: Generation,
    backend: Backend,
    variant: Variant,
    status: JobStatus,
    claim: Claim,
    assets: dict[Variant, Asset],
) -> tuple[Asset | None, str | None]:
    """A thumbnail or spritesheet, and a warning when the provider's could not be used.

    The video decides the clip: an optional extra that fails to download or decode
    becomes a warning on the clip, never a failed or stuck job, and a thumbnail is then
    made here from the video. A full disk or an unreachable store is not the provider's
    fault and still stops the finish (the job stays resumable).
    """
    kind = VARIANT_KINDS[variant]
    try:
        return _download_variant(app, generation, backend, variant, status, claim), None
    except (BackendError, RequestError) as exc:
        problem = f"the provider's {kind} could not be used ({exc})"
    video = assets.get(Variant.VIDEO)
    if variant != Variant.THUMBNAIL or video is None or not video.sha256:
        return None, f"{problem}; the clip has no {kind}"
    try:
        with _scratch_file(app, f"{generation.id}-thumbnail-made") as tmp:
            video_thumbnail(app.store.local_path(video.sha256), tmp)
            made = ingest(app, tmp, kind, info=probe_image(tmp)).asset
    except RequestError as exc:
        return None, f"{problem}, and none could be made from the video ({exc})"
    return made, f"{problem}; a thumbnail was made from the video"


def _download_variant(
    app: Reelvault,
    generation: Generation,
    backend: Backend,
    variant: Variant,
    status: JobStatus,
    claim: Claim,
) -> Asset:
    """Fetch one variant, sign it if it is the video, store and catalog it.

    The hash about to be stored is written on the row first (a write-ahead), so a finish
    killed after the store has the file but before the catalog does picks that very file
    up when resumed (:func:`_adopt_stored`) instead of signing again (which gives other
    bytes) and leaving the first file orphaned.
    """
    kind = VARIANT_KINDS[variant]
    adopted = _adopt_stored(app, generation.id, variant)
    if adopted is not None:
        return adopted
    with _scratch_file(app, f"{generation.id}-{variant}") as tmp:
        _fetch(backend, status.job_id, variant, tmp)
        info = probe_video(tmp) if kind == "video" else probe_image(tmp)
        to_store = tmp
        if kind == "video":
            keep_claim(app, generation.id, claim)  # never sign twice
            claims = _claims(app, generation, status)
            signed = sign(app.host, tmp, info.mime, claims, app.settings)
            to_store = signed or tmp
        try:
            sha256, _size = hash_file(to_store)
            with app.session() as session:
                record_storing(session, generation.id, variant.value, sha256)
            return ingest(app, to_store, kind, info=info).asset
        finally:
            if to_store != tmp:
                to_store.unlink(missing_ok=True)


def _adopt_stored(app: Reelvault, generation_id: str, variant: Variant) -> Asset | None:
    """The output an interrupted finish set out to store and the store holds, cataloged
    now from the store itself: no second download, no second signature; ``None`` when
    there is no such file (it was never stored, or gc removed it) and the variant is
    fetched as usual."""
    with app.session() as session:
        sha256 = storing_intents(session, generation_id).get(variant.value)
    if not sha256 or not app.store.has(sha256):
        return None
    kind = VARIANT_KINDS[variant]
    path = app.store.local_path(sha256)
    info = probe_video(path) if kind == "video" else probe_image(path)
    return ingest(app, path, kind, info=info).asset


def _fetch(backend: Backend, job_id: str, variant: Variant, path: Path) -> None:
    """Download one variant into ``path``, starting over after a transient failure.

    A download that broke off part-way cannot be continued in the same file (a backend
    writes forward only), so each attempt truncates it and starts from the first byte.
    """
    for attempt in range(DOWNLOAD_ATTEMPTS):
        try:
            with path.open("wb") as fh:
                backend.download(job_id, variant, fh)
            return
        except OSError as exc:  # the work folder's disk, not the backend
            raise disk_error(exc, path.parent) from None
        except BackendError as exc:
            if not exc.transient or attempt == DOWNLOAD_ATTEMPTS - 1:
                raise
            time.sleep(min(DOWNLOAD_BACKOFF * 2**attempt, RETRY_CEILING))


@contextlib.contextmanager
def _scratch_file(app: Reelvault, stem: str) -> Iterator[Path]:
    folder = app.settings.work_dir / "incoming"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        fd, name = tempfile.mkstemp(dir=folder, prefix=f"{stem}-")
    except OSError as exc:
        raise disk_error(exc, folder) from None
    path = Path(name)
    os.close(fd)
    try:
        yield path
    finally:
        path.unlink(missing_ok=True)


def _claims(app: Reelvault, generation: Generation, status: JobStatus) -> dict[str, Any]:
    """What a signer binds into the output's credentials.

    ``details`` is what the backend reported for the finished job (the local backend's
    motion plan); ``parent`` names the parent clip's generation as well as its video. A
    variant's parent is not an ingredient: nothing of its video went into this one.
    """
    derived = Relation.derives(generation.relation)
    with app.session() as session:
        source = asset_by_id(session, generation.source_asset_id)
        parent = generation_by_id(session, generation.parent_id) if derived else None
        parent_video = asset_by_id(session, parent.output_asset_id) if parent else None
    return {
        "generation_id": generation.id,
        "backend": generation.backend,
        "model": generation.model,
        "prompt": generation.prompt,
        "parameters": dict(generation.parameters),
        "relation": generation.relation if derived else None,
        "details": dict(status.details),
        "source": _asset_claim(app, source),
        "parent": _asset_claim(app, parent_video, generation_id=parent.id if parent else None),
    }


def _asset_claim(
    app: Reelvault, asset: Asset | None, generation_id: str | None = None
) -> dict[str, Any] | None:
    if asset is None:
        return None
    claim = {
        "id": asset.id,
        "sha256": asset.sha256,
        "mime": asset.mime,
        "path": str(app.store.local_path(asset.file_sha256)) if asset.stored_path else None,
    }
    return {**claim, "generation_id": generation_id} if generation_id else claim


def clip_view(app: Reelvault, session: Session, generation: Generation) -> ClipView:
    def path_of(asset_id_: str | None) -> Path | None:
        asset = asset_by_id(session, asset_id_)
        return app.store.path_for(asset.sha256) if asset and asset.sha256 else None

    return ClipView(
        id=generation.id,
        backend=generation.backend,
        model=generation.model,
        prompt=generation.prompt,
        status=generation.status,
        parameters=dict(generation.parameters),
        source_asset_id=generation.source_asset_id,
        parent_id=generation.parent_id,
        relation=generation.relation,
        video_path=path_of(generation.output_asset_id),
        thumbnail_path=path_of(generation.thumbnail_asset_id),
    )


def _announce(app: Reelvault, generation: Generation) -> tuple[str, ...]:
    """Tell every ``clip_cataloged`` plugin; returns a warning for each one that failed."""
    with app.session() as session:
        view = clip_view(app, session, generation)
    warnings: list[str] = []
    for plugin, _result, error in call_each(
        app.host, "clip_cataloged", clip=view, settings=app.settings
    ):
        if error:
            warnings.append(f"plugin {plugin} failed in clip_cataloged: {error}")
    return tuple(warnings)
