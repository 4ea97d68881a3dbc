"""Which catalog asset a C2PA ingredient is, made a placeholder when the catalog has none.

Used by import for a clip's source still and parent clip, and for every other ingredient
relation (:mod:`core.provenance.relations`). What identifies a file, strongest first:

- the SHA-256 reelvault's generation assertion claimed for it: about the bytes, decisive;
- its manifest label, on a file whose own credentials carry that label from the same
  signer and issuer and verified as ``trusted``;
- its instance id: for an ingredient with credentials, the instance id *and* label of its
  manifest, on a file whose own intact (valid or trusted) credentials name both and the
  same signer and issuer; for an ingredient without credentials, the ingredient's
  instance id, on a file without credentials whose XMP ``xmpMM:InstanceID`` is that id.

An instance id is chosen by whoever made the file, like a label, so a match by instance
id says "the file its credentials name", not "proven the same bytes"; it is what C2PA
itself names ingredients by when no hash is claimed.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from catalog.assets import assets_by_label, verifications_newest_first
from catalog.lookups import asset_by_id
from catalog.models import Asset
from catalog.queries import asset_by_sha
from catalog.records import save
from catalog.relations import assets_by_instance_id
from core.api.ids import ASSET_PREFIXES, asset_id
from core.api.types import VerificationState
from core.provenance.credentials import (
    GOOD_STATES,
    ingredient_kind,
    ingredient_label,
    same_signer,
)

PLACEHOLDER_MARK = "ph_"


def ingredient_instance_id(ingredient: Mapping[str, Any]) -> str | None:
    """The instance id a file standing for this ingredient would carry: its manifest's
    when it has credentials (the file's own manifest says the same), else the
    ingredient's, which names the file's XMP instance id."""
    manifest = ingredient.get("manifest")
    value = (
        manifest.get("instance_id")
        if isinstance(manifest, Mapping) and manifest.get("label")
        else ingredient.get("instance_id")
    )
    return value[:200] if isinstance(value, str) and value else None


def ingredient_asset(
    session: Session, ingredient: Mapping[str, Any], claimed_sha: str | None
) -> Asset | None:
    """The catalog asset an ingredient stands for, made a placeholder if not yet known.

    The claimed SHA-256 decides; else a file of the ingredient's kind that the label or
    the instance id names, on the evidence the module's docstring lists; else the
    placeholder made from the same claim. With no hash, label or instance id, nothing can
    be linked.
    """
    if claimed_sha and (found := asset_by_sha(session, claimed_sha)) is not None:
        return found
    label = ingredient_label(ingredient)
    instance = ingredient_instance_id(ingredient)
    if not label and not claimed_sha and not instance:
        return None
    manifest = ingredient.get("manifest")
    manifest = manifest if isinstance(manifest, Mapping) else {}
    kind = ingredient_kind(ingredient)
    candidates = assets_by_label(session, label, kind) if label else []
    candidates += assets_by_instance_id(session, [instance], kind) if instance else []
    for candidate in candidates:
        if _stands_for(session, candidate, manifest, claimed_sha, instance):
            return candidate
    if claimed_sha:
        placeholder_id = asset_id(kind, claimed_sha)
    else:  # one placeholder per label *and signer*: two signers' claims are two things
        identity = (
            "\n".join(str(v) for v in (label, manifest.get("signer"), manifest.get("issuer")))
            if label
            else f"instance\n{instance}"
        )
        digest = hashlib.sha256(identity.encode()).hexdigest()[:40]
        placeholder_id = f"{ASSET_PREFIXES[kind]}{PLACEHOLDER_MARK}{digest}"
    existing = asset_by_id(session, placeholder_id)
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
        instance_id=instance,
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
    save(session, placeholder)
    return placeholder


def _stands_for(
    session: Session,
    candidate: Asset,
    manifest: Mapping[str, Any],
    claimed_sha: str | None,
    instance: str | None,
) -> bool:
    """Whether an asset with the ingredient's label or instance id is the ingredient's file."""
    if claimed_sha and candidate.sha256:
        return False  # its bytes are known, and they are not the ones claimed
    label = manifest.get("label")
    if candidate.is_placeholder:
        if label:
            return candidate.manifest_label == label and same_signer(
                candidate.placeholder_info or {}, manifest
            )
        return not candidate.manifest_label and candidate.instance_id == instance
    if not label:  # an ingredient without credentials: a file without any, by instance id
        return bool(instance) and not candidate.manifest_label and candidate.instance_id == instance
    own = _latest_credentials(session, candidate.id)
    if own is None or own[1].get("label") != label or not same_signer(own[1], manifest):
        return False
    if own[0] == VerificationState.TRUSTED and candidate.manifest_label == label:
        return True
    return own[0] in GOOD_STATES and bool(instance) and candidate.instance_id == instance


def _latest_credentials(session: Session, asset_id_: str) -> tuple[str, Mapping[str, Any]] | None:
    """The state and manifest of an asset's most recent verification that read one."""
    for record in verifications_newest_first(session, asset_id_):
        manifest = (record.details or {}).get("manifest")
        if isinstance(manifest, Mapping) and manifest.get("label"):
            return record.state, manifest
    return None


def _text(value: object, limit: int = 100) -> str | None:
    return str(value)[:limit] if value else None
