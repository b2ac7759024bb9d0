"""``fused-inpaint``: remove the masked regions of a video from the command line.

  fused-inpaint run INPUT --mask MASK -o OUTPUT   inpaint a video file or frame folder
  fused-inpaint track INPUT --box X,Y,W,H -o MASKS  an object's mask on every frame
  fused-inpaint demo                              inpaint a short clip, no network needed
  fused-inpaint bench                             the model's throughput (bench_model.py)
  fused-inpaint eval                              quality on real clips against OpenCV Telea
  fused-inpaint train -o DIR                      train on synthetic clips (torchrun: DDP)
  fused-inpaint studio [INPUT]                    a page in the browser: track and remove
  fused-inpaint batch MANIFEST                    many videos on Ray workers (extra: batch)

One module per command, each with ``add_parser(commands)``, which sets the parser's
``handler``. Errors in what the user gave (files, sizes, counts, options) end in one line
on stderr and a non-zero exit status; an output is either complete or absent.
"""

from __future__ import annotations

import argparse
import signal
import sys
import threading
import warnings

import torch

from fused_inpaint import __version__, io
from fused_inpaint.cli import batch, bench, demo, evaluation, run, studio, track, train
from fused_inpaint.cli.common import PROG, STOP_SIGNALS, UsageError, one_line

COMMANDS = (run, track, demo, bench, evaluation, train, studio, batch)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Video inpainting with fused CUDA/Triton kernels."
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for module in COMMANDS:
        module.add_parser(commands)
    return parser


def _interrupt(signum, frame) -> None:
    raise KeyboardInterrupt


def _show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    print(f"{PROG}: warning: {one_line(message)}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    """Runs the command line ``argv`` (default: sys.argv[1:]); returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit:  # --help, or a usage error argparse already printed
        return exit.code if isinstance(exit.code, int) else 2
    in_main_thread = threading.current_thread() is threading.main_thread()
    # A terminated run unwinds like an interrupted one, so no partial output stays behind.
    previous = {s: signal.signal(s, _interrupt) for s in STOP_SIGNALS} if in_main_thread else {}
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")  # each warning once, as one line
            warnings.showwarning = _show_warning
            return args.handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except (UsageError, io.MediaError, ValueError, OSError, torch.OutOfMemoryError) as error:
        print(f"{PROG}: error: {one_line(error)}", file=sys.stderr)
        return 1
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


__all__ = ["UsageError", "build_parser", "main"]
