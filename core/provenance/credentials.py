"""Calling the provenance hooks, and reading what verifiers found.

``verify``/``sign`` call the hooks. The rest works on the normalised manifest a C2PA
verifier leaves in ``details["manifest"]`` (see :class:`core.api.types.VerificationResult`):
which ingredient is which catalog asset, whether the catalog's lineage agrees with the
file's, and ``verify_target``, what ``reelvault verify`` runs.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.api.errors import MissingMediaError, NotFoundError, PluginError, RequestError
from core.api.ids import short
from core.api.settings import Settings
from core.api.sniff import file_mime
from core.api.types import VerificationResult, VerificationState
from core.host.plugins import PluginHost, call_each

if TYPE_CHECKING:
    from catalog.models import Asset
    from core.host.app import Reelvault

# The catalog is imported where a cataloged clip or asset is looked up: ``verify PATH``
# reads no catalog, and SQLAlchemy with the models would be most of its start-up.


def verify(host: PluginHost, path: Path, mime: str, settings: Settings) -> list[VerificationResult]:
    """Every verifier's result for one file; a verifier that raises reports ``unreadable``."""
    results = []
    for plugin, result, error in call_each(
        host, "verify_asset", path=path, mime=mime, settings=settings
    ):
        if error is not None:
            result = VerificationResult(
                VerificationState.UNREADABLE, ("verifier.error",), {"error": error}
            )
        elif result is None:
            continue
        elif not isinstance(result, VerificationResult):
            result = VerificationResult(
                VerificationState.UNREADABLE,
                ("verifier.bad_result",),
                {"error": f"returned {type(result).__name__}, not a VerificationResult"},
            )
        results.append(dataclasses.replace(result, verifier=plugin))
    return results


def sign(
    host: PluginHost, path: Path, mime: str, claims: dict[str, Any], settings: Settings
) -> Path | None:
    """The signed copy of ``path`` from the first signer that takes it, if any.

    Signers are asked one at a time in plugin-name order (as every hook the host calls
    through :func:`call_each`); the first to return a path wins and the rest are not
    asked. A signer that raises stops the clip: it is not cataloged unsigned, because a
    provenance tool that silently drops a signature it was set up to add would make the
    absence of credentials meaningless. The job stays resumable once the signer is fixed
    (or disabled on purpose).
    """
    for plugin, signed, error in call_each(
        host, "sign_output", path=path, mime=mime, claims=claims, settings=settings
    ):
        if error is not None:
            raise PluginError(
                f"signer {plugin} failed on {path.name}: {error}; the clip was not cataloged "
                "(fix the signer, or add it to disabled_plugins, then `reelvault resume`)"
            )
        if signed is None:
            continue
        if not isinstance(signed, str | Path):
            raise PluginError(f"the signer {plugin} returned {signed!r}, not a path")
        signed = Path(signed)
        if signed.resolve() == path.resolve() or not signed.is_file():
            raise PluginError(f"the signer {plugin} must write a new file, got {signed}")
        return signed
    return None


SHA256_HEX = re.compile(r"^[0-9a-f]{64}$")
PARENT_OF = "parentOf"
INPUT_TO = "inputTo"
GOOD_STATES = (VerificationState.TRUSTED, VerificationState.VALID)


def manifest_of(
    results: Sequence[VerificationResult], *, intact: bool = True, trusted: bool = False
) -> dict[str, Any] | None:
    """The first verifier's normalised active manifest, if any verifier read one.

    With ``intact`` (the default) only credentials that verified (trusted or valid)
    count: a manifest that does not match its file says nothing reliable about where the
    file came from, so no lineage is taken from it. With ``trusted``, only credentials
    whose signer chains to a trust anchor count: the ones whose label may identify a file.
    """
    wanted = (VerificationState.TRUSTED,) if trusted else GOOD_STATES
    for result in results:
        manifest = result.details.get("manifest")
        if (intact or trusted) and result.state not in wanted:
            continue
        if isinstance(manifest, Mapping) and manifest.get("label"):
            return dict(manifest)
    return None


