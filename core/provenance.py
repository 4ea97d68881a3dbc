"""Calling the provenance hooks: verifying assets and signing outputs."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from core.config import Settings
from core.errors import PluginError
from core.plugins import PluginHost, call_each
from core.types import VerificationResult, VerificationState


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
    """The signed copy of ``path`` from the first signer that takes it, if any."""
    try:
        signed = host.hook.sign_output(path=path, mime=mime, claims=claims, settings=settings)
    except Exception as exc:
        raise PluginError(f"signing {path.name} failed: {type(exc).__name__}: {exc}") from exc
    if signed is None:
        return None
    signed = Path(signed)
    if signed.resolve() == path.resolve() or not signed.is_file():
        raise PluginError(f"the signer must write a new file, got {signed}")
    return signed
