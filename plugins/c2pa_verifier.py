"""Verifies C2PA Content Credentials with c2pa-python (the c2pa-rs reference library).

The result's state follows c2pa-rs: ``Trusted`` (the signer chains to a trust anchor),
``Valid`` (the signature and hashes check out, the signer is not known: "signed, signer
not trusted"), ``Invalid`` (something does not match). A file without a manifest is
``absent``; any error from the library (a file it cannot parse, a truncated box, a
manifest it cannot decode) is ``unreadable``, never an exception for the caller.

``codes`` are the failure codes of the active manifest, of every ingredient's
validation delta, and of the validation status each ingredient recorded when it was
added (an ingredient whose own credentials failed then, such as a claim signature that
did not validate, stays a failure inside a parent that is itself intact: the parent's
state does not hide it). Each ingredient node of the tree carries its own failures.
Note that a good file verified without trust anchors still lists
``signingCredential.untrusted``: the state, not an empty list, is the verdict.
``details["manifest"]`` is the active manifest normalised as :mod:`core.api.types` describes,
with the whole ingredient tree, so the catalog can rebuild lineage from it. A manifest
store is a graph (one manifest may be an ingredient many times over), so the tree
expands each manifest once and stops at :data:`MAX_MANIFESTS` nodes: a small file
cannot make the stored result grow exponentially.

Nothing is fetched from the network: remote manifests and OCSP are switched off.
"""

from __future__ import annotations

import json
from collections import deque
from functools import cache, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.api import (
    GENERATION_ASSERTION,
    Settings,
    VerificationResult,
    VerificationState,
    c2pa_settings,
    hookimpl,
)

if TYPE_CHECKING:
    import c2pa

STATES = {
    "Trusted": VerificationState.TRUSTED,
    "Valid": VerificationState.VALID,
    "Invalid": VerificationState.INVALID,
}
ACTIONS_LABELS = ("c2pa.actions.v2", "c2pa.actions")
MAX_MANIFESTS = 256
"""Manifest nodes in one normalised tree, at most; the rest are marked ``truncated``."""
IDENTITY = (
    "label",
    "title",
    "instance_id",
    "claim_generator",
    "signer",
    "issuer",
    "signed_at",
    "digital_source_type",
)
"""What a repeated manifest's node keeps: enough to identify it, never its contents."""


@cache
def _supported() -> frozenset[str]:
    import c2pa

    return frozenset(c2pa.Reader.get_supported_mime_types())


@lru_cache(maxsize=8)
def _context(anchors: str) -> c2pa.Context:
    """One reading context per set of anchors; contexts may be shared between readers."""
    import c2pa

    return c2pa.Context.from_dict(c2pa_settings(anchors))


@hookimpl
def verify_asset(path: Path, mime: str, settings: Settings) -> VerificationResult | None:
    if mime not in _supported():
        return None  # a type c2pa cannot carry credentials in: not ours to judge
    return read_credentials(path, mime, settings.trust_anchors_pem())


def read_credentials(path: Path, mime: str, anchors: str) -> VerificationResult:
    """Read and validate the manifest store embedded in ``path``."""
    import c2pa

    try:
        with path.open("rb") as fh:
            reader = c2pa.Reader.try_create(mime, fh, None, _context(anchors))
            if reader is None:
                return _result(VerificationState.ABSENT, ("manifest.absent",))
            with reader:
                state_text = reader.get_validation_state() or "Invalid"
                results = reader.get_validation_results() or {}
                store = json.loads(reader.json())
    except c2pa.C2paError as exc:
        kind = type(exc).__name__.removeprefix("_C2pa") or "Error"
        if kind == "ManifestNotFound":
            return _result(VerificationState.ABSENT, ("manifest.absent",))
        return _result(
            VerificationState.UNREADABLE, (f"c2pa.error.{kind.lower()}",), error=str(exc)
        )
    except OSError as exc:
        return _result(VerificationState.UNREADABLE, ("file.unreadable",), error=str(exc))
    state = STATES.get(state_text, VerificationState.INVALID)
    label = store.get("active_manifest")
    tree = manifest_tree(store, label) if label else None
    failures = _failures(results) + (_ingredient_failures(tree) if tree else [])
    return _result(
        state,
        tuple(dict.fromkeys(f["code"] for f in failures)),
        validation_state=state_text,
        trust_anchors=anchors.count("BEGIN CERTIFICATE"),
        failures=failures,
        manifest=tree,
    )


def _result(state: VerificationState, codes: tuple[str, ...], **details: Any) -> VerificationResult:
    return VerificationResult(state, codes, {"summary": state.summary, **details})


