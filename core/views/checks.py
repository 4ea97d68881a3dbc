"""A file's verification history, as people read it: the latest result of each verifier.

Every check is kept (a state that changed must stay visible to ``--json`` and exports),
but a clip's page and ``show`` repeat their source still's checks on every clip made from
it; nine identical "absent" lines say less than one line and "8 earlier checks".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


def latest_per_verifier(
    verifications: Sequence[Mapping[str, Any]],
) -> list[dict[str, Any]]:
    """The newest check of each verifier (given oldest first), in the order the verifiers
    first checked, each with ``earlier``: how many checks of that verifier came before."""
    latest: dict[str, Mapping[str, Any]] = {}
    counts: dict[str, int] = {}
    for check in verifications:
        verifier = check["verifier"]
        latest[verifier] = check
        counts[verifier] = counts.get(verifier, 0) + 1
    return [{**check, "earlier": counts[name] - 1} for name, check in latest.items()]