def claimed_sha256(manifest: Mapping[str, Any], role: str) -> str | None:
    """The SHA-256 the generation assertion records for the ``source`` or ``parent`` file."""
    generation = manifest.get("generation")
    record = generation.get(role) if isinstance(generation, Mapping) else None
    sha = record.get("sha256") if isinstance(record, Mapping) else None
    return sha if isinstance(sha, str) and SHA256_HEX.match(sha) else None


def ingredients(manifest: Mapping[str, Any], relationship: str) -> list[dict[str, Any]]:
    return [
        dict(i)
        for i in manifest.get("ingredients") or []
        if isinstance(i, Mapping) and i.get("relationship") == relationship
    ]


def ingredient_label(ingredient: Mapping[str, Any]) -> str | None:
    manifest = ingredient.get("manifest")
    label = manifest.get("label") if isinstance(manifest, Mapping) else None
    return label if isinstance(label, str) else None


def ingredient_kind(ingredient: Mapping[str, Any]) -> str:
    """The asset kind an ingredient's declared format makes it: ``video`` or ``image``."""
    return "video" if str(ingredient.get("format") or "").startswith("video/") else "image"


def same_signer(known: Mapping[str, Any], manifest: Mapping[str, Any]) -> bool:
    """Whether two records of credentials (a normalised manifest, a placeholder's info)
    name the same signer and issuer, and name one at all."""
    signer = (known.get("signer"), known.get("issuer"))
    return any(signer) and signer == (manifest.get("signer"), manifest.get("issuer"))


def claim_supported(ingredient: Mapping[str, Any], asset: Asset) -> bool:
    """Whether the ingredient itself bears out a hash claim that named ``asset``.

    The generation assertion's hash is only the signer's word; the ingredient is what the
    signing tool took in. A claim holds when the ingredient is of the asset's kind and
    carries the asset's own credentials (the same manifest label, or none on both): a
    file that claims a trusted clip as its parent while its real ``parentOf`` ingredient
    is some other image is a forgery, not a remix.
    """
    if ingredient_kind(ingredient) != asset.kind:
        return False
    # An asset cataloged before labels were kept has none to compare: its kind decides.
    return asset.manifest_label is None or ingredient_label(ingredient) == asset.manifest_label


def ingredient_is(
    ingredient: Mapping[str, Any], asset: Asset, claimed_sha: str | None
) -> bool | None:
    """Whether the evidence says this ingredient is ``asset``; ``None`` when there is none.

    The SHA-256 reelvault's generation assertion recorded for the ingredient's role is
    decisive when there is one: it is about the bytes. Otherwise the manifest label the
    ingredient names is compared with the asset's, and an asset of another kind than the
    ingredient's format is never it, whatever label it carries.
    """
    if claimed_sha and asset.sha256:
        return claimed_sha == asset.sha256 and claim_supported(ingredient, asset)
    label = ingredient_label(ingredient)
    if label and asset.manifest_label:
        return label == asset.manifest_label and ingredient_kind(ingredient) == asset.kind
    return None


def describe_ingredient(ingredient: Mapping[str, Any]) -> str:
    label = ingredient_label(ingredient)
    title = ingredient.get("title") or "untitled"
    return f"{title!r} ({label})" if label else f"{title!r} (no credentials)"


@dataclasses.dataclass(frozen=True)
class LineageProblem:
    kind: str  # lineage_missing | lineage_contradiction | lineage_unconfirmed
    message: str


