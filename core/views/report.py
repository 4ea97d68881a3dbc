"""Turning catalog rows into the dictionaries that ``--json`` prints and text views use.

One function per kind of record, so the JSON a script reads and the text a person
reads can never disagree about what a clip is, and so the records that leave this
machine (web pages, exports) are built by the same functions as the ones the CLI shows.
Those get no ``store``: where this machine keeps a file (a path under the user's home)
says nothing about the file and is nobody else's business.
"""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from datetime import datetime
from typing import Any

from sqlmodel import Session

from catalog.lineage import LineageRow, lineage_rows, source_lineage_rows
from catalog.lookups import asset_by_id
from catalog.models import Asset, Generation, PolicyDecisionRecord
from catalog.queries import assets_by_id, decisions_for, verifications_for
from catalog.relations import walk_relations
from catalog.shots import shot_variants
from core.media.store import ContentStore


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


ROLES = (  # a generation's files: (record key, Generation column)
    ("source", "source_asset_id"),
    ("input", "input_asset_id"),  # the fitted still, if one was sent
    ("video", "output_asset_id"),
    ("thumbnail", "thumbnail_asset_id"),
    ("spritesheet", "spritesheet_asset_id"),
)


def asset_dict(asset: Asset, store: ContentStore | None = None) -> dict[str, Any]:
    """An asset's facts; with a ``store``, also ``path``, where the library keeps the file.

    The path is the store's location of the row's SHA-256: a path in the local store, or
    an ``s3://`` URL in a bucket.
    The web app serves files another way on purpose: by the row's SHA-256 through
    :meth:`~core.media.store.MediaStore.path_for`, so no column's text ever becomes a path it
    opens.
    """
    data = {
        "id": asset.id,
        "kind": asset.kind,
        "sha256": asset.sha256,
        "mime": asset.mime,
        "bytes": asset.bytes,
        "width": asset.width,
        "height": asset.height,
        "duration": asset.duration,
        "fps": asset.fps,
        "frame_count": asset.frame_count,
        "original_name": asset.original_name,
        "created_at": _time(asset.created_at),
        "manifest_label": asset.manifest_label,
        # known only from another file's credentials, until the file itself is imported
        "placeholder": asset.placeholder_info if asset.is_placeholder else None,
    }
    if store is not None:
        data["path"] = store.location(asset.sha256) if asset.sha256 and asset.stored_path else None
    return data


def files_dict(
    generation: Generation,
    assets: Mapping[str, Asset],
    store: ContentStore | None,
    more: Callable[[Asset], Mapping[str, Any]],
) -> dict[str, dict[str, Any] | None]:
    """A generation's files by role (:data:`ROLES`), each with what ``more`` adds about it
    (its verifications, its latest state); ``None`` where it has none."""

    def file(asset_id: str | None) -> dict[str, Any] | None:
        asset = assets.get(asset_id or "")
        return None if asset is None else {**asset_dict(asset, store), **more(asset)}

    return {role: file(getattr(generation, column)) for role, column in ROLES}


def error_dict(generation: Generation) -> dict[str, Any] | None:
    if not (generation.error_code or generation.error_message):
        return None
    return {"code": generation.error_code, "message": generation.error_message}


def decision_dict(decision: PolicyDecisionRecord) -> dict[str, Any]:
    return {
        "plugin": decision.plugin,
        "rule_id": decision.rule_id,
        "outcome": decision.outcome,
        "reason": decision.reason,
    }


def generation_summary(generation: Generation) -> dict[str, Any]:
    """The fields a listing shows; cheap, no joins (a lineage reads only these columns,
    :data:`~catalog.lineage.LINEAGE_FIELDS`)."""
    return {
        "id": generation.id,
        "status": generation.status,
        "backend": generation.backend,
        "model": generation.model,
        "prompt": generation.prompt,
        "seconds": generation.seconds,
        "size": generation.size,
        "source_asset_id": generation.source_asset_id,
        "input_asset_id": generation.input_asset_id,
        "output_asset_id": generation.output_asset_id,
        "thumbnail_asset_id": generation.thumbnail_asset_id,
        "parent_id": generation.parent_id,
        "relation": generation.relation,
        "created_at": _time(generation.created_at),
    }


