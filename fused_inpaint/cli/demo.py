"""``fused-inpaint demo``: the embedded default, a short built-in clip, no network needed."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from fused_inpaint import demo as demo_clip
from fused_inpaint import io
from fused_inpaint.cli.common import (
    UsageError,
    add_pipeline_options,
    make_inpainter,
    positive,
    with_progress,
)


def add_parser(commands) -> None:
    demo = commands.add_parser(
        "demo",
        help="inpaint a short built-in clip",
        description="Inpaints a short clip with a moving mask and writes input.mp4, "
        "mask.mp4, output.mp4 and comparison.png (input | mask | output).",
    )
    demo.add_argument("--out", type=Path, default=Path("fused_inpaint_demo"), metavar="DIR")
    demo.add_argument("--frames", type=positive, default=24, help="clip length")
    demo.add_argument("--width", type=positive, default=320, help="frame width in pixels")
    demo.add_argument(
        "--generated", action="store_true", help="use the generated clip even if a real one is"
    )
    add_pipeline_options(demo)
    demo.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    clip = demo_clip.load_clip(args.frames, args.width, generated=args.generated)
    holes = demo_clip.moving_mask(len(clip.frames), clip.frames.shape[1:3])
    try:
        args.out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create {args.out}: {error.strerror}") from None
    inpainter = make_inpainter(args, args.mode, args.flow)
    paths = {name: args.out / name for name in ("input.mp4", "mask.mp4", "output.mp4")}
    with io.VideoWriter(paths["input.mp4"], clip.fps) as writer:
        for frame in clip.frames:
            writer.write(frame)
    with io.VideoWriter(paths["mask.mp4"], clip.fps) as writer:
        for hole in holes:
            writer.write(io.mask_frame(hole))
    middle = len(clip.frames) // 2
    start = time.perf_counter()
    with io.VideoWriter(paths["output.mp4"], clip.fps) as writer:
        inpainted = inpainter.stream(clip.frames, holes)
        for index, frame in enumerate(with_progress(inpainted, len(holes), "demo")):
            writer.write(frame)
            if index == middle:
                middle_output = frame
    rate = writer.count / (time.perf_counter() - start)
    comparison = args.out / "comparison.png"
    io.write_png(
        comparison, demo_clip.side_by_side(clip.frames[middle], holes[middle], middle_output)
    )
    height, width = clip.frames.shape[1:3]
    print(f"clip: {clip.source}, {len(clip.frames)} frames of {width}x{height}")
    print(f"inpainted at {rate:.1f} frames/s on {inpainter.device} ({inpainter.dtype})")
    for path in (*paths.values(), comparison):
        print(f"wrote {path}")
    return 0
