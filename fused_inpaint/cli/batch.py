"""``fused-inpaint batch MANIFEST``: many videos, and long ones in segments, on Ray workers."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import torch

from fused_inpaint import io
from fused_inpaint.batch import ManifestError, read_manifest, rows_from_folders, summary
from fused_inpaint.batch.worker import INPAINTER_OPTIONS
from fused_inpaint.cli.common import (
    DTYPES,
    UsageError,
    add_pipeline_options,
    check_frame_rate,
    non_negative,
    positive,
)
from fused_inpaint.pipeline import inpainter as inpainting
from fused_inpaint.tracking import DEFAULT_DILATE_TEXT

DEFAULT_SEGMENT = 3000  # frames: 2 minutes at 25 fps, a few percent of it context
INSTALL = 'the batch command runs on Ray: pip install "fused_inpaint[batch]" (or pip install ray)'


def add_parser(commands) -> None:
    batch = commands.add_parser(
        "batch",
        help="inpaint many videos on Ray workers",
        description="Inpaints every row of MANIFEST (CSV or JSON Lines: input, mask or box, "
        "output, and any of mode, flow, chunk, overlap, lookahead, max_age, dis_preset, "
        "dilate, fps), or every video of --videos with the mask of the same name in "
        "--masks, on Ray workers: an embedded Ray on this machine, or the cluster at "
        "--address. Rows whose output exists are skipped; a summary of every row is "
        "written as JSON.",
    )
    batch.add_argument("manifest", type=Path, nargs="?", metavar="MANIFEST", help="rows to run")
    batch.add_argument("--videos", type=Path, help="a folder of videos (or frame folders)")
    batch.add_argument("--masks", type=Path, help="with --videos: the folder of their masks")
    batch.add_argument("-o", "--output", type=Path, help="with --videos: the output folder")
    batch.add_argument(
        "--ext",
        default=".mp4",
        choices=(*io.VIDEO_EXTENSIONS, "png"),
        help="with --videos: the outputs' kind, png for PNG folders (default: %(default)s)",
    )
    batch.add_argument(
        "--summary", type=Path, help="summary file (default: MANIFEST.summary.json, or "
        "summary.json in the output folder)",
    )  # fmt: skip
    batch.add_argument(
        "--address", help="the Ray cluster to join: auto, or ray://HOST:PORT (default: start "
        "Ray on this machine)",
    )  # fmt: skip
    batch.add_argument("--cpus", type=positive, help="CPUs of the Ray started here (default: all)")
    batch.add_argument(
        "--workers", type=positive, help="workers (default: one per GPU, else per CPU share)"
    )
    batch.add_argument(
        "--cpus-per-worker", type=positive, default=1, metavar="N",
        help="CPUs a worker holds: its DIS and network threads (default: %(default)s)",
    )  # fmt: skip
    batch.add_argument(
        "--gpus-per-worker", type=float, metavar="N",
        help="GPUs a worker holds (default: 1 where the cluster has GPUs, else 0)",
    )  # fmt: skip
    batch.add_argument(
        "--segment", type=non_negative, default=DEFAULT_SEGMENT, metavar="FRAMES",
        help="a clip longer than this is cut into segments of about this many frames, run "
        "on different workers and joined (0: never; default: %(default)s)",
    )  # fmt: skip
    batch.add_argument(
        "--retries", type=non_negative, default=2,
        help="times a task whose worker died is run again (default: %(default)s)",
    )  # fmt: skip
    batch.add_argument(
        "--dilate",
        type=non_negative,
        metavar="N",
        help=f"grow the masks by N pixels (default: 0 for masks; for boxes {DEFAULT_DILATE_TEXT})",
    )
    batch.add_argument("--fps", type=float, help="frame rate of video outputs (default: input's)")
    add_pipeline_options(batch)
    batch.set_defaults(handler=command)


def _rows(args: argparse.Namespace):
    if (args.manifest is None) == (args.videos is None):
        raise UsageError("give a MANIFEST or --videos DIR --masks DIR -o DIR (one of them)")
    try:
        if args.manifest is not None:
            return read_manifest(args.manifest), args.summary or args.manifest.with_name(
                f"{args.manifest.name}.summary.json"
            )
        if args.masks is None or args.output is None:
            raise UsageError("--videos needs --masks and -o/--output")
        ext = "" if args.ext == "png" else args.ext
        rows = rows_from_folders(args.videos, args.masks, args.output, ext)
        return rows, args.summary or args.output / "summary.json"
    except ManifestError as error:
        raise UsageError(str(error)) from None


def _settings(args: argparse.Namespace) -> dict:
    check_frame_rate(args.fps)
    if args.weights is not None and not args.weights.is_file():
        raise UsageError(f"weights file not found: {args.weights}")
    inpainting.schedule(args.mode, args.chunk, args.overlap, args.lookahead, args.max_age)
    names = (*INPAINTER_OPTIONS, "dilate")
    return {name: getattr(args, name) for name in names} | {"fps": args.fps}


def _device_type(name: str | None) -> str | None:
    """The type of ``--device`` (checked here; whether the workers have one, there)."""
    if name is None:
        return None
    try:
        kind = torch.device(name).type
    except RuntimeError:
        raise UsageError(f"unknown device {name!r}") from None
    if kind not in ("cpu", "cuda"):
        raise UsageError(f"--device {name}: fused-inpaint runs on cpu or cuda")
    return kind


def command(args: argparse.Namespace) -> int:
    # The command line is checked before Ray is looked for: a user without it learns what
    # is wrong with the command as well as what to install.
    settings = _settings(args)
    on_cpu = _device_type(args.device) == "cpu"
    gpus = args.gpus_per_worker
    if gpus is not None and not (math.isfinite(gpus) and gpus >= 0):
        raise UsageError(f"--gpus-per-worker must be >= 0, got {gpus:g}")
    rows, summary_path = _rows(args)
    try:
        import ray

        from fused_inpaint.batch import cluster
    except ModuleNotFoundError as error:
        if error.name != "ray":
            raise
        raise UsageError(INSTALL) from None
    if args.videos is not None:
        args.output.mkdir(parents=True, exist_ok=True)
    started_here = not ray.is_initialized()
    cluster.start(args.address, args.cpus)
    try:
        if gpus is None:
            gpus = 0 if on_cpu or not ray.cluster_resources().get("GPU") else 1
        workers = args.workers or cluster.default_workers(args.cpus_per_worker, gpus)
        worker_options = dict(weights=args.weights, device=args.device)
        worker_options["dtype"] = DTYPES.get(args.dtype)
        batch = cluster.Batch(
            rows, settings, workers=workers, cpus=args.cpus_per_worker, gpus=gpus,
            segment=args.segment, retries=args.retries, worker_options=worker_options,
            threads=args.threads,
        )  # fmt: skip
        start = time.perf_counter()
        try:
            outcomes = batch.run()
        finally:
            report = summary(batch.outcomes, time.perf_counter() - start)
            io.write_text(summary_path, json.dumps(report, indent=2) + "\n")
    finally:
        if started_here:
            ray.shutdown()
    for outcome in outcomes:
        if outcome.status == "failed":
            print(f"failed: {outcome.row.input}: {outcome.reason}", file=sys.stderr)
    print(
        f"{report['done']} done, {report['skipped']} skipped, {report['failed']} failed: "
        f"{report['frames']} frames in {report['seconds']:.1f} s; summary in {summary_path}"
    )
    return 1 if report["failed"] else 0
