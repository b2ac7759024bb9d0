"""The pipeline's quality on synthetic clips, where the truth is known: the check that a
change of speed or memory left the output as it was, and the measure that chooses
between fills.

Script: python benchmarks/bench_profile_quality.py [--modes offline,stream] [--seeds N]
      [--first-seed S] [--preset P] [--length T] [--size WxH] [--no-steady-fill]
      [--json FILE]
      renders clips of ``fused_inpaint.data`` (the scene without the object is the
      truth): the object's own mask ("object"), a moving hole and a static one (the
      data's stroke and blob holes) over the clip without the object; prints PSNR in the
      hole and the warping error in the hole (as ``fused-inpaint eval``: along DIS's flow
      on the truth) per kind of hole, mode and Telea (OpenCV, radius 3, frame by frame),
      and frames/s, and writes them to FILE as JSON when asked.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import warnings

import cv2
import numpy as np

from fused_inpaint import evaluate
from fused_inpaint.data import moving_holes, object_removal_clip
from fused_inpaint.pipeline import Inpainter

KINDS = ("object", "moving", "static")


def clip(kind: str, seed: int, length: int, height: int, width: int):
    """(frames (T, H, W, 3) uint8, masks (T, H, W) bool, truth (T, H, W, 3) uint8)."""
    scene = object_removal_clip(seed, length, height, width)
    if kind == "object":
        return scene.frames, scene.mask, scene.background
    holes = moving_holes(length, height, width, seed, moving=kind == "moving").numpy()
    return scene.background, holes, scene.background


def psnr_in_hole(out: np.ndarray, truth: np.ndarray, masks: np.ndarray) -> float:
    error = (out.astype(np.float64) - truth)[masks]
    return float(10 * np.log10(255**2 / max((error**2).mean(), 1e-12)))


def telea(frames: np.ndarray, masks: np.ndarray) -> np.ndarray:
    return np.stack(
        [
            cv2.inpaint(f, m.astype(np.uint8), 3, cv2.INPAINT_TELEA)
            for f, m in zip(frames, masks, strict=True)
        ]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="pipeline quality on synthetic clips")
    parser.add_argument("--modes", default="offline,stream")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--preset", default="medium")
    parser.add_argument("--length", type=int, default=30)
    parser.add_argument("--size", default="432x240", help="WxH")
    parser.add_argument("--no-steady-fill", action="store_true", help="each frame's own fill")
    parser.add_argument("--json")
    args = parser.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        models = {
            m: Inpainter(
                device="cpu", mode=m, dis_preset=args.preset, steady_fill=not args.no_steady_fill
            )
            for m in args.modes.split(",")
        }
    results: dict[str, dict[str, list[float]]] = {}
    warping: dict[str, dict[str, list[float]]] = {}
    seconds: dict[str, float] = dict.fromkeys(models, 0.0)
    frames_total = 0
    for kind in KINDS:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            frames, masks, truth = clip(kind, seed, args.length, height, width)
            frames_total += len(frames)
            flow, trusted = evaluate.truth_motion(truth)
            region = evaluate.warp_region(trusted, flow, masks)
            row, warp_row = results.setdefault(kind, {}), warping.setdefault(kind, {})
            outputs = {"telea": telea(frames, masks)}
            for mode, model in models.items():
                start = time.perf_counter()
                outputs[mode] = model(frames, masks)
                seconds[mode] += time.perf_counter() - start
            for method, out in outputs.items():
                row.setdefault(method, []).append(psnr_in_hole(out, truth, masks))
                warp_row.setdefault(method, []).append(evaluate.warping_error(out, flow, region))
    methods = ["telea", *models]
    for title, table, digits in (("PSNR in the hole (dB)", results, 2),
                                 ("warping error in the hole", warping, 1)):  # fmt: skip
        print(f"{title}\n\n| holes | " + " | ".join(methods) + " |")
        print("|---|" + "--:|" * len(methods))
        rows = {kind: [np.mean(row[m]) for m in methods] for kind, row in table.items()}
        rows["mean"] = np.mean(list(rows.values()), axis=0)
        for kind, values in rows.items():
            print(f"| {kind} | " + " | ".join(f"{v:.{digits}f}" for v in values) + " |")
        print()
    print("frames/s: " + ", ".join(f"{m} {frames_total / s:.1f}" for m, s in seconds.items()))
    if args.json:
        with open(args.json, "w") as file:
            summary = {"psnr": results, "warping_error": warping}
            json.dump({**summary, "seconds": seconds, "frames": frames_total}, file)
    return 0


if __name__ == "__main__":
    sys.exit(main())
