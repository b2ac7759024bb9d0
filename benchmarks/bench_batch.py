"""Batch benchmark: frames/s of ``fused-inpaint batch`` with 1 and 2 workers (Ray actors).

With the batch extra:  python benchmarks/bench_batch.py [--quick] [--budget-s S] [--out DIR]
      a batch of generated clips (432x240 MP4s, their masks as PNG folders, MP4 outputs)
      on an embedded Ray, with one worker of 1 CPU, one of all the CPUs and one worker per
      CPU, and on a GPU machine one worker and one per GPU; frames/s over the whole batch
      from the moment the workers have started (reading, inpainting, encoding); then, with
      no Ray and no video, what running work in one process per CPU gives on this machine:
      the pipeline on a clip in memory, a memory-bound and a compute-bound numpy loop and a
      pure-Python loop, each in 1 process and in one per CPU at once (1 thread each); prints
      the tables and writes DIR/<device>/batch.md.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import common
import numpy as np
import torch
from bench_model import panning_clip
from PIL import Image

from fused_inpaint import io
from fused_inpaint.batch import Row
from fused_inpaint.cli.batch import DEFAULT_SEGMENT

NAME = "batch"
SIZE = (240, 432)  # (H, W)
CLIPS, FRAMES = 4, 60  # --quick: half of each
ROUNDS = 3  # batches per configuration, taking turns, the fastest kept (--quick: 1)
SETTINGS = dict(mode="offline", flow="dis", chunk=60, overlap=20, lookahead=8, max_age=30,
                dis_preset="medium", dilate=0, fps=None, seams=False)  # fmt: skip


def write_clips(root: Path, clips: int, frames: int) -> list[Path]:
    """``clips`` generated clips as MP4s with their masks as PNG folders; their inputs."""
    inputs = []
    for k in range(clips):
        video, masks = root / f"clip{k}.mp4", root / f"clip{k}_masks"
        clip, holes = panning_clip(*SIZE, frames, seed=k)
        with io.VideoWriter(video, 25) as writer:
            for frame in clip:
                writer.write(np.ascontiguousarray(frame))
        masks.mkdir()
        for t, hole in enumerate(holes):
            Image.fromarray(hole.astype(np.uint8) * 255).save(masks / f"{t:03d}.png")
        inputs.append(video)
    return inputs


def configurations() -> list[tuple[str, int, int, int]]:
    """(label, workers, CPUs each, GPUs each)."""
    cores = os.cpu_count() or 1
    configs = [("1 worker, 1 CPU", 1, 1, 0)]
    if cores > 1:
        configs.append((f"1 worker, {cores} CPUs", 1, cores, 0))
        configs.append((f"{cores} workers, 1 CPU each", cores, 1, 0))
    gpus = torch.cuda.device_count()
    if gpus:
        configs.append(("1 worker, 1 GPU", 1, 1, 1))
        if gpus > 1:
            configs.append((f"{gpus} workers, 1 GPU each", gpus, 1, 1))
    return configs


def frames_per_second(inputs: list[Path], out: Path, workers: int, cpus: int, gpus: int):
    """(frames, seconds) of the batch of ``inputs`` into the empty folder ``out``."""
    from fused_inpaint.batch.cluster import Batch

    rows = [Row(p, out / p.name, p.with_name(f"{p.stem}_masks")) for p in inputs]
    batch = Batch(rows, SETTINGS, workers=workers, cpus=cpus, gpus=gpus,
                  segment=DEFAULT_SEGMENT, progress_bar=False)  # fmt: skip
    batch.wait_for_workers()
    start = time.perf_counter()
    outcomes = batch.run()
    seconds = time.perf_counter() - start
    failed = [o.reason for o in outcomes if o.status != "done"]
    if failed:
        raise RuntimeError(f"rows failed: {failed[0]}")
    return sum(o.frames for o in outcomes), seconds


def pipeline_step(threads: int):
    """One pass of the pipeline over a clip in memory (DIS on ``threads``): its frames."""
    from fused_inpaint.pipeline import Inpainter

    clip, holes = map(list, panning_clip(*SIZE, FRAMES))
    inpainter = Inpainter(device="cpu", mode="offline", dis_preset="medium", threads=threads)
    return lambda: sum(1 for _ in inpainter.stream(clip, holes))


def memory_step():
    x, y = np.ones(8_000_000, np.float32), np.empty(8_000_000, np.float32)

    def step() -> int:
        np.multiply(x, 1.0001, out=y)
        np.add(y, 0.5, out=y)
        return 1

    return step


def compute_step():
    a = np.ones((256, 256), np.float32)

    def step() -> int:
        a @ a
        return 1

    return step


def python_step():
    def step() -> int:
        total = 0
        for i in range(20000):
            total += i * i
        return 1

    return step


# What one process per CPU gives with no Ray and no video: each workload runs in 1 process,
# then in one per CPU at once, 1 thread each; the sum of their rates over the one's.
# label -> (unit, the step's maker, its arguments); a step returns the units it did.
SCALING_WORKLOADS = {
    "the pipeline (offline, DIS medium) on a clip in memory, DIS on its thread": (
        "frames", pipeline_step, (0,)
    ),
    "the same, DIS on a thread of its own beside it (`threads=1`)": (
        "frames", pipeline_step, (1,)
    ),
    "memory-bound: y = a x + b over 32 MB float32 arrays (numpy)": ("passes", memory_step, ()),
    "compute-bound: 256x256 float32 matmul (numpy)": ("products", compute_step, ()),
    "pure Python: a loop of 20000 multiply-adds": ("loops", python_step, ()),
}  # fmt: skip
SCALING_SECONDS = 6.0  # --quick: a third
ONE_THREAD = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def scaling_workload(name: str, seconds: float, start, rates) -> None:
    """Runs workload ``name`` on 1 thread from ``start`` (a barrier) for ``seconds``;
    appends its rate (units/s) to ``rates``."""
    import cv2

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    _, make, arguments = SCALING_WORKLOADS[name]
    step = make(*arguments)
    step()  # warm-up
    start.wait()
    done, begin = 0, time.perf_counter()
    while time.perf_counter() - begin < seconds:
        done += step()
    rates.append(done / (time.perf_counter() - begin))


def scaling(processes: int, name: str, seconds: float) -> float:
    """The summed rate (units/s) of workload ``name`` in ``processes`` processes at once."""
    context = multiprocessing.get_context("spawn")
    # BLAS and OpenMP read their thread counts when loaded, in each new process.
    with mock.patch.dict(os.environ, dict.fromkeys(ONE_THREAD, "1")), context.Manager() as manager:
        start, rates = manager.Barrier(processes), manager.list()
        children = [
            context.Process(target=scaling_workload, args=(name, seconds, start, rates))
            for _ in range(processes)
        ]
        for child in children:
            child.start()
        for child in children:
            child.join()
        if len(rates) != processes:
            raise RuntimeError(f"a process of the {name!r} workload failed")
        return float(sum(rates))


def scaling_table(quick: bool) -> str:
    """Markdown: each workload's rate in 1 process and in one per CPU, and their ratio."""
    cores = os.cpu_count() or 1
    seconds = SCALING_SECONDS / 3 if quick else SCALING_SECONDS
    heading = ["workload", "unit", "1 process /s", f"{cores} processes /s", "ratio"]
    lines = [common.table_line(heading), "|---|---|--:|--:|--:|"]
    for name, (unit, _, _) in SCALING_WORKLOADS.items():
        one, many = scaling(1, name, seconds), scaling(cores, name, seconds)
        print(f"{name}: {one:.1f} -> {many:.1f} {unit}/s ({many / one:.2f}x)", flush=True)
        cells = [name, unit, f"{one:.1f}", f"{many:.1f}", f"{many / one:.2f}x"]
        lines.append(common.table_line(cells))
    return (
        f"\n\n## One process per CPU, without Ray\n\n- each workload on 1 thread for "
        f"{seconds:g} s, in 1 process, then in {cores} processes started together (their "
        "rates summed): what any split into one worker per CPU can give on this machine\n\n"
        + "\n".join(lines)
        + "\n"
    )


