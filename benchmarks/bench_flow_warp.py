"""flow_warp benchmarks: fused kernels against eager PyTorch and torch.compile.

GPU:  python benchmarks/bench_flow_warp.py [--quick] [--budget-s S] [--out DIR]
      eager (the mmagic-style meshgrid + grid_sample composite), torch.compile of it and
      fused_inpaint's triton and cuda backends, forward and forward+backward; prints the
      table and writes DIR/<device>/flow_warp.md (DIR: benchmarks/results by default).
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

import fused_inpaint

OP = "flow_warp"
SHAPES = [(8, 64, 120, 216), (8, 32, 240, 432), (8, 3, 480, 854), (2, 3, 1080, 1920)]
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
# grid_sample needs the grid in x's dtype, so the composites take flow in x's dtype;
# the fused ops take float32 flow whatever x's dtype.
COMPOSITES = ("eager", "torch.compile")
FLOW_STD = 3.0  # pixels
# The composite's normalise/un-normalise round trip moves fp32 samples by ~1e-4 pixel.
CHECK = dict(atol=2e-3, rtol=1e-3)
CPU_SHAPE = (2, 16, 48, 64)

NOTES = [
    "eager: mmagic-style composite (pixel meshgrid + flow, normalised with "
    "2v/max(size-1,1)-1, `F.grid_sample(bilinear, zeros, align_corners=True)`); "
    "torch.compile: the same function, default mode, static shapes; triton, cuda: "
    "`fused_inpaint.flow_warp` on that backend",
    "flow: smooth random field (Gaussian noise at 1/16 resolution, std "
    f"{FLOW_STD:g} px, upsampled bilinearly); eager and torch.compile take flow in x's dtype "
    "(grid_sample needs one dtype), triton and cuda take float32 flow for every x dtype",
    "bytes: forward = x read + flow read + out written; forward+backward adds grad_out read, "
    "x and flow read again, grad_x and grad_flow written; flow counted in the dtype each "
    "implementation reads",
    "forward+backward: `torch.autograd.grad` w.r.t. x and flow from a fixed random grad_out",
    f"before timing, each implementation's forward output is checked against eager in float32 "
    f"(allclose atol={CHECK['atol']:g}, rtol={CHECK['rtol']:g}); a mismatch is noted on its "
    "rows for that shape. Half-precision outputs are not checked: eager computes its grid in "
    "half precision",
]


def composite(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
    """mmagic-style warp: x (N, C, H, W), flow (N, 2, H, W) in x's dtype -> (N, C, H, W)."""
    _, _, h, w = x.shape
    rows = torch.arange(h, device=x.device, dtype=x.dtype)
    cols = torch.arange(w, device=x.device, dtype=x.dtype)
    ys, xs = torch.meshgrid(rows, cols, indexing="ij")
    grid = torch.stack((xs, ys), dim=2) + flow.permute(0, 2, 3, 1)  # (N, H, W, 2) pixels
    gx = 2 * grid[..., 0] / max(w - 1, 1) - 1
    gy = 2 * grid[..., 1] / max(h - 1, 1) - 1
    return F.grid_sample(
        x, torch.stack((gx, gy), dim=3), mode="bilinear", padding_mode="zeros", align_corners=True
    )