def generation_dict(
    session: Session, generation: Generation, store: ContentStore | None = None
) -> dict[str, Any]:
    """Everything known about one clip: request, result, assets, decisions, checks."""
    assets = assets_by_id(session, [getattr(generation, column) for _, column in ROLES])

    def verifications(asset: Asset) -> dict[str, Any]:
        return {"verifications": verification_dicts(session, asset.id)}

    return {
        **generation_summary(generation),
        "parameters": generation.parameters,
        "progress": generation.progress,
        "remote_job_id": generation.remote_job_id,
        "details": generation.details,
        "error": error_dict(generation),
        "updated_at": _time(generation.updated_at),
        "completed_at": _time(generation.completed_at),
        **files_dict(generation, assets, store, verifications),
        "policy_decisions": [decision_dict(d) for d in decisions_for(session, generation.id)],
    }


def variant_dicts(session: Session, generation: Generation) -> list[dict[str, Any]]:
    """Every clip of ``generation``'s shot (its original and the variants ``regenerate``
    made of it, see :mod:`catalog.shots`), oldest first, with what a comparison needs:
    who made it (backend, model, provider: ``None`` for the backend's default), its
    length, size and status, and which of its files can be shown. Empty for a clip
    that has no variants, so a page shows the section only where there is a choice."""
    clips = shot_variants(session, generation.id)
    if len(clips) < 2:
        return []
    assets = assets_by_id(
        session, [a for c in clips for a in (c.output_asset_id, c.thumbnail_asset_id)]
    )

    def stored(asset_id: str | None) -> str | None:
        asset = assets.get(asset_id or "")
        return asset.id if asset and asset.sha256 and not asset.is_placeholder else None

    return [
        {
            **generation_summary(clip),
            "provider": (clip.parameters or {}).get("provider"),
            "error": error_dict(clip),
            "this_clip": clip.id == generation.id,
            "stored_video": stored(clip.output_asset_id),
            "stored_thumbnail": stored(clip.thumbnail_asset_id),
        }
        for clip in clips
    ]


def ingredient_failure_lines(details: dict[str, Any]) -> list[str]:
    """``ingredient 'E-sig-CA.jpg' failed: claimSignature.mismatch``, one per ingredient
    whose own credentials failed, so an intact parent never hides it."""
    failed: dict[str, list[str]] = {}
    for failure in details.get("failures") or []:
        if isinstance(failure, dict) and failure.get("ingredient_title") is not None:
            failed.setdefault(str(failure["ingredient_title"]), []).append(str(failure["code"]))
    return [f"ingredient {title!r} failed: {', '.join(codes)}" for title, codes in failed.items()]


def verification_dicts(session: Session, asset_id: str) -> list[dict[str, Any]]:
    """An asset's verification history, oldest first, as ``show`` and the web pages give it."""
    return [
        {
            "verifier": v.verifier,
            "state": v.state,
            "codes": v.codes,
            "details": v.details,
            "checked_at": _time(v.checked_at),
        }
        for v in verifications_for(session, asset_id)
    ]


def lineage_dict(
    session: Session, target: Generation | Asset, store: ContentStore | None = None
) -> dict[str, Any]:
    """A clip's (or a still's) family as nested JSON: source image, then clips, then remixes.

    For a clip: its chain of ancestors down to it, and everything derived from it.
    For a still: every clip made from it and everything derived from those.
    ``ingredients`` and ``derived`` are the asset relations of the still (or the clip's
    video) that its and other files' Content Credentials name, nested at any depth: what
    it was made from, and what names it as an ingredient.
    """
    with _collector_paused():
        rows = (source_lineage_rows if isinstance(target, Asset) else lineage_rows)(
            session, target.id
        )
        clips = _nest(rows)
        del rows
    if isinstance(target, Asset):
        source: Asset | None = target
        related_id: str | None = target.id
    else:
        source_id = clips[0]["source_asset_id"]  # the first ancestor's, the chain's still
        source = asset_by_id(session, source_id) if source_id else None
        related_id = target.output_asset_id
    return {
        "target": target.id,
        "source": asset_dict(source, store) if source else None,
        "clips": clips,
        "ingredients": _relations(session, related_id, store, upward=True),
        "derived": _relations(session, related_id, store, upward=False),
    }


