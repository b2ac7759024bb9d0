"""temporal_shift_align and temporal_shift benchmarks: fused kernels against eager PyTorch and
torch.compile.

GPU:  python benchmarks/bench_shift_align.py [--quick] [--budget-s S] [--out DIR]
      1. TSAM: eager (resize flows and masks + grid_sample of the shifted channel groups +
         blend + torch.cat), torch.compile of it and fused_inpaint's triton and cuda
         temporal_shift_align, forward and forward+backward;
      2. TSM: eager (TSM's zeros_like + three slice copies), torch.compile of it and the
         triton and cuda temporal_shift, forward and forward+backward, on the same features.
      Prints both tables and writes DIR/<device>/shift_align.md (DIR: benchmarks/results).
CPU:  python -m pytest benchmarks --benchmark-only
      the cpu backend against the torch reference backend and the eager composites.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import common
import torch
import torch.nn.functional as F

import fused_inpaint

OP = "shift_align"
SHAPES = [(1, 8, 64, 120, 216), (1, 8, 128, 60, 108), (1, 8, 32, 240, 432)]  # (N, T, C, H, W)
FLOW_SIZE = (480, 864)  # (Hf, Wf): one full-resolution flow for every feature scale
FOLD_DIV = 8
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
FLOW_STD = 8.0  # pixels at the flow's resolution
TRUSTED = 0.8  # fraction of the masks' 16x16 blocks that are 1
# The composite's normalise/un-normalise round trip moves fp32 samples by ~1e-4 pixel.
CHECK = dict(atol=2e-3, rtol=1e-3)
CPU_SHAPE = (1, 4, 16, 24, 32)
CPU_FLOW_SIZE = (48, 64)

TSAM_NOTES = [
    "eager: the TSAM chain, per direction: `F.interpolate(mode='nearest')` of flow and mask "
    "to the feature size, flow scaled by (W/Wf, H/Hf), pixel meshgrid + flow normalised with "
    "2v/(size-1)-1, `F.grid_sample(bilinear, zeros, align_corners=True)` of the shifted "
    "channel group of the neighbouring frames, trust = mask x in-frame test, "
    "`trust * sampled + (1 - trust) * own`; then `torch.cat` with the zero frames and the "
    "unshifted channels. The grid is built in float32 and cast to x's dtype for grid_sample "
    "(which needs one dtype); the blend runs in x's dtype. torch.compile: the same function, "
    "default mode, static shapes; triton, cuda: `fused_inpaint.temporal_shift_align(x, "
    f"flow_fw, flow_bw, valid_fw, valid_bw, fold_div={FOLD_DIV})` on that backend, which "
    "reads the full-resolution flows and masks inline",
    f"inputs: x (N, T, C, H, W) in the row's dtype, fold_div={FOLD_DIV}; flow_fw, flow_bw "
    f"(N, T-1, 2, {FLOW_SIZE[0]}, {FLOW_SIZE[1]}) float32, smooth random fields (Gaussian noise "
    f"at 1/16 resolution, std {FLOW_STD:g} px, upsampled bilinearly); valid_fw, valid_bw "
    f"(N, T-1, 1, {FLOW_SIZE[0]}, {FLOW_SIZE[1]}) float32 0/1, 16x16 blocks of ones with "
    f"probability {TRUSTED:g}; every implementation gets the same float32 flows and masks",
    "bytes: forward = x read + out written + per direction the flow and the mask read once at "
    "the feature resolution (N (T-1) 3 H W x 4 bytes: the op samples them inline, so what it "
    "reads scales with the features, not the flows); forward+backward adds grad_out read, x "
    "read again, the flows and masks at feature resolution again, grad_x written and "
    "grad_flow_fw, grad_flow_bw written at the flows' full size",
    "forward+backward: `torch.autograd.grad` w.r.t. x, flow_fw and flow_bw (the masks are "
    "constants) from a fixed random grad_out",
    f"before timing, each implementation's forward is checked against eager on float32 "
    f"features (allclose atol={CHECK['atol']:g}, rtol={CHECK['rtol']:g}); a mismatch is noted "
    "on its rows for that shape. Half-precision outputs are not checked: eager samples with a "
    "half-precision grid",
]

TSM_NOTES = [
    "eager: TSM's `TemporalShift.shift` on (N, T, C, H, W): `torch.zeros_like` + three slice "
    f"copies (fold = C // {FOLD_DIV}: from frame t+1, from frame t-1, unchanged); "
    "torch.compile: the same function, default mode, static shapes; triton, cuda: "
    f"`fused_inpaint.temporal_shift(x, fold_div={FOLD_DIV})` on that backend",
    "bytes: forward = x read + out written; forward+backward adds grad_out read and grad_x "
    "written; forward+backward: `torch.autograd.grad` w.r.t. x from a fixed random grad_out",
    "before timing, each implementation's forward on float32 features is checked to equal "
    "eager's exactly; a mismatch is noted on its rows for that shape",
]


def tsam_composite(
    x: torch.Tensor,
    flow_fw: torch.Tensor,
    flow_bw: torch.Tensor,
    valid_fw: torch.Tensor,
    valid_bw: torch.Tensor,
    fold_div: int = FOLD_DIV,
) -> torch.Tensor:
    """TSAM the usual way: x (N, T, C, H, W), flows (N, T-1, 2, Hf, Wf) float32, masks
    (N, T-1, 1, Hf, Wf) -> (N, T, C, H, W)."""
    n, t, c, h, w = x.shape
    fold = c // fold_div

    def align(source, own, flow, valid):
        """``source`` frames (N, T-1, G, H, W) sampled along ``flow``, blended with ``own``."""
        hf, wf = flow.shape[-2:]
        f = F.interpolate(flow.flatten(0, 1), size=(h, w), mode="nearest")
        rows = torch.arange(h, device=x.device, dtype=f.dtype)
        cols = torch.arange(w, device=x.device, dtype=f.dtype)
        ys, xs = torch.meshgrid(rows, cols, indexing="ij")
        qx, qy = xs + f[:, 0] * (w / wf), ys + f[:, 1] * (h / hf)
        grid = torch.stack((2 * qx / max(w - 1, 1) - 1, 2 * qy / max(h - 1, 1) - 1), dim=3)
        sampled = F.grid_sample(
            source.flatten(0, 1),
            grid.to(x.dtype),
            mode="bilinear",
            padding_mode="zeros",
            align_corners=True,
        )
        inside = (qx >= 0) & (qx <= w - 1) & (qy >= 0) & (qy <= h - 1)
        mask = F.interpolate(valid.flatten(0, 1), size=(h, w), mode="nearest")
        trust = inside.unsqueeze(1).to(x.dtype) * mask.to(x.dtype)
        out = trust * sampled + (1 - trust) * own.flatten(0, 1)
        return out.view(source.shape)

    zero = torch.zeros_like(x[:, :1, :fold])
    group = slice(fold, 2 * fold)
    ahead = align(x[:, 1:, :fold], x[:, :-1, :fold], flow_fw, valid_fw)
    behind = align(x[:, :-1, group], x[:, 1:, group], flow_bw, valid_bw)
    shifted = (torch.cat((ahead, zero), dim=1), torch.cat((zero, behind), dim=1))
    return torch.cat((*shifted, x[:, :, 2 * fold :]), dim=2)


def tsm_composite(x: torch.Tensor, fold_div: int = FOLD_DIV) -> torch.Tensor:
    """TSM's shift: x (N, T, C, H, W) -> (N, T, C, H, W)."""
    fold = x.shape[2] // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    return out


