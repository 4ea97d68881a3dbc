"""Running the policy checks: every plugin, every time, each on its own.

As in pyblish, a rule that *denies* is a validation result and a plugin that *raises*
is a crash; both are recorded, the crash as a deny (fail closed), and one plugin's
crash never keeps the others from being heard.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from core.config import Settings
from core.plugins import PluginHost, call_each
from core.types import (
    DerivedRequest,
    GenerationRequest,
    Outcome,
    PolicyContext,
    PolicyDecision,
)


def run_checks(
    host: PluginHost,
    request: GenerationRequest | DerivedRequest,
    backend: str,
    settings: Settings,
    context: PolicyContext,
) -> list[PolicyDecision]:
    decisions: list[PolicyDecision] = []
    for plugin, result, error in call_each(
        host,
        "check_request",
        request=request,
        backend=backend,
        settings=settings,
        context=context,
    ):
        if error is not None:
            decisions.append(
                PolicyDecision(
                    Outcome.DENY, "plugin-error", f"policy check crashed: {error}", plugin
                )
            )
            continue
        for decision in _as_list(result):
            if not isinstance(decision, PolicyDecision):
                decision = PolicyDecision(
                    Outcome.DENY, "plugin-error", f"returned {decision!r}, not a PolicyDecision"
                )
            decisions.append(dataclasses.replace(decision, plugin=plugin))
    return decisions


def denials(decisions: Sequence[PolicyDecision]) -> list[PolicyDecision]:
    return [d for d in decisions if d.outcome == Outcome.DENY]


def warnings(decisions: Sequence[PolicyDecision]) -> list[str]:
    """Warn decisions as lines for the user: they do not block, but must not go unseen."""
    return [
        f"policy {d.plugin}/{d.rule_id}: {d.reason}" for d in decisions if d.outcome == Outcome.WARN
    ]


def _as_list(result: object) -> list[object]:
    if result is None:
        return []
    if isinstance(result, list | tuple):
        return list(result)
    return [result]
