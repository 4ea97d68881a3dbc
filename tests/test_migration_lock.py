"""The SQLite catalog's upgrade lock (filelock) lets one process or thread upgrade at a time."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

from catalog.db import _migration_lock, create_engine
from tests.conftest import REPO

HOLD_LOCK = """
import sys, time
from catalog.db import _migration_lock, create_engine
with _migration_lock(create_engine(sys.argv[1])):
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""


def test_a_second_holder_waits_for_the_first(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'catalog.db'}"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, url, "0.6"],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with _migration_lock(create_engine(url)):
            waited = time.monotonic() - started
    finally:
        holder.wait(timeout=30)
    assert waited > 0.3  # the holder keeps it 0.6 s after saying so


def test_threads_take_turns(tmp_path: Path):
    engine = create_engine(f"sqlite:///{tmp_path / 'catalog.db'}")
    inside = 0
    most_inside = 0
    guard = threading.Lock()

    def upgrade() -> None:
        nonlocal inside, most_inside
        with _migration_lock(engine):
            with guard:
                inside += 1
                most_inside = max(most_inside, inside)
            time.sleep(0.05)
            with guard:
                inside -= 1

    threads = [threading.Thread(target=upgrade) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert most_inside == 1