def _failures(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Failure entries of the active manifest and of every ingredient, in order."""
    failures = [_entry(f) for f in (results.get("activeManifest") or {}).get("failure", [])]
    for delta in results.get("ingredientDeltas") or []:
        ingredient = delta.get("ingredientAssertionURI")
        for f in (delta.get("validationDeltas") or {}).get("failure", []):
            failures.append({**_entry(f), "ingredient": ingredient})
    return failures


def _entry(item: dict[str, Any]) -> dict[str, Any]:
    return {k: item.get(k) for k in ("code", "explanation", "url")}


SUCCESS_SUFFIXES = (".validated", ".match", ".trusted", ".insideValidity", ".accessible")
"""How c2pa-rs names a success (or informational: ``.skipped``) status code; an
ingredient's recorded status may mix them with its failures."""


def _ingredient_status(ingredient: dict[str, Any]) -> list[dict[str, Any]]:
    """The failures among the validation status an ingredient recorded."""
    return [
        _entry(item)
        for item in ingredient.get("validation_status") or []
        if isinstance(item, dict)
        and isinstance(item.get("code"), str)
        and not item["code"].endswith((*SUCCESS_SUFFIXES, ".skipped"))
    ]


def _ingredient_failures(tree: dict[str, Any]) -> list[dict[str, Any]]:
    """Every ingredient failure in a normalised tree, each naming its ingredient's title."""
    found: list[dict[str, Any]] = []
    pending = [tree]
    while pending:
        node = pending.pop()
        for ingredient in node.get("ingredients") or []:
            found += [
                {**f, "ingredient_title": ingredient.get("title")} for f in ingredient["failures"]
            ]
            if isinstance(ingredient.get("manifest"), dict):
                pending.append(ingredient["manifest"])
    return found


def manifest_tree(store: dict[str, Any], label: str) -> dict[str, Any]:
    """The manifest ``label`` of a store (c2pa's JSON), normalised, with its ingredient tree.

    Walked breadth first with one set of expanded labels for the whole walk: a manifest is
    expanded at its shallowest place, which for lineage is the one that matters (a
    remix's own still, not the copy inside its parent), and is only identified at every
    other place. Past :data:`MAX_MANIFESTS` nodes the tree is cut off.
    """
    manifests = store.get("manifests") or {}
    expanded: set[str] = set()
    count = 0

    def node(label: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        """A manifest's node, and the manifest when its ingredients are still to be walked."""
        nonlocal count
        count += 1
        manifest = manifests.get(label)
        if not isinstance(manifest, dict):
            return {"label": label, "missing": True, "ingredients": []}, None
        if count > MAX_MANIFESTS:
            return {"label": label, "truncated": True, "ingredients": []}, None
        facts = _facts(label, manifest)
        if label in expanded:
            return {**{k: facts[k] for k in IDENTITY}, "repeated": True, "ingredients": []}, None
        expanded.add(label)
        return facts, manifest

    root, manifest = node(label)
    queue = deque([(root, manifest)] if manifest is not None else [])
    while queue:
        parent, manifest = queue.popleft()
        for ingredient in manifest.get("ingredients") or []:
            if not isinstance(ingredient, dict):
                continue
            entry = {
                "title": ingredient.get("title"),
                "format": ingredient.get("format"),
                "relationship": ingredient.get("relationship"),
                "instance_id": ingredient.get("instance_id"),
                "failures": _ingredient_status(ingredient),
                "manifest": None,
            }
            child_label = ingredient.get("active_manifest")
            if isinstance(child_label, str) and child_label:
                child_node, child = node(child_label)
                entry["manifest"] = child_node
                if child is not None:
                    queue.append((child_node, child))
            parent["ingredients"].append(entry)
    return root


def _facts(label: str, manifest: dict[str, Any]) -> dict[str, Any]:
    """One manifest's own facts, normalised; its ingredients are added by the walk."""
    assertions = {
        a.get("label"): a.get("data")
        for a in manifest.get("assertions") or []
        if isinstance(a, dict)
    }
    actions = [
        action
        for key in ACTIONS_LABELS
        for action in (assertions.get(key) or {}).get("actions") or []
        if isinstance(action, dict)
    ]
    info = manifest.get("signature_info") or {}
    return {
        "label": label,
        "title": manifest.get("title"),
        "instance_id": manifest.get("instance_id"),
        "claim_generator": _generator(manifest),
        "signer": info.get("common_name"),
        "issuer": info.get("issuer"),
        "signed_at": info.get("time"),
        "alg": info.get("alg"),
        "actions": [
            {"action": a.get("action"), "digital_source_type": a.get("digitalSourceType")}
            for a in actions
        ],
        "digital_source_type": next(
            (a["digitalSourceType"] for a in actions if a.get("digitalSourceType")), None
        ),
        "generation": assertions.get(GENERATION_ASSERTION),
        "ingredients": [],
    }


def _generator(manifest: dict[str, Any]) -> str | None:
    infos = manifest.get("claim_generator_info") or []
    if infos and isinstance(infos[0], dict) and infos[0].get("name"):
        first = infos[0]
        return f"{first['name']} {first.get('version', '')}".strip()
    generator = manifest.get("claim_generator")
    return generator if isinstance(generator, str) else None
