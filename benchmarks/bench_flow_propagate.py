"""flow_propagate benchmarks: fused kernels against eager PyTorch and torch.compile.

GPU:  python benchmarks/bench_flow_propagate.py [--quick] [--budget-s S] [--out DIR]
      eager (a composite a user would write: ProPainter's consistency check, a bounds test
      and a nearest grid_sample of the neighbour's state), torch.compile of it and
      fused_inpaint's triton and cuda backends, forward only: the op has no gradients.
      Prints the table and writes DIR/<device>/flow_propagate.md (DIR: benchmarks/results
      by default).
CPU:  python -m pytest benchmarks --benchmark-only
      the cpu backend against the torch reference backend and the eager composite.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import common
import torch
import torch.nn.functional as F
from bench_fb_validity import ALPHA, BETA, make_flows, propainter_check

import fused_inpaint

OP = "flow_propagate"
SHAPES = [(4, 2, 240, 432), (4, 2, 480, 854), (1, 2, 1080, 1920)]  # flows (N, 2, H, W)
PASS = "forward"
T = 8  # the frame propagated to; the neighbour's sources lie in frames 0 .. T-1
HOLE_FRACTION = 0.3
# The composite's normalise/un-normalise round trip may round q the other way at a .5
# tie, and a pixel on the test's threshold may go either way.
MAX_DISAGREEMENT = 1e-3
CPU_SHAPE = (2, 2, 64, 96)

NOTES = [
    "eager: a propagation step written with PyTorch ops: ProPainter's `fbConsistencyCheck` "
    f"(`F.grid_sample` of flow_from at q = p + flow_to, alpha {ALPHA:g}, beta {BETA:g}), q in "
    "frame, then `F.grid_sample(mode='nearest', align_corners=True)` of the neighbour's state "
    "(src_frame as float32, src_pos) at q and `torch.where` to assemble frame t's state; "
    "torch.compile: the same function, default mode, static shapes; triton, cuda: "
    "`fused_inpaint.flow_propagate` on that backend",
    "inputs: flows as in the fb_validity benchmark (a smooth random field and its noisy "
    f"negation); hole: {100 * HOLE_FRACTION:g}% of the pixels in blobs, uint8; the neighbour's "
    f"state: random sources in frames -1 .. {T - 1}, positions anywhere in the frame",
    "bytes: hole (uint8), both flows, src_frame (int32) and src_pos (float32) read once + "
    "src_frame_t and src_pos_t written once; no backward (the op has no gradients)",
    "before timing, each implementation's src_frame_t is compared with eager's on one input: "
    f"a note says so where they differ on more than {100 * MAX_DISAGREEMENT:g}% of pixels",
]


def composite(hole, flow_to, flow_from, src_frame, src_pos):
    """One propagation step the way a user writes it: (N, 1, H, W) uint8 hole, (N, 2, H, W)
    flows and state -> frame T's (src_frame_t, src_pos_t)."""
    _, _, h, w = flow_to.shape
    rows = torch.arange(h, device=flow_to.device, dtype=flow_to.dtype)
    cols = torch.arange(w, device=flow_to.device, dtype=flow_to.dtype)
    ys, xs = torch.meshgrid(rows, cols, indexing="ij")
    grid = torch.stack((xs, ys))  # (2, H, W) pixels
    q = grid + flow_to
    inside = (q[:, 0] >= 0) & (q[:, 0] <= w - 1) & (q[:, 1] >= 0) & (q[:, 1] <= h - 1)
    consistent = propainter_check(flow_to, flow_from)[:, 0] > 0
    gx = 2 * q[:, 0] / max(w - 1, 1) - 1
    gy = 2 * q[:, 1] / max(h - 1, 1) - 1
    state = torch.cat((src_frame.to(src_pos.dtype), src_pos), dim=1)
    carried = F.grid_sample(
        state,
        torch.stack((gx, gy), dim=3),
        mode="nearest",
        padding_mode="zeros",
        align_corners=True,
    )
    in_hole = hole != 0
    take = in_hole[:, 0] & consistent & inside & (carried[:, 0] >= 0)
    frame = torch.where(take, carried[:, 0].to(torch.int32), -1)
    frame = torch.where(in_hole[:, 0], frame, T).unsqueeze(1)
    moved = torch.where(take.unsqueeze(1), carried[:, 1:] + (q - q.round()), 0.0)
    return frame, torch.where(in_hole, moved, grid)


