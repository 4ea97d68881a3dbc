"""Start-up cost of the command line, and ``verify`` as a whole command, in subprocesses.

    python bench/startup.py [--seconds 8] [--size 1280x720] [--repeats 5]

Baselines, measured in the same run:
- ``reelvault --help`` and ``reelvault list`` on an empty catalog against
  ``python -c pass`` (the interpreter's own start-up);
- ``reelvault verify CLIP.mp4`` (start-up, type sniffing, the c2pa verifier, printing)
  against a bare c2pa Reader validating the same file in a fresh interpreter.

The signed clip is made here: a development signing certificate in a throwaway home,
then one local clip of ``--seconds`` at ``--size`` (a longer clip is a larger file).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import ratio_line  # noqa: E402

BARE_READER = """
import sys, c2pa
with open(sys.argv[1], "rb") as fh:
    reader = c2pa.Reader("video/mp4", fh)
    reader.get_validation_state()
    reader.json()
"""


def best_run(argv: list[str], env: dict[str, str], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(argv, env=env, cwd=ROOT, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    python = sys.executable
    reelvault = [python, "-m", "core"]
    with tempfile.TemporaryDirectory() as tmp:
        env = {**os.environ, "REELVAULT_HOME": str(Path(tmp) / "home")}
        env.pop("REELVAULT_DB", None)
        subprocess.run([*reelvault, "list"], env=env, check=True, capture_output=True)
        bare = best_run([python, "-c", "pass"], env, args.repeats)
        print(f"start-up (best of {args.repeats} subprocess runs)")
        for label, argv in (("--help", ["--help"]), ("list (empty catalog)", ["list"])):
            took = best_run([*reelvault, *argv], env, args.repeats)
            print(ratio_line(f"  reelvault {label}", took, bare, "python -c pass"))

        subprocess.run([*reelvault, "signing", "init"], env=env, check=True, capture_output=True)
        made = subprocess.run(
            [*reelvault, "generate", str(ROOT / "examples" / "harbor.jpg"), "-p", "pan left",
             "--seconds", str(args.seconds), "--size", args.size, "--json"],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        video = json.loads(made.stdout)["video"]["path"]
        mib = Path(video).stat().st_size / 2**20
        took = best_run([*reelvault, "verify", video], env, args.repeats)
        reader = best_run([python, "-c", BARE_READER, video], env, args.repeats)
        print(f"verify of a signed {args.seconds} s clip ({mib:.1f} MiB), whole command")
        print(ratio_line("  reelvault verify", took, reader, "bare c2pa Reader"))


if __name__ == "__main__":
    main()
