"""What every command shares: the one-line error, option types, the Inpainter the options
ask for, progress and output safety."""

from __future__ import annotations

import argparse
import signal
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError
from tqdm import tqdm

from fused_inpaint import io
from fused_inpaint.pipeline import MODES, SOURCES, Inpainter
from fused_inpaint.pipeline import inpainter as inpainting
from fused_inpaint.pipeline.flow import DIS_PRESETS
from fused_inpaint.pipeline.inpainter import chosen_device

PROG = "fused-inpaint"
DTYPES = {"float16": torch.float16, "bfloat16": torch.bfloat16, "float32": torch.float32}


# Signals that end a run as Ctrl-C does (its output finalised or removed): a kill, and a
# closed terminal.
STOP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


class UsageError(Exception):
    """A request that cannot be carried out as given; the message says why, in one line."""


def integer(text: str) -> int:
    """An integer, also written as 1e9 or 30.0."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if not value.is_integer():
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}")
    return int(value)


def non_negative(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def positive(text: str) -> int:
    value = integer(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {value}")
    return value


def check_frame_rate(fps: float | None) -> None:
    """--fps, when given, is a rate a video can hold (``io.frame_rate``)."""
    if fps is not None:
        try:
            io.frame_rate(fps, "--fps")
        except ValueError as error:
            raise UsageError(str(error)) from None


def one_line(error: BaseException) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if available)")
    parser.add_argument(
        "--dtype", choices=DTYPES, help="network precision (default: float16 on cuda, else float32)"
    )
    parser.add_argument("--weights", type=Path, help="safetensors weights (default: shipped)")
    parser.add_argument(
        "--dis-preset", choices=DIS_PRESETS, default="medium", help="DIS flow's speed and accuracy"
    )
    parser.add_argument(
        "--threads",
        type=non_negative,
        help="DIS flows computed at once (0: on the main thread; default: CPU count, max 8)",
    )
    parser.add_argument(
        "--max-age",
        type=positive,
        default=inpainting.DEFAULT_MAX_AGE,
        metavar="FRAMES",
        help="the farthest, in frames, a pixel is carried (default: %(default)s)",
    )


def add_pipeline_options(parser: argparse.ArgumentParser) -> None:
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
    parser.add_argument(
        "--seams",
        action="store_true",
        help="blend carried pixels onto each frame's own light (footage whose exposure changes)",
    )
    for name, kind, default, text in (
        ("--lookahead", non_negative, inpainting.DEFAULT_LOOKAHEAD, "stream mode's latency"),
        ("--chunk", positive, inpainting.DEFAULT_CHUNK, "offline mode's chunk"),
        ("--overlap", non_negative, inpainting.DEFAULT_OVERLAP, "offline mode's overlap"),
    ):
        help_text = f"{text} (default: %(default)s)"
        parser.add_argument(name, type=kind, default=default, metavar="FRAMES", help=help_text)
    add_model_options(parser)


def device(name: str | None) -> torch.device | None:
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
    chosen = device(args.device)
    on = chosen_device(chosen).type
    if on == "cpu" and args.dtype not in (None, "float32"):
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
    options.update(seams=getattr(args, "seams", False))
    try:
        return Inpainter(args.weights, chosen, DTYPES.get(args.dtype), **options)
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        what = f"weights {args.weights}" if args.weights else "the network"
        raise UsageError(f"cannot load {what}: {one_line(error)}") from None


def with_progress(frames: Iterable[np.ndarray], total: int | None, label: str):
    """Yields ``frames`` while a progress bar (frames/s) runs on a terminal's stderr."""
    with tqdm(frames, total=total, unit="frame", desc=label, disable=None, leave=False) as bar:
        yield from bar


def size_text(size: tuple[int, int]) -> str:
    return f"{size[1]}x{size[0]}"


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and a.samefile(b)
    except OSError:
        return False


def check_output(output: Path, inputs: dict[str, Path], overwrite: bool) -> None:
    """``output`` is never one of ``inputs`` (name: path) nor a folder that holds one; an
    existing one is replaced only with --overwrite."""
    if output.name in ("", ".", ".."):
        raise UsageError(f"cannot write {output!s}: -o must name a file or a folder of its own")
    for name, path in inputs.items():
        if _same_file(output, path) or output.absolute() == path.absolute():
            raise UsageError(f"cannot write {output}: it is the {name}, which is never replaced")
        if output.resolve() in path.resolve().parents:  # replacing it would delete the input
            raise UsageError(f"cannot write {output}: it holds the {name}, {path}")
    existing = output.exists() and not (output.is_dir() and not any(output.iterdir()))
    if existing and not overwrite:
        raise UsageError(f"{output} exists: add --overwrite to replace it")
