"""The local backend's render speed as a multiple of real time, against the previous way.

    python bench/render.py [--seconds 4] [--size 1280x720]

Figures are multiples of real time (above 1.0x: the backend renders faster than the clip
plays). The same-run baseline is the renderer as it was before (renderer version 1): a
PIL bicubic crop-and-resize per frame and a new colour converter per frame, with the same
encoder settings, reproduced here so both run on the same machine at the same moment.
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from fractions import Fraction
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import av  # noqa: E402
from av.video.reformatter import ColorPrimaries, ColorRange, Colorspace, ColorTrc  # noqa: E402
from PIL import Image  # noqa: E402

from bench._common import best_of  # noqa: E402
from core.api.types import Size  # noqa: E402
from plugins import local_backend as lb  # noqa: E402
from plugins.local_backend import render  # noqa: E402

PROMPTS = ("slow push in for 2s, then pan right", "pan left", "pull out slowly")


def render_before(still: Image.Image, plan: lb.MotionPlan, size: Size, video: Path) -> None:
    """Renderer version 1's frame loop (thumbnail aside), for the baseline."""
    framing, union = render._frame_path(plan, still.size, size)
    scale = size.width * max(c.zoom for c in plan.cameras()) / framing.view_w
    work = still
    if scale < 1:  # shrunk once up front, as before
        union_w, union_h = union[2] - union[0], union[3] - union[1]
        shrunk = (math.ceil(union_w * scale), math.ceil(union_h * scale))
        work = still.resize(shrunk, Image.Resampling.LANCZOS, box=union)
        sx, sy = shrunk[0] / union_w, shrunk[1] / union_h
        framing = render._Framing(
            (framing.origin_x - union[0]) * sx,
            (framing.origin_y - union[1]) * sy,
            framing.view_w * sx,
            framing.view_h * sy,
        )
    n = render._frame_count(plan.seconds)
    with av.open(str(video), "w", format="mp4", options=render.MUX_OPTIONS) as container:
        stream = container.add_stream("libx264", rate=lb.FPS, options=render.X264_OPTIONS)
        ctx = stream.codec_context
        ctx.width, ctx.height, ctx.pix_fmt = size.width, size.height, "yuv420p"
        ctx.thread_count, ctx.thread_type = render.ENCODER_THREADS, "FRAME"
        ctx.gop_size = 2 * lb.FPS
        ctx.colorspace, ctx.color_range = Colorspace.ITU709, ColorRange.MPEG
        ctx.color_primaries, ctx.color_trc = ColorPrimaries.BT709, ColorTrc.BT709
        for i in range(n):
            box = framing.box(plan.camera_at(plan.seconds * i / (n - 1)), work.size)
            image = work.resize((size.width, size.height), Image.Resampling.BICUBIC, box=box)
            frame = av.VideoFrame.from_image(image).reformat(
                format="yuv420p", dst_colorspace=Colorspace.ITU709
            )
            frame.pts, frame.time_base = i, Fraction(1, lb.FPS)
            container.mux(stream.encode(frame))
        container.mux(stream.encode())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=int, default=4)
    parser.add_argument("--size", default="1280x720")
    args = parser.parse_args()
    size = Size.parse(args.size)
    still = lb.load_still(ROOT / "examples" / "harbor.jpg")
    print(f"local backend render of {args.seconds}s at {size} from examples/harbor.jpg")
    with tempfile.TemporaryDirectory() as tmp:
        video, thumb = Path(tmp) / "clip.mp4", Path(tmp) / "thumb.jpg"
        for prompt in PROMPTS:
            plan = lb.parse_motion(prompt, args.seconds)
            now = best_of(3, lambda p=plan: lb.render_clip(still, p, size, video, thumb))
            before = best_of(3, lambda p=plan: render_before(still, p, size, video))
            print(
                f"  {prompt!r}: {args.seconds / now:.2f}x real time"
                f" vs {args.seconds / before:.2f}x before -> {before / now:.2f}x as fast"
            )


if __name__ == "__main__":
    main()
