"""Seams under changing light: the pipeline with and without the gradient-domain blend of
the propagated pixels (``Inpainter(seams=True)``), on synthetic clips whose exposure
drifts, and on the same clips without a drift.

Script: python benchmarks/bench_seams.py [--seeds N] [--drifts 0,0.15] [--modes offline]
      [--out DIR]
      the clips of ``bench_profile_quality`` (an object's own mask, a moving and a static
      hole; 432x240, 20 frames), each frame and its truth multiplied by the camera's gain
      1 + drift * sin(...), a slow swing of random phase and speed (auto-exposure); PSNR
      in the hole against the truth, blend off and on; writes DIR/<device>/seams.md.
"""

from __future__ import annotations

import argparse
import sys
import warnings

import bench_profile_quality as quality
import common
import numpy as np

from fused_inpaint.pipeline import Inpainter

NAME = "seams"
LENGTH, SIZE = 20, (240, 432)
SEED = 7  # the drifts' phases and speeds


def drifted(video: np.ndarray, gain: np.ndarray) -> np.ndarray:
    """video (T, H, W, 3) uint8 under the per-frame ``gain`` (T,)."""
    scaled = video.astype(np.float32) * gain[:, None, None, None]
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="the seams' blend under changing light")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--drifts", default="0,0.15")
    parser.add_argument("--modes", default="offline")
    parser.add_argument("--out", default=common.RESULTS_DIR)
    args = parser.parse_args(argv)
    drifts = [float(d) for d in args.drifts.split(",")]
    lines = [common.table_line(["mode", "exposure drift", "holes", "off (dB)", "on (dB)",
                                "on - off (dB)", "per clip"]),
             "|---|--:|---|--:|--:|--:|---|"]  # fmt: skip
    warnings.simplefilter("ignore")
    for mode in args.modes.split(","):
        models = {on: Inpainter(device="cpu", mode=mode, seams=on) for on in (False, True)}
        for drift in drifts:
            rng = np.random.default_rng(SEED)
            for kind in quality.KINDS:
                scores: dict[bool, list[float]] = {False: [], True: []}
                for seed in range(args.seeds):
                    frames, masks, truth = quality.clip(kind, seed, LENGTH, *SIZE)
                    speed, phase = rng.uniform(1.5, 3.0) * np.pi, rng.uniform(0, 2 * np.pi)
                    gain = 1 + drift * np.sin(np.linspace(0, speed, len(frames)) + phase)
                    frames, truth = drifted(frames, gain), drifted(truth, gain)
                    for on, model in models.items():
                        out = model(frames, masks)
                        scores[on].append(quality.psnr_in_hole(out, truth, masks))
                off, on = np.mean(scores[False]), np.mean(scores[True])
                each = ", ".join(f"{b - a:+.2f}" for a, b in zip(*scores.values(), strict=True))
                cells = [mode, f"{drift:.2f}", kind, f"{off:.2f}", f"{on:.2f}", f"{on - off:+.2f}",
                         each]  # fmt: skip
                print(" | ".join(cells), flush=True)
                lines.append(common.table_line(cells))
    env = common.environment()
    facts = [
        f"clips: `bench_profile_quality.clip(kind, seed, {LENGTH}, {SIZE[0]}, {SIZE[1]})`, "
        f"seeds 0-{args.seeds - 1} of each kind; each frame and its truth times "
        "1 + drift * sin(t * speed + phase), speed 1.5-3 half-turns over the clip, phase "
        f"random (seed {SEED})",
        "`Inpainter(device='cpu', mode=..., seams=False / True)`, DIS medium; PSNR in the "
        "hole against the truth, mean over the clips; per clip: on - off",
    ]
    text = common.header(NAME, env, facts, []) + "\n\n" + "\n".join(lines) + "\n"
    path = common.write_report(args.out, NAME, env, text)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