def run(quick: bool, out_dir: Path) -> None:
    import ray

    env = common.environment()
    clips, frames = (CLIPS // 2, FRAMES // 2) if quick else (CLIPS, FRAMES)
    rounds = 1 if quick else ROUNDS
    notes = [
        f"{os.cpu_count()} CPUs, Ray {ray.__version__} started here; a worker's DIS, OpenCV "
        "and torch threads are its CPUs; a worker of one CPU computes DIS on its main thread",
        f"batch: {clips} generated clips of {frames} frames at {SIZE[1]}x{SIZE[0]} (a texture "
        "panning under a moving blob), MP4 in, masks as PNG folders, MP4 out; offline mode, "
        "DIS medium",
        "frames/s: the batch's frames over its time from the moment every worker has started "
        f"(the network loads in each worker's first row), the fastest of {rounds} batches, "
        "the configurations taking turns so that each meets the same changes in load",
        "load: the machine's 1-minute load average after the fastest batch; where it is above "
        "the CPU count, other work shared the CPU and the figures are low and noisy",
    ]
    configs = configurations()
    best: dict[str, tuple[int, float, float]] = {}  # label -> (frames, seconds, load)

    def measure(case: tuple) -> None:
        _, (label, workers, cpus, gpus) = case
        with tempfile.TemporaryDirectory() as out:
            count, seconds = frames_per_second(inputs, Path(out), workers, cpus, gpus)
        print(f"{label}: {count} frames in {seconds:.1f} s, {count / seconds:.2f} frames/s")
        if label not in best or seconds < best[label][1]:
            best[label] = (count, seconds, os.getloadavg()[0])

    def render() -> str:
        bases = [label for label, workers, _, gpus in configs if workers == 1 and not gpus]
        heading = ["workers", "frames", "seconds", "frames/s", *(f"vs {b}" for b in bases)]
        lines = [common.table_line([*heading, "load"]), "|---|" + "--:|" * len(heading)]
        rates = {label: count / seconds for label, (count, seconds, _) in best.items()}
        for label, (count, seconds, load) in best.items():
            ratios = [f"{rates[label] / rates[b]:.2f}x" if b in rates else "—" for b in bases]
            cells = [label, str(count), f"{seconds:.1f}", f"{rates[label]:.2f}", *ratios]
            lines.append(common.table_line([*cells, f"{load:.1f}"]))
        report = common.header(NAME, env, [], notes) + "\n\n" + "\n".join(lines) + "\n"
        return report + machine

    machine = ""

    ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
    try:
        with tempfile.TemporaryDirectory() as root:
            inputs = write_clips(Path(root), clips, frames)
            cases = [(k, config) for k in range(rounds) for config in configs]
            common.measure_and_write(NAME, env, out_dir, cases, measure, render)
    finally:
        ray.shutdown()
    if os.cpu_count() and os.cpu_count() > 1 and not common.budget_spent():
        machine = scaling_table(quick)
        print(machine)
        print(f"wrote {common.write_report(out_dir, NAME, env, render())}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="frames/s of a batch with 1 and 2 workers")
    common.add_run_arguments(parser, "half the clips, half as long")
    args = parser.parse_args(argv)
    common.configure(args.quick, args.budget_s)
    run(args.quick, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
