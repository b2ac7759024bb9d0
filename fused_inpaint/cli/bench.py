"""``fused-inpaint bench``: runs benchmarks/bench_model.py of a source checkout."""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

from fused_inpaint.cli.common import UsageError

BENCH_SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_model.py"


def add_parser(commands) -> None:
    bench = commands.add_parser(
        "bench",
        help="measure the model's throughput",
        description="Runs benchmarks/bench_model.py: frames/s and peak GPU memory.",
    )
    bench.add_argument("--quick", action="store_true", help="one resolution, as a smoke test")
    bench.add_argument("--out", type=Path, metavar="DIR", help="results root")
    bench.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    if not BENCH_SCRIPT.is_file():
        raise UsageError(
            f"bench runs benchmarks/bench_model.py of a source checkout: no {BENCH_SCRIPT}"
        )
    options = ["--quick"] if args.quick else []
    options += ["--out", str(args.out)] if args.out else []
    return subprocess.call([sys.executable, str(BENCH_SCRIPT), *options])
