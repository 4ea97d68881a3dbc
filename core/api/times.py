"""Timestamps as people read them: one format for every table, page and message.

The catalog keeps times in UTC and hands them out as ISO 8601 (``2026-11-25T14:03:07.5+00:00``);
a person wants ``2026-11-25 14:03:07``. Every place that shows a time to a person uses
:func:`timestamp_text`, so the command line, the web pages and plugin messages agree.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["timestamp_text"]

_WITH_SECONDS = len("2026-11-25T14:03:07")
_TO_THE_MINUTE = len("2026-11-25T14:03")


def timestamp_text(value: str | datetime | float | None, *, seconds: bool = True) -> str:
    """``2026-11-25 14:03:07`` (or ``2026-11-25 14:03`` without ``seconds``), from an ISO
    8601 string, a datetime, or seconds since the epoch (how providers send expiry
    times, read as UTC); empty for no time at all.

    The zone is not shown: catalog times are all UTC, and a column of them reads better
    without ``+00:00`` on every line (a sentence adds `` UTC`` after it).
    """
    if value is None or value == "":
        return ""
    if isinstance(value, int | float):
        value = datetime.fromtimestamp(value, UTC)
    text = value.isoformat() if isinstance(value, datetime) else value
    return text[: _WITH_SECONDS if seconds else _TO_THE_MINUTE].replace("T", " ")