def _relations(
    session: Session, asset_id: str | None, store: ContentStore | None, *, upward: bool
) -> list[dict[str, Any]]:
    """An asset's relations as a nested list, each asset expanded once, at its nearest
    place; elsewhere it is listed with ``repeated`` and no entries of its own."""
    if asset_id is None:
        return []
    edges = walk_relations(session, asset_id, upward=upward)
    key = "ingredients" if upward else "derived"
    assets = assets_by_id(session, [e.parent_id if upward else e.child_id for e in edges])
    top: list[dict[str, Any]] = []
    holders = {asset_id: top}
    for edge in edges:  # nearest first, so the near end is always placed already
        near, far = (edge.child_id, edge.parent_id) if upward else (edge.parent_id, edge.child_id)
        holder, asset = holders.get(near), assets.get(far)
        if holder is None or asset is None:
            continue
        entry = {
            **asset_dict(asset, store),
            "relationship": edge.relationship,
            "repeated": far in holders,
            key: [],
        }
        holder.append(entry)
        holders.setdefault(far, entry[key])
    return top


@contextmanager
def _collector_paused() -> Iterator[None]:
    """Python's cyclic garbage collector held off while a lineage is read and nested.

    Ten thousand clips make 30,000 containers (the driver's tuples, then each entry and its
    list of children), all alive at once. The collector, woken by every 700 new ones,
    walked them over and over, and now and then everything else the process holds as
    well, to free nothing: the lineage is a tree, without a cycle. That cost 3.5-8 ms of
    a 10,000-deep chain's 50; the one collection left, when it resumes, about 2.5 ms (see
    bench/README.md). Left off if it was off already: that was someone else's decision.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _nest(rows: list[LineageRow]) -> list[dict[str, Any]]:
    """Rows nested under their parents in one pass, without recursion (chains run deep).

    A lineage row holds a summary's values in its order (:func:`generation_summary`), its
    time already as text, then the depth: each becomes its entry as it is, one dict (and
    its list of children) per clip and nothing else, since at 10,000 clips each step per
    clip counts. The entry is written out key by key (Python builds such a dict in one
    step, about twice as fast as ``dict(zip(LINEAGE_FIELDS, row))``); its keys are
    :data:`~catalog.lineage.LINEAGE_FIELDS` in order, then ``children``.
    """
    children_of: dict[str, list[dict[str, Any]]] = {}
    roots: list[dict[str, Any]] = []
    siblings_of = children_of.get  # looked up once: this loop runs once per clip
    for (
        id_, status, backend, model, prompt, seconds, size, source_asset_id, input_asset_id,
        output_asset_id, thumbnail_asset_id, parent_id, relation, created_at, depth,
    ) in rows:  # ordered by depth, so a parent always comes before its children  # fmt: skip
        children: list[dict[str, Any]] = []
        children_of[id_] = children
        siblings_of(parent_id, roots).append(  # no parent here: a root
            {
                "id": id_,
                "status": status,
                "backend": backend,
                "model": model,
                "prompt": prompt,
                "seconds": seconds,
                "size": size,
                "source_asset_id": source_asset_id,
                "input_asset_id": input_asset_id,
                "output_asset_id": output_asset_id,
                "thumbnail_asset_id": thumbnail_asset_id,
                "parent_id": parent_id,
                "relation": relation,
                "created_at": created_at,
                "depth": depth,
                "children": children,
            }
        )
    return roots
