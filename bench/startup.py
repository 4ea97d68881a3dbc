"""Start-up cost of the command line, and ``verify`` as a whole command, in subprocesses.

    python bench/startup.py [--seconds 8] [--size 1280x720] [--large-mib 107] [--repeats 5]
                            [--compare-with OTHER_CHECKOUT] [--pg POSTGRESQL_URL]

Baselines, measured in the same run:
- ``reelvault --help`` and ``reelvault list`` on an empty catalog against
  ``python -c pass`` (the interpreter's own start-up); the floor of ``list`` is shown
  beside it: importing SQLModel, and the catalog's models (SQLAlchemy, SQLModel,
  pydantic and the tables), which every command that reads the catalog needs;
- ``reelvault verify CLIP.mp4`` (start-up, type sniffing, the c2pa verifier, printing)
  against a bare c2pa Reader validating the same file in a fresh interpreter, for a
  small clip and for a large one.

The small signed clip is made with the local backend: a development signing certificate
in a throwaway home, then one clip of ``--seconds`` at ``--size``. The large one
(``--large-mib``, 0 to skip) is lossless noise written with PyAV (a file of that size in
seconds, where a render would take minutes), signed by the project's C2PA signer plugin
with the same certificate, as the clips the local backend makes are.

``--compare-with`` measures another checkout's commands in the same run (with ``python -m
core`` run from that folder, its own modules are the ones imported), for before/after
figures on a machine whose speed varies.

Each figure is the best of ``--repeats`` runs after one warm-up run, with bytecode caches
written (as an installed package has them): the best wall time, and the best CPU time
(user + system) of the subprocess, which a busy machine disturbs less.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
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


def best_run(
    argv: list[str], env: dict[str, str], repeats: int, cwd: Path = ROOT
) -> tuple[float, float]:
    """The best wall time and the best CPU time of ``repeats`` runs, after a warm-up."""
    subprocess.run(argv, env=env, cwd=cwd, check=False, capture_output=True)
    walls, cpus = [], []
    for _ in range(repeats):
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        start = time.perf_counter()
        done = subprocess.run(argv, env=env, cwd=cwd, check=False, capture_output=True)
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
        if done.returncode != 0:
            sys.exit(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
    return min(walls), min(cpus)


def report(
    label: str, took: tuple[float, float], base: tuple[float, float], base_label: str
) -> None:
    print(ratio_line(label, took[0], base[0], base_label))
    print(ratio_line(f"{label} (CPU)", took[1], base[1], f"{base_label} (CPU)"))


def large_signed_clip(home: Path, mib: int, folder: Path) -> Path:
    """Lossless 1280x720 noise in an MP4 of at least ``mib`` MiB, signed by the c2pa signer
    plugin with the home's development certificate."""
    import av
    import numpy as np

    from core.api.settings import Settings
    from plugins.c2pa_signer import sign_output

    unsigned = folder / "large.mp4"
    rng = np.random.default_rng(7)
    written = 0
    with av.open(str(unsigned), "w") as container:
        stream = container.add_stream("libx264", rate=25)
        stream.width, stream.height, stream.pix_fmt = 1280, 720, "yuv420p"
        stream.options = {"qp": "0", "preset": "ultrafast"}  # lossless: noise stays large
        while written < mib * 2**20:
            pixels = rng.integers(0, 256, (720, 1280, 3), dtype=np.uint8)
            for packet in stream.encode(av.VideoFrame.from_ndarray(pixels, format="rgb24")):
                written += packet.size
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    claims = {"backend": "local", "generation_id": "clip_bench", "model": "local-motion",
              "prompt": "noise", "parameters": {}, "details": {}}  # fmt: skip
    signed = sign_output(unsigned, "video/mp4", claims, Settings.load(home=home))
    if signed is None:
        sys.exit("the signer declined: is signing set up in the bench's home?")
    unsigned.unlink()
    return Path(shutil.move(signed, folder / "large-signed.mp4"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=8)
    parser.add_argument("--size", default="1280x720")
    parser.add_argument("--large-mib", type=int, default=107)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--compare-with",
        type=Path,
        help="another checkout (e.g. `git worktree add ../before COMMIT`) whose reelvault "
        "commands are measured too, in the same run, as 'before'",
    )
    parser.add_argument(
        "--pg", help="also `list` on an empty PostgreSQL catalog: postgresql+psycopg://USER@HOST/DB"
    )
    args = parser.parse_args()
    python = sys.executable
    reelvault = [python, "-m", "core"]
    with tempfile.TemporaryDirectory() as tmp:
        home = Path(tmp) / "home"
        env = {**os.environ, "REELVAULT_HOME": str(home)}
        env.pop("REELVAULT_DB", None)
        env.pop("PYTHONDONTWRITEBYTECODE", None)
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        subprocess.run([*reelvault, "list"], env=env, check=True, capture_output=True)
        repeats = args.repeats
        bare = best_run([python, "-c", "pass"], env, repeats)
        print(f"start-up (best of {repeats} subprocess runs)")
        for label, argv in (("--help", ["--help"]), ("list (empty catalog)", ["list"])):
            took = best_run([*reelvault, *argv], env, repeats)
            report(f"  reelvault {label}", took, bare, "python -c pass")
            if args.compare_with:
                before = best_run([*reelvault, *argv], env, repeats, args.compare_with)
                report(f"  reelvault {label}", took, before, "before")
        if args.pg:
            from bench._common import scratch_database

            with scratch_database(args.pg, "bench_startup_empty") as url:
                on_pg = {**env, "REELVAULT_DB": url}
                subprocess.run([*reelvault, "list"], env=on_pg, check=True, capture_output=True)
                took = best_run([*reelvault, "list"], on_pg, repeats)
                report("  reelvault list (empty PostgreSQL catalog)", took, bare, "python -c pass")
        for floor in ("sqlmodel", "catalog.models"):
            took = best_run([python, "-c", f"import {floor}"], env, repeats)
            report(f"  floor: import {floor}", took, bare, "python -c pass")

        subprocess.run([*reelvault, "signing", "init"], env=env, check=True, capture_output=True)
        made = subprocess.run(
            [*reelvault, "generate", str(ROOT / "examples" / "harbor.jpg"), "-p", "pan left",
             "--seconds", str(args.seconds), "--size", args.size, "--json"],
            env=env, check=True, capture_output=True, text=True,
        )  # fmt: skip
        small = Path(json.loads(made.stdout)["video"]["path"])
        clips = [(f"a signed {args.seconds} s clip", small)]
        if args.large_mib:
            large = large_signed_clip(home, args.large_mib, Path(tmp))
            clips.append(("a large signed clip", large))
        for label, video in clips:
            mib = video.stat().st_size / 2**20
            took = best_run([*reelvault, "verify", str(video)], env, repeats)
            reader = best_run([python, "-c", BARE_READER, str(video)], env, repeats)
            print(f"verify of {label} ({mib:.1f} MiB), whole command")
            report("  reelvault verify", took, reader, "bare c2pa Reader")
            if args.compare_with:
                before = best_run([*reelvault, "verify", str(video)], env, repeats,
                                  args.compare_with)  # fmt: skip
                report("  reelvault verify", took, before, "before")


if __name__ == "__main__":
    main()
