"""fb_validity benchmarks: fused kernels against eager PyTorch and torch.compile.

GPU:  python benchmarks/bench_fb_validity.py [--quick] [--budget-s S] [--out DIR]
      eager (ProPainter's fbConsistencyCheck composite, run once per direction), torch.compile
      of it and fused_inpaint's triton and cuda backends (both masks in one call, float32 and
      bool), forward only: the op is not differentiable. Prints the table and writes
      DIR/<device>/fb_validity.md (DIR: benchmarks/results by default).
CPU:  python -m pytest benchmarks --benchmark-only
      the cpu backend against the torch reference backend and the eager composite.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from pathlib import Path

import common
import torch
import torch.nn.functional as F

import fused_inpaint

OP = "fb_validity"
SHAPES = [(8, 2, 240, 432), (8, 2, 480, 854), (2, 2, 1080, 1920)]  # flows (N, 2, H, W)
PASS = "forward"
FLOW_STD = 4.0  # pixels, per component
NOISE_STD = 0.5  # pixels, per component, added to the negated forward flow
ALPHA, BETA = 0.01, 0.5  # ProPainter's alpha1, alpha2
# The fused float32 masks may differ from eager's where a pixel sits on the threshold.
MAX_DISAGREEMENT = 1e-3
CPU_SHAPE = (2, 2, 64, 96)

NOTES = [
    "eager: ProPainter's `fbConsistencyCheck` (pixel meshgrid + flow_fw, normalised with "
    "2v/max(size-1,1)-1, `F.grid_sample(flow_bw, bilinear, zeros, align_corners=True)`, then "
    f"`|fw + bw_warped|^2 < {ALPHA:g} (|fw|^2 + |bw_warped|^2) + {BETA:g}`), called twice "
    "(fw, bw) and (bw, fw) for the two masks; torch.compile: that pair of calls as one "
    "function, default mode, static shapes; triton, cuda: `fused_inpaint.fb_validity(fw, bw, "
    "both=True, check_bounds=False)` on that backend, one call for both masks",
    "dtype: the flows' (float32); masks (N, 1, H, W) are float32, or bool (one byte per "
    "pixel, `dtype=torch.bool`) on the rows that say so",
    f"flows: flow_fw a smooth random field (Gaussian noise at 1/16 resolution, std {FLOW_STD:g} "
    f"px, upsampled bilinearly); flow_bw = -flow_fw + Gaussian noise (std {NOISE_STD:g} px per "
    "pixel), so both masks are mixed; the eager row's note gives the fraction of valid pixels",
    "bytes: both flows read once + both masks written once, in the masks' dtype; no backward "
    "(the op returns a mask and is not differentiable)",
    "before timing, each implementation's masks are compared with eager's on one input: a note "
    f"says so where they differ on more than {100 * MAX_DISAGREEMENT:g}% of pixels (a pixel "
    "exactly on the threshold may round either way)",
]


def propainter_check(flow_fw: torch.Tensor, flow_bw: torch.Tensor) -> torch.Tensor:
    """ProPainter-style fbConsistencyCheck: flows (N, 2, H, W) -> (N, 1, H, W), 1 = consistent."""
    _, _, h, w = flow_fw.shape
    rows = torch.arange(h, device=flow_fw.device)
    cols = torch.arange(w, device=flow_fw.device)
    ys, xs = torch.meshgrid(rows, cols, indexing="ij")
    grid = torch.stack((xs, ys), dim=2).type_as(flow_fw) + flow_fw.permute(0, 2, 3, 1)
    gx = 2.0 * grid[..., 0] / max(w - 1, 1) - 1.0
    gy = 2.0 * grid[..., 1] / max(h - 1, 1) - 1.0
    warped = F.grid_sample(
        flow_bw,
        torch.stack((gx, gy), dim=3),
        mode="bilinear",
        padding_mode="zeros",
        align_corners=True,
    )

    def length_sq(v: torch.Tensor) -> torch.Tensor:
        return torch.sum(torch.square(v), dim=1, keepdim=True)

    threshold = ALPHA * (length_sq(flow_fw) + length_sq(warped)) + BETA
    return (length_sq(flow_fw + warped) < threshold).to(flow_fw)


def composite(flow_fw: torch.Tensor, flow_bw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Both masks the ProPainter way: the check run once per direction."""
    return propainter_check(flow_fw, flow_bw), propainter_check(flow_bw, flow_fw)


