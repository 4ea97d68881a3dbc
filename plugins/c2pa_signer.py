"""Signs the clips reelvault makes itself with C2PA Content Credentials (c2pa-python).

Only outputs of the backends listed in ``[signing] backends`` (default: the offline
``local`` backend) are signed: a hosted service's clips already carry its own
credentials, and reelvault must not claim to have made them. Nothing is signed until a
certificate is set up (``reelvault signing init``, or ``[signing] cert``/``key``); before
that the hook declines and clips verify as ``absent``.

The manifest says what happened, in terms any C2PA reader understands:

* a new clip: ``c2pa.created`` with digital source type ``trainedAlgorithmicMedia``,
  the source still as an ``inputTo`` ingredient;
* a remix: ``c2pa.opened`` of the parent clip (a ``parentOf`` ingredient), then
  ``c2pa.edited`` (c2pa-rs refuses a "created" claim with a parent), the still again
  as ``inputTo`` since the local backend re-renders from it;
* an ``org.reelvault.generation`` assertion, hash-bound like every assertion, with the
  prompt, model, parameters (seed included), the motion plan and the SHA-256 of each
  ingredient file (so lineage can be checked even for ingredients without credentials).

The signed copy is written to a new file under ``work/c2pa_signer``; the host stores it
in place of the unsigned one. A key held in a KMS or HSM signs through a callback:
``[signing] callback = "package.module:function"``, a function taking the bytes to
sign and returning the signature, with ``[signing] cert`` the public chain.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import tempfile
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.api import GENERATION_ASSERTION, PluginError, Settings, c2pa_settings, hookimpl

if TYPE_CHECKING:
    import c2pa

NAME = "c2pa_signer"
TRAINED_ALGORITHMIC_MEDIA = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
ALGORITHMS = ("es256", "es384", "es512", "ps256", "ps384", "ps512", "ed25519")


@hookimpl
def sign_output(path: Path, mime: str, claims: dict[str, Any], settings: Settings) -> Path | None:
    if claims.get("backend") not in settings.signing_backends():
        return None
    signer_factory = _signer_factory(settings, settings.table("signing"))
    if signer_factory is None:
        return None  # signing is not set up: clips stay unsigned (verified as absent)
    import c2pa

    if mime not in c2pa.Builder.get_supported_mime_types():
        return None  # C2PA cannot embed credentials in this type
    folder = settings.work_dir / NAME
    folder.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=folder, suffix=path.suffix or ".mp4")
    os.close(fd)
    signed = Path(name)
    try:
        builder = c2pa.Builder(manifest_definition(claims), _context(settings))
        with builder:
            for label, relationship, claim in _ingredients(claims):
                with Path(claim["path"]).open("rb") as fh:
                    builder.add_ingredient(
                        {"title": _title(claim), "relationship": relationship, "label": label},
                        claim["mime"],
                        fh,
                    )
            with signer_factory() as signer, path.open("rb") as src, signed.open("w+b") as dst:
                builder.sign(signer, mime, src, dst)
    except c2pa.C2paError as exc:
        signed.unlink(missing_ok=True)
        raise PluginError(f"C2PA signing failed: {exc}") from None
    except BaseException:
        signed.unlink(missing_ok=True)
        raise
    return signed


def manifest_definition(claims: Mapping[str, Any]) -> dict[str, Any]:
    """The manifest for one clip: its actions and the generation assertion."""
    source, parent = claims.get("source"), claims.get("parent")
    if parent:
        actions: list[dict[str, Any]] = [
            {"action": "c2pa.opened", "parameters": {"ingredientIds": ["parent"]}},
            {
                "action": "c2pa.edited",
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                "description": "remixed with a new prompt",
                **({"parameters": {"ingredientIds": ["source"]}} if source else {}),
            },
        ]
    else:
        actions = [
            {
                "action": "c2pa.created",
                "digitalSourceType": TRAINED_ALGORITHMIC_MEDIA,
                **({"parameters": {"ingredientIds": ["source"]}} if source else {}),
            }
        ]
    details = claims.get("details") or {}
    generation = {
        "generation_id": claims.get("generation_id"),
        "backend": claims.get("backend"),
        "model": claims.get("model"),
        "prompt": claims.get("prompt"),
        "parameters": claims.get("parameters") or {},
        "relation": claims.get("relation"),
        "motion_plan": details.get("motion_plan"),
        "signed_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "source": _ingredient_record(source),
        "parent": _ingredient_record(parent),
    }
    return {
        "claim_generator_info": [_generator_info()],
        "title": f"{claims.get('generation_id') or 'clip'}.mp4",
        "assertions": [
            {"label": "c2pa.actions.v2", "data": {"actions": actions}},
            {"label": GENERATION_ASSERTION, "data": generation},
        ],
    }


def _ingredient_record(claim: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """What the manifest says about an ingredient file: never its local path."""
    if not claim:
        return None
    return {k: claim.get(k) for k in ("id", "sha256", "mime", "generation_id") if claim.get(k)}


def _ingredients(claims: Mapping[str, Any]) -> list[tuple[str, str, Mapping[str, Any]]]:
    found = []
    if claims.get("parent"):
        found.append(("parent", "parentOf", claims["parent"]))
    if claims.get("source"):
        found.append(("source", "inputTo", claims["source"]))
    for _label, _relationship, claim in found:
        if not claim.get("path") or not Path(claim["path"]).is_file():
            raise PluginError(f"the ingredient file {claim.get('id')} is not in the store")
    return found


def _title(claim: Mapping[str, Any]) -> str:
    """A name for readers to show: ids, never a file name from the user's disk."""
    if claim.get("generation_id"):
        return f"{claim['generation_id']}.mp4"
    return str(claim.get("id") or "ingredient")[:16]


