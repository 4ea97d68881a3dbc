"""Shared bits for the benchmarks: timing, reporting as ratios, synthetic catalog rows.

Every benchmark measures reelvault and a baseline in the same run and prints the ratio,
so figures from different machines (or a busy one) stay comparable.
"""

from __future__ import annotations

import json
import statistics
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


def median_of(repeats: int, fn: Callable[[], Any]) -> float:
    """The median of several runs: the figure the performance targets are stated in."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def median_cpu_of(repeats: int, fn: Callable[[], Any]) -> float:
    """The median CPU time this process spends in several runs: steadier than wall time on
    a busy machine. A database server's own work is not in it (SQLite's is)."""
    times = []
    for _ in range(repeats):
        start = time.process_time()
        fn()
        times.append(time.process_time() - start)
    return statistics.median(times)


@contextmanager
def scratch_database(admin_url: str, name: str) -> Iterator[str]:
    """A new, empty PostgreSQL database on the server of ``admin_url``, dropped afterwards;
    yields its SQLAlchemy URL."""
    import sqlalchemy as sa  # only the PostgreSQL runs need it before the catalog does

    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    try:
        yield sa.make_url(admin_url).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


def libpq_url(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as raw psycopg takes it (no ``+driver``)."""
    import sqlalchemy as sa

    return sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


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


def typed_clip(row: dict[str, Any]) -> dict[str, Any]:
    """A :func:`clip_row` as a caller of the catalog holds it: Python values (a dict for
    the JSON columns, aware datetimes), the prompt not yet folded."""
    return {
        **{k: v for k, v in row.items() if k != "prompt_folded"},
        "parameters": json.loads(row["parameters"]),
        "details": json.loads(row["details"]),
        "created_at": datetime.strptime(row["created_at"], SQLITE_TIME).replace(tzinfo=UTC),
        "updated_at": datetime.strptime(row["updated_at"], SQLITE_TIME).replace(tzinfo=UTC),
    }