def fused(backend: str, dtype: torch.dtype = torch.float32):
    """``fused_inpaint.fb_validity(fw, bw, both=True, check_bounds=False)`` on ``backend``."""

    def check(flow_fw: torch.Tensor, flow_bw: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with fused_inpaint.use_backend(backend):
            return fused_inpaint.fb_validity(
                flow_fw, flow_bw, alpha=ALPHA, beta=BETA, check_bounds=False, both=True,
                dtype=dtype,
            )  # fmt: skip

    return check


def make_flows(shape: tuple, device: str = "cuda") -> tuple[torch.Tensor, torch.Tensor]:
    """(flow_fw, flow_bw), float32 (N, 2, H, W): a smooth field and its noisy negation."""
    n, _, h, w = shape
    coarse = torch.randn(n, 2, max(h // 16, 2), max(w // 16, 2), device=device) * FLOW_STD
    flow_fw = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)
    flow_bw = -flow_fw + NOISE_STD * torch.randn_like(flow_fw)
    return flow_fw, flow_bw


def mask_bytes(shape: tuple, dtype: torch.dtype) -> int:
    """Bytes of the two (N, 1, H, W) masks in ``dtype``."""
    n, _, h, w = shape
    return 2 * n * h * w * torch.empty(0, dtype=dtype).element_size()


def gpu_implementations() -> dict[str, tuple[common.Implementation, torch.dtype]]:
    """name -> (fn(flow_fw, flow_bw) -> two masks, or why it cannot run here; mask dtype)."""
    impls = {
        "eager": (composite, torch.float32),
        "torch.compile": (torch.compile(composite, dynamic=False), torch.float32),
    }
    for backend in ("triton", "cuda"):
        for dtype, suffix in ((torch.float32, ""), (torch.bool, " (bool masks)")):
            fn = common.on_backend(backend, functools.partial(fused, dtype=dtype))
            impls[backend + suffix] = (fn, dtype)
    return impls


def disagreement(expected: tuple, fn, args: tuple) -> str:
    """Empty unless ``fn(*args)`` differs from ``expected`` on more than MAX_DISAGREEMENT."""
    try:
        fraction = max(
            (out.float() != ref).float().mean().item()
            for out, ref in zip(fn(*args), expected, strict=True)
        )
    except Exception as error:  # reported in the table, like a failed timing
        return "check " + common.failure(error)
    if fraction <= MAX_DISAGREEMENT:
        return ""
    return f"differs from eager on {100 * fraction:.3f}% of pixels"


def check_against_eager(shape: tuple, impls: dict) -> dict[str, str]:
    """Notes per implementation: masks against eager's; for eager, the valid fractions."""
    args = make_flows(shape)
    expected = composite(*args)
    valid_fw, valid_bw = (100 * mask.mean().item() for mask in expected)
    notes = {"eager": f"valid pixels: {valid_fw:.0f}% (fw), {valid_bw:.0f}% (bw)"}
    for name, (fn, _) in impls.items():
        if name != "eager" and not isinstance(fn, str):
            notes[name] = disagreement(expected, fn, args)
    return notes


def bench_case(shape: tuple, impls: dict, checks: dict) -> Iterator[common.Row]:
    """Times every implementation on one shape."""
    arg_sets = common.input_sets(lambda: make_flows(shape))
    label = ", ".join(map(str, shape))
    for name, (fn, dtype) in impls.items():
        num_bytes = common.nbytes(arg_sets[0]) + mask_bytes(shape, dtype)
        check = checks.get(name, "")
        row = common.measure(label, "fp32", PASS, name, fn, arg_sets, num_bytes, check)
        common.print_row(row)
        yield row


def run_gpu(shapes: list[tuple], out_dir: Path) -> None:
    """Measures every shape and implementation; writes and prints the table."""
    impls = gpu_implementations()

    def bench_shape(shape: tuple) -> Iterator[common.Row]:
        return bench_case(shape, impls, check_against_eager(shape, impls))

    common.measure_table(OP, NOTES, shapes, out_dir, bench_shape)


def main(argv: list[str] | None = None) -> int:
    return common.gpu_main(argv, OP, "fb_validity GPU benchmark", SHAPES, run_gpu)


# CPU figures (pytest-benchmark): cpu backend vs torch reference backend vs eager composite.


def pytest_generate_tests(metafunc):
    impls = common.cpu_implementations(fused, composite)
    common.parametrize_implementations(metafunc, "cpu_impl", impls)


def test_cpu_forward(benchmark, cpu_impl):
    torch.manual_seed(0)
    flow_fw, flow_bw = make_flows(CPU_SHAPE, "cpu")
    benchmark.group = f"{OP} both masks {CPU_SHAPE} float32"
    benchmark(cpu_impl, flow_fw, flow_bw)


if __name__ == "__main__":
    sys.exit(main())
