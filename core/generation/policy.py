"""Running the policy checks: every plugin, every time, each on its own.

As in pyblish, a rule that *denies* is a validation result and a plugin that *raises*
is a crash; both are recorded, the crash as a deny (fail closed), and one plugin's
crash never keeps the others from being heard. Failing closed covers the two quieter
ways a check can go missing too: a plugin that failed to load (it might have been a
policy plugin: its check would silently not run) and a decision that is malformed (an
outcome such as ``"DENY"`` or ``"block"`` that is no :class:`~core.api.types.Outcome`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from core.api.settings import Settings
from core.api.types import (
    DerivedRequest,
    GenerationRequest,
    Outcome,
    PolicyContext,
    PolicyDecision,
)
from core.host.plugins import PluginHost, call_each


def run_checks(
    host: PluginHost,
    request: GenerationRequest | DerivedRequest,
    backend: str,
    settings: Settings,
    context: PolicyContext,
) -> list[PolicyDecision]:
    decisions = load_failures(host, settings)
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
        decisions += [dataclasses.replace(_valid(d), plugin=plugin) for d in _as_list(result)]
    return decisions


LOAD_FAILED = "plugin-load-failed"


def load_failures(host: PluginHost, settings: Settings) -> list[PolicyDecision]:
    """A deny for each plugin that failed to load and is not disabled.

    A plugin that cannot be imported cannot say what it would have checked, so running
    without it could let through what it exists to stop. The user decides: fix it, or
    disable it on purpose.
    """
    disabled = settings.disabled_plugins()
    return [
        PolicyDecision(
            Outcome.DENY,
            LOAD_FAILED,
            f"plugin {failure.name!r} failed to load, so its checks cannot run "
            f"({failure.error}); fix it, or list it in disabled_plugins in config.toml",
            failure.name,
        )
        for failure in host.failures
        if failure.name not in disabled
    ]


def _valid(decision: object) -> PolicyDecision:
    """The decision with its outcome as an :class:`Outcome`, or a deny saying what is wrong
    with it: an outcome that is not one would never be counted as a deny."""
    if not isinstance(decision, PolicyDecision):
        return PolicyDecision(
            Outcome.DENY, "plugin-error", f"returned {decision!r}, not a PolicyDecision"
        )
    try:
        outcome = Outcome(decision.outcome)
    except ValueError:
        choices = ", ".join(o.value for o in Outcome)
        return PolicyDecision(
            Outcome.DENY,
            "plugin-error",
            f"rule {decision.rule_id!r} decided {decision.outcome!r}, not one of {choices}",
        )
    if not (isinstance(decision.rule_id, str) and decision.rule_id.strip()):
        return PolicyDecision(
            Outcome.DENY, "plugin-error", f"a decision has no rule id: {decision!r}"
        )
    if not isinstance(decision.reason, str):
        return PolicyDecision(
            Outcome.DENY,
            "plugin-error",
            f"rule {decision.rule_id!r} gave {decision.reason!r} as its reason, not text",
        )
    return dataclasses.replace(decision, outcome=outcome)


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
