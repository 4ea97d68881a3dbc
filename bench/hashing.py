"""Storing a large file in the content store vs raw hashlib.sha256 over the same file.

    python bench/hashing.py [--mib 1024]

Each side runs in a fresh child process so its peak memory (max RSS) is its own. The
store also copies the bytes into place and fsyncs them, so it is expected to cost more
than hashing alone; what must not grow is memory: the store streams in 1 MiB chunks.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import ratio_line  # noqa: E402

CHILD = r"""
import hashlib, json, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[3])
mode, path = sys.argv[1], Path(sys.argv[2])
start = time.perf_counter()
if mode == "raw":
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    result = digest.hexdigest()
elif mode == "hash_file":
    from core.media.store import hash_file
    result = hash_file(path)[0]
else:
    from core.media.store import MediaStore
    result = MediaStore(path.parent / "media").put_file(path).sha256
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print(json.dumps({"sha256": result, "seconds": elapsed, "peak_mib": peak}))
"""


def run(mode: str, path: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), str(ROOT)],
        check=True, capture_output=True, text=True,
    )  # fmt: skip
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=1024)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "big.bin"
        block = os.urandom(1 << 20)
        with path.open("wb") as fh:
            for _ in range(args.mib):
                fh.write(block)
        run("raw", path)  # warm the page cache so both sides read from memory
        raw = run("raw", path)
        hashed = run("hash_file", path)
        stored = run("store", path)
    assert raw["sha256"] == hashed["sha256"] == stored["sha256"]
    print(f"content hashing of a {args.mib:,} MiB file (page cache warm)")
    print(
        ratio_line("  core.media.store.hash_file", hashed["seconds"], raw["seconds"], "raw hashlib")
    )
    print(ratio_line("  MediaStore.put_file (hash + copy + fsync)", stored["seconds"],
                     raw["seconds"], "raw hashlib"))  # fmt: skip
    print(ratio_line("  peak RSS of put_file", stored["peak_mib"], raw["peak_mib"],
                     "raw hashlib", unit="MiB"))  # fmt: skip
    print(f"  throughput: raw {args.mib / raw['seconds']:,.0f} MiB/s, "
          f"hash_file {args.mib / hashed['seconds']:,.0f} MiB/s, "
          f"put_file {args.mib / stored['seconds']:,.0f} MiB/s")  # fmt: skip


if __name__ == "__main__":
    main()
