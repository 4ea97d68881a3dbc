"""Turning catalog rows into the dictionaries that ``--json`` prints and text views use.

One function per kind of record, so the JSON a script reads and the text a person
reads can never disagree about what a clip is.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Session

from catalog.models import Asset, Generation
from catalog.queries import (
    LineageNode,
    assets_by_id,
    clips_from_source,
    decisions_for,
    lineage,
    verifications_for,
)
from core.store import MediaStore


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def asset_dict(asset: Asset, store: MediaStore) -> dict[str, Any]:
    return {
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
        "path": str(store.root / asset.stored_path) if asset.stored_path else None,
        "original_name": asset.original_name,
        "created_at": _time(asset.created_at),
        "manifest_label": asset.manifest_label,
        # known only from another file's credentials, until the file itself is imported
        "placeholder": asset.placeholder_info if asset.is_placeholder else None,
    }


def generation_summary(generation: Generation) -> dict[str, Any]:
    """The fields a listing shows; cheap, no joins."""
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


def generation_dict(session: Session, generation: Generation, store: MediaStore) -> dict[str, Any]:
    """Everything known about one clip: request, result, assets, decisions, checks."""
    assets = assets_by_id(
        session,
        [
            generation.source_asset_id,
            generation.input_asset_id,
            generation.output_asset_id,
            generation.thumbnail_asset_id,
            generation.spritesheet_asset_id,
        ],
    )

    def asset_of(asset_id: str | None) -> dict[str, Any] | None:
        if not asset_id or asset_id not in assets:
            return None
        data = asset_dict(assets[asset_id], store)
        data["verifications"] = [
            {
                "verifier": v.verifier,
                "state": v.state,
                "codes": v.codes,
                "details": v.details,
                "checked_at": _time(v.checked_at),
            }
            for v in verifications_for(session, asset_id)
        ]
        return data

    return {
        **generation_summary(generation),
        "parameters": generation.parameters,
        "progress": generation.progress,
        "remote_job_id": generation.remote_job_id,
        "details": generation.details,
        "error": (
            {"code": generation.error_code, "message": generation.error_message}
            if generation.error_code or generation.error_message
            else None
        ),
        "updated_at": _time(generation.updated_at),
        "completed_at": _time(generation.completed_at),
        "source": asset_of(generation.source_asset_id),
        "input": asset_of(generation.input_asset_id),  # the fitted still, if one was sent
        "video": asset_of(generation.output_asset_id),
        "thumbnail": asset_of(generation.thumbnail_asset_id),
        "spritesheet": asset_of(generation.spritesheet_asset_id),
        "policy_decisions": [
            {"plugin": d.plugin, "rule_id": d.rule_id, "outcome": d.outcome, "reason": d.reason}
            for d in decisions_for(session, generation.id)
        ],
    }


def lineage_dict(session: Session, target: Generation | Asset, store: MediaStore) -> dict[str, Any]:
    """A clip's (or a still's) family as nested JSON: source image, then clips, then remixes.

    For a clip: its chain of ancestors down to it, and everything derived from it.
    For a still: every clip made from it and everything derived from those.
    """
    if isinstance(target, Asset):
        nodes = clips_from_source(session, target.id)
        source: Asset | None = target
    else:
        nodes = lineage(session, target.id)
        root = nodes[0].generation
        source = session.get(Asset, root.source_asset_id) if root.source_asset_id else None
    return {
        "target": target.id,
        "source": asset_dict(source, store) if source else None,
        "clips": _nest(nodes),
    }


def _nest(nodes: list[LineageNode]) -> list[dict[str, Any]]:
    by_id: dict[str, dict[str, Any]] = {}
    roots: list[dict[str, Any]] = []
    for node in nodes:  # ordered by depth, so a parent always comes before its children
        entry = {**generation_summary(node.generation), "depth": node.depth, "children": []}
        by_id[node.generation.id] = entry
        parent = by_id.get(node.generation.parent_id or "")
        (parent["children"] if parent else roots).append(entry)
    return roots