def compare_lineage(
    manifest: Mapping[str, Any],
    *,
    source: Asset | None,
    parent: Asset | None,
    derived: bool,
) -> list[LineageProblem]:
    """How the catalog's lineage of a clip disagrees with the ingredients in its file.

    ``parent`` is the parent clip's video, ``source`` the still; a derived clip (a remix)
    inherits its source, so its file need not name the still again.
    """
    problems: list[LineageProblem] = []

    def check(role: str, relationship: str, expected: Asset | None, required: bool) -> None:
        found = ingredients(manifest, relationship)
        if expected is None:
            if found:
                problems.append(
                    LineageProblem(
                        "lineage_contradiction",
                        f"the file has a {relationship} ingredient "
                        f"{describe_ingredient(found[0])}; the catalog records no {role}",
                    )
                )
            return
        if not found:
            if required:
                problems.append(
                    LineageProblem(
                        "lineage_missing",
                        f"the catalog records {role} {short(expected.id)}; the file has no "
                        f"{relationship} ingredient",
                    )
                )
            return
        verdicts = [ingredient_is(i, expected, claimed_sha256(manifest, role)) for i in found]
        if True in verdicts:
            return
        if all(v is False for v in verdicts):
            problems.append(
                LineageProblem(
                    "lineage_contradiction",
                    f"the catalog records {role} {short(expected.id)}; the file's "
                    f"{relationship} ingredient is {describe_ingredient(found[0])}",
                )
            )
        else:
            problems.append(
                LineageProblem(
                    "lineage_unconfirmed",
                    f"nothing ties the file's {relationship} ingredient "
                    f"{describe_ingredient(found[0])} to {role} {short(expected.id)}",
                )
            )

    check("parent", PARENT_OF, parent, required=True)
    check("source", INPUT_TO, source, required=not derived)
    return problems


@dataclasses.dataclass(frozen=True)
class VerifyReport:
    """What ``reelvault verify`` found for one file."""

    path: Path
    mime: str
    results: list[VerificationResult]
    asset_id: str | None = None
    generation_id: str | None = None

    def meets(self, required: VerificationState) -> bool:
        """Every verifier reached ``required`` (``valid`` is also met by ``trusted``)."""
        allowed = (required,) if required != VerificationState.VALID else GOOD_STATES
        return bool(self.results) and all(r.state in allowed for r in self.results)


def verify_target(app: Reelvault, target: str) -> VerifyReport:
    """Verify a file given by path, or a cataloged clip or asset given by id.

    A cataloged asset's result joins its verification history; a path outside the
    catalog is only read.
    """
    path = Path(target)
    if path.is_file():
        mime = file_mime(path)
        if mime is None:
            raise RequestError(f"{path}: cannot tell what kind of file this is")
        return VerifyReport(path, mime, _verify_checked(app, path, mime))
    if path.exists():
        raise RequestError(f"{path}: not a file")
    from catalog.lookups import asset_by_id
    from catalog.models import Generation
    from catalog.queries import resolve

    with app.session() as session:
        try:
            found = resolve(session, target)
        except NotFoundError:
            raise NotFoundError(
                f"{target}: no such file, and no clip or asset has this id"
            ) from None
        generation_id = found.id if isinstance(found, Generation) else None
        if isinstance(found, Generation):
            asset = asset_by_id(session, found.output_asset_id)
            if asset is None:
                raise NotFoundError(f"{found.id} has no video (it is {found.status})")
        else:
            asset = found
    if asset.is_placeholder or not asset.stored_path:
        raise RequestError(
            f"{short(asset.id)} is a placeholder known from another file's credentials; "
            "there is no file to verify"
        )
    try:
        stored = app.store.local_path(asset.file_sha256)
    except MissingMediaError as exc:
        raise RequestError(f"{short(asset.id)}: {exc}") from None
    results = _verify_checked(app, stored, asset.mime)
    record_results(app, asset.id, results)
    return VerifyReport(stored, asset.mime, results, asset.id, generation_id)


def _verify_checked(app: Reelvault, path: Path, mime: str) -> list[VerificationResult]:
    results = verify(app.host, path, mime, app.settings)
    if not results:
        raise RequestError(f"{path}: no loaded verifier handles {mime} files (`reelvault plugins`)")
    return results


def record_results(app: Reelvault, asset_id: str, results: Sequence[VerificationResult]) -> None:
    from catalog.verifications import record_verifications

    with app.session() as session:
        record_verifications(session, asset_id, results)
