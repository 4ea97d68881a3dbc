"""Shared bits for the benchmarks: timing, reporting as ratios, synthetic catalog rows.

Every benchmark measures reelvault and a baseline in the same run and prints the ratio,
so figures from different machines (or a busy one) stay comparable.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

T0 = datetime(2026, 1, 1, tzinfo=UTC)
MODELS = ("local-motion", "sora-2", "sora-2-pro", "fade-1")
STATUSES = ("completed", "completed", "completed", "failed", "rejected")
SQLITE_TIME = "%Y-%m-%d %H:%M:%S.%f"  # how SQLAlchemy stores DateTime values in SQLite
WORDS = ("harbor", "forest", "city", "portrait", "desert", "night", "rain", "sunrise")


@contextmanager
def timer() -> Iterator[Callable[[], float]]:
    start = time.perf_counter()
    elapsed: list[float] = []
    yield lambda: elapsed[0] if elapsed else time.perf_counter() - start
    elapsed.append(time.perf_counter() - start)


def best_of(repeats: int, fn: Callable[[], Any]) -> float:
    """The fastest of several runs: the least disturbed by whatever else the machine does."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def ratio_line(
    name: str, measured: float, baseline: float, baseline_name: str, unit: str = "s"
) -> str:
    return (
        f"{name}: {measured:.4g} {unit} vs {baseline_name} {baseline:.4g} {unit}"
        f" -> {measured / baseline:.2f}x the baseline"
    )


def peak_rss_mib() -> float:
    """This process's peak resident memory (Linux reports KiB), for the memory benchmarks."""
    import resource  # Unix only: imported here so the module itself imports on Windows

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def clip_row(i: int, parent: str | None = None) -> dict[str, Any]:
    """A plausible, varied generation row (as the catalog stores it)."""
    created = T0 + timedelta(seconds=i)
    return {
        "id": f"clip_{i:012d}",
        "backend": "local" if i % 4 == 0 else "sora",
        "model": MODELS[i % len(MODELS)],
        "prompt": f"slow pan right over the {WORDS[i % len(WORDS)]} number {i}",
        "prompt_folded": f"slow pan right over the {WORDS[i % len(WORDS)]} number {i}",
        "seconds": 4,
        "size": "1280x720",
        "parameters": json.dumps({"seconds": 4, "size": "1280x720"}),
        "status": STATUSES[i % len(STATUSES)],
        "progress": 100,
        "remote_job_id": f"video_{i:012d}",
        "parent_id": parent,
        "relation": "remix_of" if parent else None,
        "details": "{}",
        "created_at": created.strftime(SQLITE_TIME),
        "updated_at": created.strftime(SQLITE_TIME),
    }
