"""The local backend's render speed as a multiple of real time.

    python bench/render.py [--seconds 4] [--size 1280x720]

Baseline: the clip's own duration. A figure above 1.0x means the local backend renders
faster than the clip plays.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench._common import best_of  # noqa: E402
from core.api.types import Size  # noqa: E402
from plugins.local_backend import load_still, parse_motion, render_clip  # noqa: E402

PROMPTS = ("slow push in for 2s, then pan right", "pan left", "pull out slowly")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--size", default="1280x720")
    args = parser.parse_args()
    size = Size.parse(args.size)
    still = load_still(ROOT / "examples" / "harbor.jpg")
    print(f"local backend render of {args.seconds}s at {size} from examples/harbor.jpg")
    with tempfile.TemporaryDirectory() as tmp:
        for prompt in PROMPTS:
            plan = parse_motion(prompt, args.seconds)
            video, thumb = Path(tmp) / "clip.mp4", Path(tmp) / "thumb.jpg"
            elapsed = best_of(2, lambda p=plan, v=video, t=thumb: render_clip(still, p, size, v, t))
            print(f"  {prompt!r}: {elapsed:.2f} s for {args.seconds} s of video "
                  f"-> {args.seconds / elapsed:.2f}x real time")  # fmt: skip


if __name__ == "__main__":
    main()