def _generator_info() -> dict[str, str]:
    try:
        version = importlib.metadata.version("reelvault")
    except importlib.metadata.PackageNotFoundError:
        version = "unknown"
    return {"name": "reelvault", "version": version}


def _context(settings: Settings) -> c2pa.Context:
    import c2pa

    return c2pa.Context.from_dict(c2pa_settings(settings.trust_anchors_pem()))


def _signer_factory(
    settings: Settings, config: Mapping[str, Any]
) -> Callable[[], c2pa.Signer] | None:
    """How to make a signer, or ``None`` when no certificate is configured.

    A configured but broken setup (a key file missing, an unknown algorithm) is an
    error, not a silent fallback to unsigned clips.
    """
    chain_path, key_path = settings.signing_paths()
    callback_name = config.get("callback")
    if not chain_path.is_file():
        if "cert" in config or callback_name:
            raise PluginError(f"[signing] cert {chain_path} does not exist")
        return None
    alg_name = str(config.get("alg", "es256")).lower()
    if alg_name not in ALGORITHMS:
        raise PluginError(f"[signing] alg {alg_name!r} is not one of {', '.join(ALGORITHMS)}")
    tsa_url = config.get("tsa_url") or None
    import c2pa

    alg = c2pa.C2paSigningAlg[alg_name.upper()]
    chain = chain_path.read_bytes()
    if callback_name:
        callback = _load_callback(str(callback_name))
        return lambda: c2pa.Signer.from_callback(callback, alg, chain.decode(), tsa_url)
    if not key_path.is_file():
        raise PluginError(f"the signing key {key_path} does not exist")
    key = key_path.read_bytes()
    return lambda: c2pa.Signer.from_info(c2pa.C2paSignerInfo(alg, chain, key, tsa_url))


def _load_callback(name: str) -> Callable[[bytes], bytes]:
    module_name, _, attr = name.partition(":")
    try:
        function = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError, ValueError) as exc:
        raise PluginError(f"[signing] callback {name!r} cannot be loaded: {exc}") from None
    if not callable(function):
        raise PluginError(f"[signing] callback {name!r} is not a function")
    return function
