"""``fused-inpaint track INPUT --box X,Y,W,H -o MASKS``: an object's mask on every frame,
tracked from a box or a rough mask on one frame, or on several (``--box X,Y,W,H@K``);
``run --box`` tracks, then inpaints."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from fused_inpaint import io
from fused_inpaint.cli.common import UsageError, check_output, non_negative, with_progress
from fused_inpaint.tracking import DEFAULT_DILATE_TEXT, DEFAULT_WINDOW, Tracker, unmasked_spans
from fused_inpaint.tracking.keyframes import as_box, clip_box


def add_box_options(parser: argparse.ArgumentParser, seed: bool, box_group=None) -> None:
    """--box (repeatable; in ``box_group`` if given), --frame, --window, and --seed where
    ``seed``."""
    (box_group or parser).add_argument(
        "--box",
        action="append",
        metavar="X,Y,W,H[@K]",
        help="a box around an object on frame K, in pixels from the top left corner; one "
        "--box per object and keyframe: on each keyframe the n-th --box marks the n-th "
        "object, and each frame takes an object's mask from the nearer keyframe (mark an "
        "object again where the track lost it or it came back); @K: this box's frame",
    )
    parser.add_argument(
        "--frame",
        type=non_negative,
        default=0,
        metavar="K",
        help="the frame of the boxes without @K (default: 0)",
    )
    if seed:
        parser.add_argument(
            "--seed",
            action="append",
            metavar="MASK.png[@K]",
            help="a rough mask of an object on frame K (nonzero on it: strokes or an "
            "outline), after the boxes of its frame",
        )
    parser.add_argument(
        "--window",
        type=non_negative,
        default=DEFAULT_WINDOW,
        metavar="FRAMES",
        help="track back from frame K at most this many frames; earlier frames get no mask "
        "(default: %(default)s)",
    )


def marks(args: argparse.Namespace) -> list[tuple[str, str, str, int]]:
    """(option, its text, the value, its frame) of each --box, then each --seed: "VALUE@K"
    is VALUE on frame K, a text without a trailing @K is on --frame."""
    given = [("--box", text) for text in args.box or ()]
    given += [("--seed", text) for text in getattr(args, "seed", None) or ()]
    found = []
    for option, text in given:
        value, at, frame = text.rpartition("@")
        if not (at and frame.isdigit()):
            value, frame = text, str(args.frame)
        found.append((option, text, value, int(frame)))
    return found


def _box(text: str) -> tuple[int, int, int, int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise UsageError(f"--box {text}: give X,Y,W,H as four integers") from None
    if len(values) != 4:
        raise UsageError(f"--box {text}: give X,Y,W,H as four integers")
    return as_box(values, "--box")


def _seed(path: Path, input_path: Path, size: tuple[int, int]) -> np.ndarray:
    seed = io.read_hole(path) if path.is_file() else None
    if seed is None:
        raise UsageError(f"--seed {path}: no such image file")
    if seed.shape != size:
        raise UsageError(
            f"--seed {path} is {seed.shape[1]}x{seed.shape[0]} but the frames of "
            f"{input_path} are {size[1]}x{size[0]}"
        )
    if not seed.any():
        raise UsageError(f"--seed {path} is empty: it marks no pixel of the object")
    return seed


def tracker_for(args: argparse.Namespace, frames, dilate: int | None) -> Tracker:
    """The Tracker of the box options, checked against ``frames`` (an io reader): boxes
    inside the frame and not empty, keyframes within the clip, seeds of the frames' size."""
    count = frames.count or frames.estimated_count
    keyframes: dict[int, list] = {}
    for option, text, value, frame in marks(args):
        if count is not None and frame >= count:
            where = "--frame" if value == text else f"{option} {text}: frame"
            raise UsageError(f"{where} {frame} is past the end of {args.input} ({count} frames)")
        if option == "--box":
            mark = clip_box(_box(value), frames.size, "--box")
        else:
            mark = _seed(Path(value), args.input, frames.size)
        keyframes.setdefault(frame, []).append(mark)
    if not keyframes:
        raise UsageError("nothing to track: give --box (or --seed)")
    return Tracker(keyframes, dilate=dilate, window=args.window)


def tracked_masks(
    args: argparse.Namespace, frames, dilate: int | None, masked: list[bool]
) -> Iterator[np.ndarray]:
    """The tracked (H, W) bool mask of each of ``frames`` (an io reader of INPUT, read
    for the track alone); whether each has a pixel is appended to ``masked`` as it is
    made."""
    tracker = tracker_for(args, frames, dilate)  # bad boxes said now, not mid-run

    def noted() -> Iterator[np.ndarray]:
        for mask in tracker.stream(frames):
            masked.append(bool(mask.any()))
            yield mask

    return noted()


def say_unmasked(masked: list[bool]) -> None:
    """Prints the frames the track left without a mask, where there are any."""
    spans = unmasked_spans(masked)
    if spans:
        frames = ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in spans)
        print(
            f"no mask on frames {frames}: the object went out of the frame, was hidden or "
            "was lost there (a track picks it up again only as it comes back in over an edge "
            "it went out by: where it is back otherwise, mark it there too, with "
            "--box X,Y,W,H@K or in the studio)"
        )


def add_parser(commands) -> None:
    track = commands.add_parser(
        "track",
        help="track an object from a box and write its mask on every frame",
        description="Tracks the objects in the boxes (or rough masks) on their keyframes "
        "through INPUT, forward and back, and writes one mask per frame to MASKS, which run --mask "
        f"reads: MASKS with a video extension ({', '.join(io.VIDEO_EXTENSIONS)}) is a video, "
        "any other a new folder of PNGs 00000.png, ... (white on the objects).",
    )
    track.add_argument("input", type=Path, metavar="INPUT", help="video file or folder of frames")
    add_box_options(track, seed=True)
    track.add_argument(
        "-o", "--output", required=True, type=Path, metavar="MASKS", help="mask video or folder"
    )
    track.add_argument(
        "--dilate",
        type=non_negative,
        metavar="N",
        help=f"grow the masks by N pixels (default: {DEFAULT_DILATE_TEXT}; measured: a mask "
        "that hugs the object leaves its border in the video)",
    )
    track.add_argument(
        "--overwrite", action="store_true", help="replace MASKS if it exists (never the input)"
    )
    track.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    seeds = [Path(value) for option, _, value, _ in marks(args) if option == "--seed"]
    inputs = {"INPUT": args.input, **{f"--seed {path}": path for path in seeds}}
    check_output(args.output, inputs, args.overwrite)
    frames = io.open_frames(args.input)
    masked: list[bool] = []
    masks = tracked_masks(args, frames, args.dilate, masked)
    writer = io.open_writer(args.output, frames.fps, args.overwrite)
    start = time.perf_counter()
    with writer:
        for mask in with_progress(masks, frames.estimated_count, "track"):
            writer.write(io.mask_frame(mask))
    rate = writer.count / (time.perf_counter() - start)
    print(f"wrote {writer.count} masks to {args.output} ({rate:.1f} frames/s)")
    say_unmasked(masked)
    return 0