def fused(backend: str):
    """``fused_inpaint.flow_warp(x, flow)`` on ``backend``."""

    def warp(x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        with fused_inpaint.use_backend(backend):
            return fused_inpaint.flow_warp(x, flow)

    return warp


def smooth_flow(n: int, h: int, w: int, device: str) -> torch.Tensor:
    """(N, 2, H, W) float32 flow in pixels: coarse Gaussian noise upsampled bilinearly."""
    coarse = torch.randn(n, 2, max(h // 16, 2), max(w // 16, 2), device=device) * FLOW_STD
    return F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)


def make_inputs(shape: tuple, dtype: torch.dtype, device: str = "cuda") -> dict:
    """x and grad_out (N, C, H, W) in ``dtype``; flow (N, 2, H, W) in float32 and in ``dtype``."""
    n, _, h, w = shape
    flow = smooth_flow(n, h, w, device)
    return {
        "x": torch.randn(shape, device=device, dtype=dtype),
        "flow": flow,
        "flow_as_x": flow.to(dtype),
        "grad_out": torch.randn(shape, device=device, dtype=dtype),
    }


def arguments(inputs: dict, impl: str, pass_: str) -> tuple:
    """The call arguments of ``impl`` for ``pass_``: (x, flow) or (x, flow, grad_out)."""
    x, flow = inputs["x"], inputs["flow_as_x" if impl in COMPOSITES else "flow"]
    if pass_ == "forward":
        return x, flow
    # Fresh leaves over the same data, so that forward-only runs record no graph.
    return x.detach().requires_grad_(), flow.detach().requires_grad_(), inputs["grad_out"]


def traffic(args: tuple, pass_: str) -> int:
    """Bytes moved by ``pass_``; out, grad_out and grad_x are x-sized, grad_flow flow-sized."""
    x_bytes, flow_bytes = common.nbytes(args[0]), common.nbytes(args[1])
    if pass_ == "forward":
        return 2 * x_bytes + flow_bytes
    return 5 * x_bytes + 3 * flow_bytes


def bench_case(shape: tuple, dtype: str, impls: dict, checks: dict) -> Iterator[common.Row]:
    """Times every implementation, forward and forward+backward, on one shape and dtype."""
    sets = common.input_sets(lambda: make_inputs(shape, DTYPES[dtype]))
    return common.bench_passes(
        ", ".join(map(str, shape)),
        dtype,
        impls,
        lambda name, pass_: [arguments(inputs, name, pass_) for inputs in sets],
        traffic,
        checks=checks,
    )


def bench_shape(shape: tuple, impls: dict) -> Iterator[common.Row]:
    """Every dtype, pass and implementation on one shape, after the float32 check."""
    inputs = make_inputs(shape, torch.float32)
    checks = common.check_against_eager(impls, (inputs["x"], inputs["flow"]), **CHECK)
    return (row for dtype in DTYPES for row in bench_case(shape, dtype, impls, checks))


def run_gpu(shapes: list[tuple], out_dir: Path) -> None:
    """Measures every shape, dtype, pass and implementation; writes and prints the table."""
    impls = common.gpu_implementations(composite, fused)
    common.measure_table(OP, NOTES, shapes, out_dir, lambda shape: bench_shape(shape, impls))


def main(argv: list[str] | None = None) -> int:
    return common.gpu_main(argv, OP, "flow_warp GPU benchmark", SHAPES, run_gpu)


# CPU figures (pytest-benchmark): cpu backend vs torch reference backend vs eager composite.


def pytest_generate_tests(metafunc):
    impls = common.cpu_implementations(fused, composite)
    common.parametrize_implementations(metafunc, "cpu_impl", impls)


def cpu_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """x (N, C, H, W), float32 flow (N, 2, H, W), grad_out (N, C, H, W) at CPU_SHAPE."""
    torch.manual_seed(0)
    n, _, h, w = CPU_SHAPE
    return torch.randn(CPU_SHAPE), smooth_flow(n, h, w, "cpu"), torch.randn(CPU_SHAPE)


def test_cpu_forward(benchmark, cpu_impl):
    x, flow, _ = cpu_inputs()
    benchmark.group = f"{OP} forward {CPU_SHAPE} float32"
    benchmark(cpu_impl, x, flow)


def test_cpu_forward_backward(benchmark, cpu_impl):
    x, flow, grad_out = cpu_inputs()
    benchmark.group = f"{OP} forward+backward {CPU_SHAPE} float32"
    run = common.forward_backward(cpu_impl)
    benchmark(run, x.requires_grad_(), flow.requires_grad_(), grad_out)


if __name__ == "__main__":
    sys.exit(main())
