"""``fused-inpaint train -o DIR``: train on synthetic clips (under torchrun: DDP)."""

from __future__ import annotations

import argparse
from pathlib import Path

from fused_inpaint import train as training
from fused_inpaint.cli.common import UsageError, device, positive


def add_parser(commands) -> None:
    parser = commands.add_parser(
        "train",
        help="train the network on synthetic clips",
        description="Trains the network on synthetic clips with exact flow, in the stages of "
        "the config, writing checkpoint.pt, log.jsonl and finally weights.safetensors into "
        "DIR. Launched by torchrun, every process trains one share (DistributedDataParallel).",
    )
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="DIR")
    parser.add_argument("--config", type=Path, help="JSON training config (default: built in)")
    parser.add_argument("--resume", action="store_true", help="go on from DIR's checkpoint")
    parser.add_argument(
        "--stop-at", type=positive, metavar="STEP", help="checkpoint and stop at STEP"
    )
    parser.add_argument("--device", help="cpu, cuda, ... (default: cuda if available)")
    parser.set_defaults(handler=command)


def command(args: argparse.Namespace) -> int:
    if args.config is not None and not args.config.is_file():
        raise UsageError(f"config file not found: {args.config}")
    if args.output.exists() and not args.output.is_dir():
        raise UsageError(f"output {args.output} exists and is not a folder")
    config = training.load_config(args.config)
    weights = training.train(config, args.output, device(args.device), args.resume, args.stop_at)
    if weights is None:
        print(f"stopped at step {args.stop_at}; go on with --resume -o {args.output}")
    else:
        print(f"wrote {weights}")
    return 0
