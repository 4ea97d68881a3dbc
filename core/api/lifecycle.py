"""The model lifecycle registry: which models are available, deprecated or retired.

Providers switch models off on a date (OpenAI's Videos API at api.openai.com on
2026-09-24); a request to a model that is gone should fail *before* anything is sent,
saying what to use instead, not after a create answered with a 404. So reelvault keeps
one registry of :class:`ModelLifecycle` entries:

- the built-in entries below (:data:`BUILTIN`), with their sources in
  ``docs/remote-backends.md``;
- entries that plugins return from the ``model_lifecycle`` hook
  (:func:`core.api.hookspecs.model_lifecycle`), so a backend package can say when its
  own models retire;
- entries in the home's ``config.toml`` (``[lifecycle."BACKEND:MODEL"]`` with
  ``status``, ``since``, ``alternatives``, ``note``), so a user can record a shutdown the
  day it is announced, without a release.

A later source replaces an earlier one for the same ``(backend, model, where)``. An
entry with ``where`` (a host) applies only to requests sent there: the backend checks it
(sora knows which provider a request goes to); one without ``where`` applies
everywhere and the host refuses the request itself.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from core.api.errors import ReelvaultError

__all__ = [
    "BUILTIN",
    "ModelLifecycle",
    "ModelStatus",
    "from_config",
    "hint",
    "merge",
]


class ModelStatus(enum.StrEnum):
    AVAILABLE = "available"
    DEPRECATED = "deprecated"
    RETIRED = "retired"


@dataclass(frozen=True)
class ModelLifecycle:
    """One model's standing at one backend (and, with ``where``, at one host only).

    ``since`` is the day the status took effect; an entry whose day is still ahead
    announces it (``retiring on ...``) and counts as the status before it. Each of
    ``alternatives`` is either ``BACKEND:MODEL`` or a short hint (``--provider NAME``).
    """

    backend: str
    model: str
    status: ModelStatus
    since: date | None = None
    where: str | None = None
    alternatives: tuple[str, ...] = ()
    note: str = ""

    def status_on(self, today: date) -> ModelStatus:
        """The status in effect on ``today``: a retirement ahead is a deprecation now."""
        if self.since is None or today >= self.since:
            return self.status
        return ModelStatus.DEPRECATED if self.status == ModelStatus.RETIRED else self.status

    def retired(self, today: date) -> bool:
        return self.status_on(today) == ModelStatus.RETIRED

    def describe(self, today: date) -> str:
        """``retired at api.openai.com since 2026-09-24`` and the like, for a table."""
        status = self.status_on(today)
        at = f" at {self.where}" if self.where else ""
        if self.since is None:
            text = f"{status}{at}"
        elif today >= self.since:
            text = f"{status}{at} since {self.since}"
        else:
            text = f"{status}{at}; {self.status.value.replace('ed', 'ing')} on {self.since}"
        return f"{text} ({self.note})" if self.note else text

    def refusal(self, today: date) -> str:
        """The line a request to this retired model fails with."""
        text = f"model {self.model} ({self.backend}) is {self.describe(today)}"
        if self.alternatives:
            text += "; use instead: " + ", ".join(hint(a) for a in self.alternatives)
        return text

    def to_json(self, today: date) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "status": str(self.status_on(today)),
            "since": self.since.isoformat() if self.since else None,
            "where": self.where,
            "alternatives": list(self.alternatives),
            "note": self.note,
            "summary": self.describe(today),
        }


def hint(alternative: str) -> str:
    """``veo:veo-3.0-generate-001`` as the options that ask for it; a hint as it is."""
    backend, sep, model = alternative.partition(":")
    if sep and backend and model and " " not in alternative:
        return f"--backend {backend} -m {model}"
    return alternative


_SORA_ALTERNATIVES = (
    "--provider NAME (a gateway that serves the Videos API: `reelvault providers add`)",
    "fal:fal-ai/kling-video/v2.1/standard/image-to-video",
    "replicate:kwaivgi/kling-v2.1",
    "fal:fal-ai/veo3.1/image-to-video",
    "veo:veo-3.0-generate-001",
)
_VEO_ALTERNATIVES = ("fal:fal-ai/veo3.1/image-to-video", "replicate:google/veo-3.1")
_VEO_31_NOTE = (
    "third-party notices report a shutdown on the Gemini API on 2026-10-22; unconfirmed by "
    "Google; google-genai 3.0 no longer offers generate_videos for the Gemini API"
)
_VEO_NOTE = "google-genai 3.0 no longer offers generate_videos for the Gemini API"

BUILTIN: tuple[ModelLifecycle, ...] = (
    *(
        ModelLifecycle(
            "sora",
            model,
            ModelStatus.RETIRED,
            date(2026, 9, 24),
            where="api.openai.com",
            alternatives=_SORA_ALTERNATIVES,
        )
        for model in (
            "sora-2",
            "sora-2-pro",
            "sora-2-2025-12-08",
            "sora-2-2025-10-06",
            "sora-2-pro-2025-10-06",
        )
    ),
    *(
        ModelLifecycle(
            "veo",
            model,
            ModelStatus.DEPRECATED,
            date(2026, 10, 22),
            alternatives=("veo:veo-3.0-generate-001", *_VEO_ALTERNATIVES),
            note=_VEO_31_NOTE,
        )
        for model in ("veo-3.1-generate-preview", "veo-3.1-fast-generate-preview")
    ),
    *(
        ModelLifecycle(
            "veo", model, ModelStatus.DEPRECATED, alternatives=_VEO_ALTERNATIVES, note=_VEO_NOTE
        )
        for model in (
            "veo-3.0-generate-001",
            "veo-3.0-fast-generate-001",
            "veo-2.0-generate-001",
        )
    ),
)
"""What reelvault knows out of the box (sources in docs/remote-backends.md)."""


def merge(*sources: Iterable[ModelLifecycle]) -> dict[tuple[str, str, str | None], ModelLifecycle]:
    """One entry per ``(backend, model, where)``; a later source wins."""
    merged: dict[tuple[str, str, str | None], ModelLifecycle] = {}
    for source in sources:
        for entry in source:
            merged[(entry.backend, entry.model, entry.where)] = entry
    return merged


def from_config(config: Mapping[str, Any], where: str = "config.toml") -> list[ModelLifecycle]:
    """The ``[lifecycle."BACKEND:MODEL"]`` tables of a user's configuration."""
    table = config.get("lifecycle", {})
    if not isinstance(table, Mapping):
        raise ReelvaultError(f"{where}: [lifecycle] must be a table")
    entries = []
    for name, entry in table.items():
        backend, sep, model = str(name).partition(":")
        place = f'{where}: [lifecycle."{name}"]'
        if not sep or not backend or not model or not isinstance(entry, Mapping):
            raise ReelvaultError(f'{place} must be named "BACKEND:MODEL" and be a table')
        try:
            status = ModelStatus(entry.get("status", "available"))
        except ValueError:
            allowed = ", ".join(s.value for s in ModelStatus)
            raise ReelvaultError(f"{place}: status must be one of {allowed}") from None
        since = entry.get("since")
        if isinstance(since, str):
            try:
                since = date.fromisoformat(since)
            except ValueError:
                raise ReelvaultError(f"{place}: since must be a date, YYYY-MM-DD") from None
        if since is not None and not isinstance(since, date):
            raise ReelvaultError(f"{place}: since must be a date, YYYY-MM-DD")
        alternatives = entry.get("alternatives", [])
        if not isinstance(alternatives, Sequence) or isinstance(alternatives, str):
            raise ReelvaultError(f"{place}: alternatives must be a list of strings")
        entries.append(
            ModelLifecycle(
                backend=backend,
                model=model,
                status=status,
                since=since,
                where=entry.get("where") or None,
                alternatives=tuple(str(a) for a in alternatives),
                note=str(entry.get("note", "")),
            )
        )
    return entries