def fused_tsam(backend: str):
    """``fused_inpaint.temporal_shift_align`` on ``backend``."""

    def shift_align(x, flow_fw, flow_bw, valid_fw, valid_bw):
        with fused_inpaint.use_backend(backend):
            return fused_inpaint.temporal_shift_align(
                x, flow_fw, flow_bw, valid_fw, valid_bw, fold_div=FOLD_DIV
            )

    return shift_align


def fused_tsm(backend: str):
    """``fused_inpaint.temporal_shift`` on ``backend``."""

    def shift(x: torch.Tensor) -> torch.Tensor:
        with fused_inpaint.use_backend(backend):
            return fused_inpaint.temporal_shift(x, fold_div=FOLD_DIV)

    return shift


def tsam_forward_backward(fn):
    """``fn(x, flows, masks)`` as ``run(x, flows, masks, grad_out) -> grads w.r.t. x, flows``."""

    def run(x, flow_fw, flow_bw, valid_fw, valid_bw, grad_out):
        out = fn(x, flow_fw, flow_bw, valid_fw, valid_bw)
        return torch.autograd.grad(out, (x, flow_fw, flow_bw), grad_out)

    return run


def smooth_flows(m: int, size: tuple, device: str) -> torch.Tensor:
    """(M, 2, Hf, Wf) float32 flow in pixels: coarse Gaussian noise upsampled bilinearly."""
    hf, wf = size
    coarse = torch.randn(m, 2, max(hf // 16, 2), max(wf // 16, 2), device=device) * FLOW_STD
    return F.interpolate(coarse, size=size, mode="bilinear", align_corners=True)


def block_masks(m: int, size: tuple, device: str) -> torch.Tensor:
    """(M, 1, Hf, Wf) float32 0/1: 16x16 blocks of ones with probability TRUSTED."""
    hf, wf = size
    coarse = torch.rand(m, 1, max(hf // 16, 1), max(wf // 16, 1), device=device) < TRUSTED
    return F.interpolate(coarse.float(), size=size, mode="nearest")


def make_tsam_inputs(
    shape: tuple, dtype: torch.dtype, device: str = "cuda", flow_size: tuple = FLOW_SIZE
) -> dict:
    """x and grad_out in ``dtype``; float32 flows and masks at ``flow_size``."""
    n, t = shape[:2]
    m = n * (t - 1)
    return {
        "x": torch.randn(shape, device=device, dtype=dtype),
        "flow_fw": smooth_flows(m, flow_size, device).unflatten(0, (n, t - 1)),
        "flow_bw": smooth_flows(m, flow_size, device).unflatten(0, (n, t - 1)),
        "valid_fw": block_masks(m, flow_size, device).unflatten(0, (n, t - 1)),
        "valid_bw": block_masks(m, flow_size, device).unflatten(0, (n, t - 1)),
        "grad_out": torch.randn(shape, device=device, dtype=dtype),
    }


def make_tsm_inputs(shape: tuple, dtype: torch.dtype, device: str = "cuda") -> dict:
    """x and grad_out (N, T, C, H, W) in ``dtype``."""
    return {
        "x": torch.randn(shape, device=device, dtype=dtype),
        "grad_out": torch.randn(shape, device=device, dtype=dtype),
    }


def tsam_arguments(inputs: dict, pass_: str) -> tuple:
    """(x, flow_fw, flow_bw, valid_fw, valid_bw), plus grad_out for forward+backward."""
    names = ("x", "flow_fw", "flow_bw")
    masks = (inputs["valid_fw"], inputs["valid_bw"])
    if pass_ == "forward":
        return *(inputs[name] for name in names), *masks
    # Fresh leaves over the same data, so that forward-only runs record no graph.
    leaves = (inputs[name].detach().requires_grad_() for name in names)
    return *leaves, *masks, inputs["grad_out"]


def tsm_arguments(inputs: dict, pass_: str) -> tuple:
    if pass_ == "forward":
        return (inputs["x"],)
    return inputs["x"].detach().requires_grad_(), inputs["grad_out"]


def tsam_traffic(args: tuple, pass_: str) -> int:
    """Bytes moved by ``pass_`` on ``args`` (x, flow_fw, flow_bw, ...), flows and masks
    counted at the feature resolution."""
    x, flow_fw, flow_bw = args[:3]
    n, t, _, h, w = x.shape
    x_bytes = common.nbytes(x)
    # Per direction: 2 flow channels + 1 mask channel per feature pixel, float32.
    sampled = 2 * n * (t - 1) * 3 * h * w * flow_fw.element_size()
    if pass_ == "forward":
        return 2 * x_bytes + sampled
    grad_flows = common.nbytes(flow_fw, flow_bw)
    return 5 * x_bytes + 2 * sampled + grad_flows


def tsm_traffic(args: tuple, pass_: str) -> int:
    return (2 if pass_ == "forward" else 4) * common.nbytes(args[0])


@dataclass(frozen=True, eq=False)
class Op:
    """One benchmarked op: its composite, its fused version and how to feed and count them."""

    name: str
    composite: Callable
    fused: Callable[[str], Callable]  # backend -> fn
    make_inputs: Callable[..., dict]  # (shape, dtype, device) -> inputs
    arguments: Callable[[dict, str], tuple]  # (inputs, pass) -> call arguments
    traffic: Callable[[tuple, str], int]  # (call arguments, pass) -> bytes
    forward_backward: Callable[[Callable], Callable]
    check: dict  # allclose tolerances of the float32 forward against eager


TSAM = Op(
    "temporal_shift_align", tsam_composite, fused_tsam, make_tsam_inputs, tsam_arguments,
    tsam_traffic, tsam_forward_backward, CHECK,
)  # fmt: skip
TSM = Op(
    "temporal_shift", tsm_composite, fused_tsm, make_tsm_inputs, tsm_arguments, tsm_traffic,
    common.forward_backward, dict(atol=0, rtol=0),
)  # fmt: skip


def check_against_eager(op: Op, shape: tuple, impls: dict) -> dict[str, str]:
    """Forward of every runnable implementation on one float32 input, against eager."""
    args = op.arguments(op.make_inputs(shape, torch.float32, "cuda"), "forward")
    return common.check_against_eager(impls, args, **op.check)


def bench_case(op: Op, shape: tuple, dtype: str, impls: dict, checks: dict) -> Iterator[common.Row]:
    """Times every implementation, forward and forward+backward, on one shape and dtype."""
    sets = common.input_sets(lambda: op.make_inputs(shape, DTYPES[dtype], "cuda"))
    return common.bench_passes(
        "N={}, T={}, C={}, {}x{}".format(*shape),
        dtype,
        impls,
        lambda name, pass_: [op.arguments(inputs, pass_) for inputs in sets],
        op.traffic,
        op.forward_backward,
        checks,
        prefix=f"{op.name} ",
    )


def run_gpu(shapes: list[tuple], out_dir: Path) -> None:
    """Measures both ops on every shape, dtype, pass and implementation; writes and prints
    both tables."""
    env, copy_gbps = common.environment_and_copy_bandwidth()
    impls = {op: common.gpu_implementations(op.composite, op.fused) for op in (TSAM, TSM)}
    rows: dict[Op, list[common.Row]] = {TSAM: [], TSM: []}

    def measure_shape(shape: tuple) -> Iterator[None]:
        for op, op_impls in impls.items():
            checks = check_against_eager(op, shape, op_impls)
            for dtype in DTYPES:
                for row in bench_case(op, shape, dtype, op_impls, checks):
                    rows[op].append(row)
                    yield

    def render() -> str:
        text = common.report(TSAM.name, env, copy_gbps, TSAM_NOTES, rows[TSAM])
        table = common.markdown_table(rows[TSM], copy_gbps)
        return text + common.section(f"{TSM.name} (TSM)", TSM_NOTES, table)

    common.measure_and_write(OP, env, out_dir, shapes, measure_shape, render)


def main(argv: list[str] | None = None) -> int:
    description = "temporal_shift_align and temporal_shift GPU benchmark"
    return common.gpu_main(argv, OP, description, SHAPES, run_gpu)


# CPU figures (pytest-benchmark): cpu backend vs torch reference backend vs eager composite.


def pytest_generate_tests(metafunc):
    for argname, op in (("tsam_impl", TSAM), ("tsm_impl", TSM)):
        impls = common.cpu_implementations(op.fused, op.composite)
        common.parametrize_implementations(metafunc, argname, impls)


def cpu_inputs() -> dict:
    """TSAM's inputs at CPU_SHAPE, flows and masks at CPU_FLOW_SIZE; TSM uses x, grad_out."""
    torch.manual_seed(0)
    return make_tsam_inputs(CPU_SHAPE, torch.float32, "cpu", CPU_FLOW_SIZE)


def test_cpu_shift_align_forward(benchmark, tsam_impl):
    benchmark.group = f"temporal_shift_align forward {CPU_SHAPE} float32"
    benchmark(tsam_impl, *tsam_arguments(cpu_inputs(), "forward"))


def test_cpu_shift_align_forward_backward(benchmark, tsam_impl):
    benchmark.group = f"temporal_shift_align forward+backward {CPU_SHAPE} float32"
    args = tsam_arguments(cpu_inputs(), "forward+backward")
    benchmark(tsam_forward_backward(tsam_impl), *args)


def test_cpu_shift_forward(benchmark, tsm_impl):
    benchmark.group = f"temporal_shift forward {CPU_SHAPE} float32"
    benchmark(tsm_impl, *tsm_arguments(cpu_inputs(), "forward"))


def test_cpu_shift_forward_backward(benchmark, tsm_impl):
    benchmark.group = f"temporal_shift forward+backward {CPU_SHAPE} float32"
    args = tsm_arguments(cpu_inputs(), "forward+backward")
    benchmark(common.forward_backward(tsm_impl), *args)


if __name__ == "__main__":
    sys.exit(main())