def fused(backend: str):
    """``fused_inpaint.flow_propagate(..., t=T)`` on ``backend``."""

    def propagate(hole, flow_to, flow_from, src_frame, src_pos):
        with fused_inpaint.use_backend(backend):
            return fused_inpaint.flow_propagate(
                hole, flow_to, flow_from, src_frame, src_pos, t=T, alpha=ALPHA, beta=BETA
            )

    return propagate


def make_inputs(shape: tuple, device: str = "cuda") -> tuple:
    """(hole, flow_to, flow_from, src_frame, src_pos) for flows of ``shape``."""
    n, _, h, w = shape
    flow_to, flow_from = make_flows(shape, device)
    coarse = torch.rand(n, 1, max(h // 16, 2), max(w // 16, 2), device=device)
    blobs = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)
    hole = (blobs < torch.quantile(blobs.flatten(), HOLE_FRACTION)).to(torch.uint8)
    src_frame = torch.randint(-1, T, (n, 1, h, w), device=device, dtype=torch.int32)
    size = torch.tensor([w - 1.0, h - 1.0], device=device).view(1, 2, 1, 1)
    src_pos = torch.rand(n, 2, h, w, device=device) * size
    return hole, flow_to, flow_from, src_frame, src_pos


def output_bytes(shape: tuple) -> int:
    """Bytes of src_frame_t (int32) and src_pos_t (float32)."""
    n, _, h, w = shape
    return n * h * w * (4 + 2 * 4)


def disagreement(expected: tuple, fn, args: tuple) -> str:
    """Empty unless ``fn(*args)``'s src_frame differs from ``expected``'s on more than
    MAX_DISAGREEMENT of the pixels."""
    try:
        fraction = (fn(*args)[0] != expected[0]).float().mean().item()
    except Exception as error:  # reported in the table, like a failed timing
        return "check " + common.failure(error)
    if fraction <= MAX_DISAGREEMENT:
        return ""
    return f"differs from eager on {100 * fraction:.3f}% of pixels"


def check_against_eager(shape: tuple, impls: dict) -> dict[str, str]:
    """Notes per implementation: src_frame_t against eager's; for eager, how many hole
    pixels take a source."""
    args = make_inputs(shape)
    expected = composite(*args)
    hole = args[0] != 0
    taken = 100 * (expected[0][hole] >= 0).float().mean().item()
    notes = {"eager": f"hole pixels taking a source: {taken:.0f}%"}
    for name, fn in impls.items():
        if name != "eager" and not isinstance(fn, str):
            notes[name] = disagreement(expected, fn, args)
    return notes


def bench_case(shape: tuple, impls: dict, checks: dict) -> Iterator[common.Row]:
    """Times every implementation on one shape."""
    arg_sets = common.input_sets(lambda: make_inputs(shape))
    num_bytes = common.nbytes(arg_sets[0]) + output_bytes(shape)
    label = ", ".join(map(str, shape))
    for name, fn in impls.items():
        check = checks.get(name, "")
        row = common.measure(label, "fp32", PASS, name, fn, arg_sets, num_bytes, check)
        common.print_row(row)
        yield row


def run_gpu(shapes: list[tuple], out_dir: Path) -> None:
    """Measures every shape and implementation; writes and prints the table."""
    impls = common.gpu_implementations(composite, fused)

    def bench_shape(shape: tuple) -> Iterator[common.Row]:
        return bench_case(shape, impls, check_against_eager(shape, impls))

    common.measure_table(OP, NOTES, shapes, out_dir, bench_shape)


def main(argv: list[str] | None = None) -> int:
    return common.gpu_main(argv, OP, "flow_propagate GPU benchmark", SHAPES, run_gpu)


# CPU figures (pytest-benchmark): cpu backend vs torch reference backend vs eager composite.


def pytest_generate_tests(metafunc):
    impls = common.cpu_implementations(fused, composite)
    common.parametrize_implementations(metafunc, "cpu_impl", impls)


def test_cpu_forward(benchmark, cpu_impl):
    torch.manual_seed(0)
    args = make_inputs(CPU_SHAPE, "cpu")
    benchmark.group = f"{OP} {CPU_SHAPE} float32"
    benchmark(cpu_impl, *args)


if __name__ == "__main__":
    sys.exit(main())
