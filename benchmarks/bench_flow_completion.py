"""Flow completion measured on synthetic clips, whose flow is exact: the choice of how the
flow is completed in the holes (what DIS sees in the hole, how wide a band around it is
replaced, and whether the flow of the neighbouring frames is carried in).

Script: python benchmarks/bench_flow_completion.py [--clips N] [--length T] [--size WxH]
      [--variants a,b] [--out FILE]
      renders ``fused_inpaint.data.make_clip`` clips (camera and objects moving up to
      1.5% and 2% of the frame's longer side a frame, objects passing through the holes);
      for each variant, the pipeline's completed flows (``Inpainter.completed_flows``,
      DIS medium preset on the frames as filmed) against the exact flow: end-point error
      in the hole and in a band of BAND pixels around it; then the pipeline's output
      (offline mode, the same flows) against the truth: PSNR in the hole. Prints a
      Markdown table and writes it to FILE when asked. On a shared machine run it with
      OMP_NUM_THREADS=1: torch's threads then wait on each other far longer than they
      compute.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
import warnings
from dataclasses import dataclass, field

import cv2
import numpy as np
import torch

from fused_inpaint import evaluate
from fused_inpaint.data import ClipConfig, dilate, make_clip
from fused_inpaint.models.network import smooth_fill
from fused_inpaint.pipeline import Inpainter, flow
from fused_inpaint.pipeline.flow import DISFlow, FrameInput, affine_fit

SEED = 123
BAND = 8  # pixels around the hole where the border's error is measured
CAMERA_SPEED, OBJECT_SPEED = 0.015, 0.02


def pull_push_gray(gray: np.ndarray, hole: np.ndarray) -> np.ndarray:
    """The hole of ``gray`` (H, W) uint8 filled by pull-push over the whole frame."""
    image = torch.from_numpy(gray)[None, None].float()
    filled = smooth_fill(image, torch.from_numpy(hole)[None, None])
    return filled[0, 0].round().to(torch.uint8).numpy()


def opencv_gray(method: int):
    def fill(gray: np.ndarray, hole: np.ndarray) -> np.ndarray:
        return cv2.inpaint(gray, hole.astype(np.uint8), 3, method)

    return fill


GRAY_FILLS = {
    "pull-push": pull_push_gray,
    "telea": opencv_gray(cv2.INPAINT_TELEA),
    "navier-stokes": opencv_gray(cv2.INPAINT_NS),
}


class MeasuredDIS(DISFlow):
    """DIS with the hole filled by one of GRAY_FILLS before it is estimated ("pipeline":
    as ``DISFlow`` fills it, on the hole's neighbourhood, the inside at half resolution
    from DIS_HALF_SIDE)."""

    def __init__(self, gray_fill: str):
        super().__init__(torch.device("cpu"), "medium", threads=1)
        self._fill = None if gray_fill == "pipeline" else GRAY_FILLS[gray_fill]

    def _gray(self, frame: FrameInput) -> np.ndarray:
        if self._fill is None:
            return super()._gray(frame)
        gray = self._cv2.cvtColor(frame.rgb, self._cv2.COLOR_RGB2GRAY)
        return self._fill(gray, frame.hole) if frame.hole.any() else gray


@dataclass(frozen=True)
class Variant:
    text: str
    gray_fill: str = "telea"
    margin: int = flow.COMPLETION_MARGIN
    temporal: bool = False  # Inpainter(temporal_flow=...)
    half_fill_side: int = flow.HALF_FILL_SIDE  # regions filled at half resolution from
    moving_margin: float = flow.MOVING_MARGIN  # band pixels per pixel the hole moved
    thin_margin: float = flow.THIN_MARGIN  # the band at most this times the hole's inradius
    dis_half_side: int = flow.DIS_HALF_SIDE  # DIS's fill ("pipeline") halved from this side


VARIANTS = {
    "before": Variant("pull-push fill for DIS, band 4 (the previous default)", "pull-push", 4),
    "ns": Variant(
        "Navier-Stokes fill for DIS, band 4, or 1.25 per pixel the hole moved when wider, "
        "at most half the hole's inradius",
        "navier-stokes",
    ),
    "dis-256": Variant(
        "ns as the pipeline fills it: on the hole's neighbourhood, halved while 256 pixels or more",
        "pipeline",
        dis_half_side=256,
    ),
    "dis-128": Variant("dis-256, halved while 128 pixels or more", "pipeline", dis_half_side=128),
    "ns-fixed": Variant("ns, band 4 however the hole moves", "navier-stokes", moving_margin=0),
    "ns-thick": Variant(
        "ns, the band as wide as the hole moved however thin the hole",
        "navier-stokes",
        thin_margin=10**9,
    ),
    "telea-2": Variant("Telea fill for DIS, band 2", "telea", 2),
    "telea-4": Variant("Telea fill for DIS, band 4", "telea", 4),
    "telea-8": Variant("Telea fill for DIS, band 8", "telea", 8),
    "telea-4-temporal": Variant("telea-4, then temporal completion", "telea", 4, True),
    "ns-temporal": Variant(
        "ns, then temporal completion (temporal_flow=True)", "navier-stokes", 4, True
    ),
    "ns-full": Variant(
        "ns, the smooth fill at full resolution always", "navier-stokes", 4, half_fill_side=10**9
    ),  # fmt: skip
    "ns-512": Variant(
        "ns, the smooth fill halved while 512 pixels or more",
        "navier-stokes",
        4,
        half_fill_side=512,
    ),  # fmt: skip
    "ns-128": Variant(
        "ns, the smooth fill halved while 128 pixels or more",
        "navier-stokes",
        4,
        half_fill_side=128,
    ),  # fmt: skip
    "ns-60": Variant(
        "ns, the smooth fill halved while 60 pixels or more", "navier-stokes", 4, half_fill_side=60
    ),
}


@contextlib.contextmanager
def configured(variant: Variant):
    """The pipeline's band around the hole and the fill's resolution set as ``variant``
    says, while in the block."""
    names = ("COMPLETION_MARGIN", "HALF_FILL_SIDE", "MOVING_MARGIN", "THIN_MARGIN", "DIS_HALF_SIDE")
    saved = [getattr(flow, name) for name in names]
    wanted = (variant.margin, variant.half_fill_side, variant.moving_margin,
              variant.thin_margin, variant.dis_half_side)  # fmt: skip
    for name, value in zip(names, wanted, strict=True):
        setattr(flow, name, value)
    try:
        yield
    finally:
        for name, value in zip(names, saved, strict=True):
            setattr(flow, name, value)


@dataclass
class Scores:
    hole: list = field(default_factory=lambda: [0.0, 0])  # EPE sum, pixels
    band: list = field(default_factory=lambda: [0.0, 0])
    moving: list = field(default_factory=lambda: [0.0, 0])  # in the hole, unlike the frame
    psnr: list = field(default_factory=list)
    seconds: float = 0.0  # in the completed flows
    pipeline_seconds: float = 0.0


def add_epe(scores: Scores, flows: list[tuple], clip: dict) -> None:
    holes = clip["holes"].bool()
    for k, (forward, backward) in enumerate(flows):
        for estimate, name, frame in ((forward, "forward", k), (backward, "backward", k + 1)):
            exact = clip[f"flow_{name}"][k : k + 1]
            valid = clip[f"valid_{name}"][k : k + 1].bool()
            hole = holes[frame : frame + 1]
            band = dilate(hole, BAND) & ~hole
            error = (estimate - exact).norm(dim=1, keepdim=True)
            frame_motion = affine_fit(exact, torch.ones_like(hole))
            unlike = (exact - frame_motion).norm(dim=1, keepdim=True) > 1
            for total, where in (
                (scores.hole, hole & valid),
                (scores.band, band & valid),
                (scores.moving, hole & valid & unlike),
            ):
                total[0] += float(error[where].sum())
                total[1] += int(where.sum())


def psnr_in_hole(output: np.ndarray, truth: np.ndarray, holes: np.ndarray) -> float:
    error = (output.astype(np.float64) - truth)[holes]
    return float(10 * np.log10(255**2 / max((error**2).mean(), 1e-12)))


def uint8(video: torch.Tensor) -> np.ndarray:
    return (video * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1).numpy()


def kind_of(clip: dict) -> str:
    if not torch.equal(clip["frames"], clip["target"]):
        return "object"
    return "static" if bool((clip["holes"] == clip["holes"][:1]).all()) else "moving"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="flow completion on synthetic clips")
    parser.add_argument("--clips", type=int, default=6)
    parser.add_argument("--first", type=int, default=0, help="index of the first clip")
    parser.add_argument("--length", type=int, default=24)
    parser.add_argument("--size", default="432x240", help="WxH")
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--out")
    args = parser.parse_args(argv)
    width, height = map(int, args.size.split("x"))
    variants = {name: VARIANTS[name] for name in args.variants.split(",")}
    config = ClipConfig(args.length, height, width, camera_speed=CAMERA_SPEED,
                        object_speed=OBJECT_SPEED, seed=SEED)  # fmt: skip
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inpainters = {t: Inpainter(device="cpu", temporal_flow=t) for t in (False, True)}
    scores = {name: Scores() for name in variants}
    telea, kinds = [], []
    for index in range(args.first, args.first + args.clips):
        clip = make_clip(index, config)
        frames, truth = uint8(clip["frames"]), uint8(clip["target"])
        holes = clip["holes"][:, 0].bool().numpy()
        kinds.append(kind_of(clip))
        telea.append(psnr_in_hole(evaluate.telea(frames, holes), truth, holes))
        for name, variant in variants.items():
            inpainter = inpainters[variant.temporal]
            with configured(variant):
                inpainter.flow = MeasuredDIS(variant.gray_fill)
                start = time.perf_counter()
                flows = list(inpainter.completed_flows(frames, holes))
                scores[name].seconds += time.perf_counter() - start
                add_epe(scores[name], flows, clip)
                inpainter.flow = MeasuredDIS(variant.gray_fill)
                start = time.perf_counter()
                output = inpainter(frames, holes)
                scores[name].pipeline_seconds += time.perf_counter() - start
            scores[name].psnr.append(psnr_in_hole(output, truth, holes))
            print(f"clip {index} ({kinds[-1]}) {name}: {scores[name].psnr[-1]:.2f} dB", flush=True)
    table = report(variants, scores, telea, kinds, args)
    print(table)
    if args.out:
        with open(args.out, "w") as file:
            file.write(table)
    return 0


def report(variants, scores, telea, kinds, args) -> str:
    first = next(iter(scores.values()))
    lines = [
        "| variant | EPE in the hole (px) | of which moving unlike the frame (px) "
        "| EPE within 8 px of the hole (px) | PSNR in the hole (dB) "
        "| vs Telea (dB) | flow time (ratio) | pipeline time (ratio) |",
        "|---|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for name, variant in variants.items():
        s = scores[name]
        lines.append(
            f"| {name}: {variant.text} | {s.hole[0] / s.hole[1]:.3f} "
            f"| {s.moving[0] / max(s.moving[1], 1):.2f} ({s.moving[1] / s.hole[1]:.0%}) "
            f"| {s.band[0] / s.band[1]:.3f} "
            f"| {np.mean(s.psnr):.2f} | {np.mean(s.psnr) - np.mean(telea):+.2f} "
            f"| {s.seconds / first.seconds:.2f} "
            f"| {s.pipeline_seconds / first.pipeline_seconds:.2f} |"
        )
    per_clip = ["", "| clip | kind | Telea | " + " | ".join(variants) + " |",
                "|---|---|--:|" + "--:|" * len(variants)]  # fmt: skip
    for index, kind in enumerate(kinds):
        cells = [f"{scores[name].psnr[index]:.2f}" for name in variants]
        number = args.first + index
        per_clip.append(f"| {number} | {kind} | {telea[index]:.2f} | " + " | ".join(cells) + " |")
    setup = (
        f"{args.clips} clips of `make_clip(i, ClipConfig({args.length}, {args.size}, "
        f"camera_speed={CAMERA_SPEED}, object_speed={OBJECT_SPEED}, seed={SEED}))`, "
        f"i = {args.first}..{args.first + args.clips - 1}; Telea: {np.mean(telea):.2f} dB"
    )
    return setup + "\n\n" + "\n".join(lines + per_clip) + "\n"


if __name__ == "__main__":
    sys.exit(main())
