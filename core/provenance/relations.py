"""Asset-to-asset lineage from C2PA ingredients, at any depth.

A clip's source still and parent clip are recorded on its generation
(:func:`core.provenance.importer.link_lineage`). Everything else a file's credentials
say about where it came from is kept as relations between assets: an image edited from
another (``parentOf``), an image placed into it (``componentOf``), a file it was made
from (``inputTo``), and the same for each ingredient's own ingredients, as deep as the
verifier's tree goes. Each ingredient is matched to a cataloged file, or becomes a
placeholder, by :func:`core.provenance.ingredients.ingredient_asset`.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from typing import Any

from sqlmodel import Session

from catalog.models import Asset
from catalog.relations import MAX_LEVELS, add_relation
from core.provenance.credentials import INPUT_TO, PARENT_OF, claimed_sha256
from core.provenance.ingredients import ingredient_asset

COMPONENT_OF = "componentOf"
RELATIONSHIPS = (PARENT_OF, COMPONENT_OF, INPUT_TO)
ON_THE_GENERATION = {PARENT_OF: "parent", INPUT_TO: "source"}
"""A video's first ingredient of these is its generation's parent clip or source still."""


def link_relations(session: Session, asset: Asset, manifest: Mapping[str, Any]) -> int:
    """Record every ingredient relation ``manifest`` (``asset``'s intact credentials) holds,
    and those of its ingredients' own manifests; returns how many were new.

    A video's parent clip and source still are left to its generation row, so a family
    is never drawn twice. Each manifest is walked once (the verifier's tree expands a
    manifest at one place only), to :data:`catalog.relations.MAX_LEVELS` levels.
    """
    added = 0
    pending: deque[tuple[Asset, Mapping[str, Any], int]] = deque([(asset, manifest, 1)])
    while pending:
        child, node, depth = pending.popleft()
        seen_roles: set[str] = set()
        for ingredient in node.get("ingredients") or []:
            relationship = (
                ingredient.get("relationship") if isinstance(ingredient, Mapping) else None
            )
            if relationship not in RELATIONSHIPS:
                continue
            role = ON_THE_GENERATION.get(relationship) if relationship not in seen_roles else None
            seen_roles.add(relationship)
            claimed = claimed_sha256(node, role) if role else None
            parent = ingredient_asset(session, ingredient, claimed)
            if parent is None:
                continue
            if not (child.kind == "video" and role):
                added += add_relation(session, child.id, parent.id, relationship)
            inner = ingredient.get("manifest")
            if isinstance(inner, Mapping) and inner.get("ingredients") and depth < MAX_LEVELS:
                pending.append((parent, inner, depth + 1))
    return added
