"""``fused-inpaint run INPUT --mask MASK -o OUTPUT``: inpaint a video file or frame folder;
with ``--box X,Y,W,H`` instead of ``--mask``, the object in the box, tracked."""

from __future__ import annotations

import argparse
import time

from fused_inpaint import io
from fused_inpaint.cli import live_run
from fused_inpaint.cli.common import (
    UsageError,
    add_pipeline_options,
    check_frame_rate,
    check_output,
    make_inpainter,
    non_negative,
    size_text,
    with_progress,
)
from fused_inpaint.cli.track import add_box_options, say_unmasked, tracked_masks
from fused_inpaint.tracking import DEFAULT_DILATE_TEXT


def add_parser(commands) -> None:
    run = commands.add_parser(
        "run",
        help="inpaint a video or a frame folder",
        description="Inpaints INPUT where MASK is nonzero and writes OUTPUT. OUTPUT with a "
        f"video extension ({', '.join(io.VIDEO_EXTENSIONS)}) is a video at the input's "
        "frame rate; any other OUTPUT is a new folder of lossless PNGs 00000.png, ...",
    )
    run.add_argument(
        "input", type=io.media_name, metavar="INPUT", help="video file, folder of frames or live"
    )
    holes = run.add_mutually_exclusive_group(required=True)
    holes.add_argument(
        "--mask",
        type=io.media_name,
        help="one mask image for every frame, a folder of mask images, or a mask video",
    )
    add_box_options(run, seed=False, box_group=holes)
    run.add_argument("-o", "--output", required=True, type=io.media_name, help="video or folder")
    run.add_argument(
        "--dilate",
        type=non_negative,
        metavar="N",
        help=f"grow the mask by N pixels (default: 0 for --mask; for --box {DEFAULT_DILATE_TEXT})",
    )
    run.add_argument(
        "--fps",
        type=float,
        help="frame rate of a video output (default: the input's; 25 for a frame folder)",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="replace OUTPUT if it exists (never the input)"
    )
    add_pipeline_options(run)
    live_run.add_options(run)
    run.set_defaults(handler=command, mode=None)  # a live input's default mode is stream


def command(args: argparse.Namespace) -> int:
    if args.box:
        live = args.input_format is not None or io.is_live_input(args.input)
        if live or io.is_live_output(args.output):
            raise UsageError("--box tracks a video file or a folder of frames, not a live stream")
    elif live_run.is_live(args):
        return live_run.command(args)
    args.mode = args.mode or "offline"
    check_frame_rate(args.fps)
    if args.box:
        check_output(args.output, {"INPUT": args.input}, args.overwrite)
        masked: list[bool] = []
        masks = tracked_masks(args, io.open_frames(args.input), args.dilate, masked)
        _inpaint(args, io.open_frames(args.input), masks)
        say_unmasked(masked)
        return 0
    args.dilate = args.dilate or 0
    check_output(args.output, {"INPUT": args.input, "--mask": args.mask}, args.overwrite)
    frames = io.open_frames(args.input)
    masks = io.Masks(args.mask, dilate=args.dilate, frame_size=frames.size)
    if masks.size != frames.size:
        raise UsageError(
            f"mask {args.mask} is {size_text(masks.size)} but the frames of {args.input} "
            f"are {size_text(frames.size)}"
        )
    mask_count, frame_count = masks.count, frames.count
    if None in (mask_count, frame_count):  # videos: their headers' counts, checked early
        mask_count, frame_count = masks.estimated_count, frames.estimated_count
    if None not in (mask_count, frame_count) and mask_count != frame_count:
        raise UsageError(
            f"{mask_count} masks in {args.mask} for {frame_count} frames in {args.input}"
        )
    return _inpaint(args, frames, masks.for_inpainter())


def _inpaint(args: argparse.Namespace, frames, masks) -> int:
    """Inpaints ``frames`` (an io reader) under ``masks`` into OUTPUT."""
    writer = io.open_writer(args.output, args.fps or frames.fps, args.overwrite)
    inpainter = make_inpainter(args, args.mode, args.flow)
    start = time.perf_counter()
    with writer:
        inpainted = inpainter.stream(frames, masks)
        for frame in with_progress(inpainted, frames.estimated_count, "inpaint"):
            writer.write(frame)
    rate = writer.count / (time.perf_counter() - start)
    print(f"wrote {writer.count} frames to {args.output} ({rate:.1f} frames/s)")
    return 0
