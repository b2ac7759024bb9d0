"""propagation_gather benchmarks: fused kernels against eager PyTorch and torch.compile.

GPU:  python benchmarks/bench_propagation_gather.py [--quick] [--budget-s S] [--out DIR]
      eager (a composite a user would write: per frame of the chunk, a grid_sample of the
      frame with its holes zeroed and one of its known mask, renormalised where the state
      points at that frame), torch.compile of it and fused_inpaint's triton and cuda
      backends, forward only: the op has no gradients. Prints the table and writes
      DIR/<device>/propagation_gather.md (DIR: benchmarks/results by default).
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

OP = "propagation_gather"
SHAPES = [(2, 8, 3, 240, 432), (1, 8, 3, 480, 854), (1, 8, 3, 1080, 1920)]  # (N, T, C, H, W)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16}
PASS = "forward"
T0 = 16  # the chunk holds frames T0 .. T0+T-1 of the clip
FLOW_STD = 4.0  # pixels: how far a source lies from the pixel it fills
HOLE_FRACTION = 0.2
NONE_FRACTION = 0.2  # pixels whose state holds no source
# Where a kept weight sits on the 1e-3 threshold, valid may go either way.
MAX_DISAGREEMENT = 1e-3
ATOL = {"fp32": 1e-4, "fp16": 2e-2}  # the composite normalises positions and back
CPU_SHAPE = (1, 4, 3, 64, 96)

NOTES = [
    "eager: the gather written with PyTorch ops: for each of the T frames, "
    "`F.grid_sample(bilinear, zeros, align_corners=True)` of the frame times its known mask "
    "and of the known mask at src_pos, kept where src_frame names that frame, then divided "
    "(valid where the kept weight > 1e-3); torch.compile: the same function, default mode, "
    "static shapes; triton, cuda: `fused_inpaint.propagation_gather` on that backend",
    f"inputs: frames (N, T, C, H, W) random; holes {100 * HOLE_FRACTION:g}% of each frame "
    f"in blobs, uint8; state: {100 * NONE_FRACTION:g}% of pixels hold no source, the rest a "
    f"random frame of the chunk at the pixel moved by a smooth random field (std "
    f"{FLOW_STD:g} px), fractional",
    "bytes (the op's minimum): src_frame (int32) and src_pos (float32) read once, one source "
    "pixel's C channels and its hole byte per output pixel, image (C channels in frames' "
    "dtype) and valid (bool) written once; reading whole frames is not counted",
    "before timing, each implementation's output is compared with eager's on one input: a "
    f"note says so where valid differs on more than {100 * MAX_DISAGREEMENT:g}% of pixels or "
    f"image, where both are valid, by more than {ATOL['fp32']:g} (fp32) / {ATOL['fp16']:g} "
    "(fp16)",
]


def composite(frames, holes, src_frame, src_pos):
    """The gather the way a user writes it: frames (N, T, C, H, W), uint8 holes
    (N, T, 1, H, W), a state -> (image (N, C, H, W), valid (N, 1, H, W) bool)."""
    n, length, c, h, w = frames.shape
    gx = 2 * src_pos[:, 0] / max(w - 1, 1) - 1
    gy = 2 * src_pos[:, 1] / max(h - 1, 1) - 1
    grid = torch.stack((gx, gy), dim=3)
    total = frames.new_zeros((n, c, h, w), dtype=torch.float32)
    weight = frames.new_zeros((n, 1, h, w), dtype=torch.float32)
    kw = dict(mode="bilinear", padding_mode="zeros", align_corners=True)
    for k in range(length):
        known = (holes[:, k] == 0).float()
        here = src_frame == T0 + k
        total = torch.where(here, F.grid_sample(frames[:, k].float() * known, grid, **kw), total)
        weight = torch.where(here, F.grid_sample(known, grid, **kw), weight)
    valid = weight > 1e-3
    image = torch.where(valid, total / weight.clamp_min(1e-3), 0.0)
    return image.to(frames.dtype), valid


def fused(backend: str):
    """``fused_inpaint.propagation_gather(..., t0=T0)`` on ``backend``."""

    def gather(frames, holes, src_frame, src_pos):
        with fused_inpaint.use_backend(backend):
            return fused_inpaint.propagation_gather(frames, holes, src_frame, src_pos, t0=T0)

    return gather


def blobs(n: int, h: int, w: int, fraction: float, device: str) -> torch.Tensor:
    """(n, 1, H, W) bool, ``fraction`` of it true in smooth blobs."""
    coarse = torch.rand(n, 1, max(h // 16, 2), max(w // 16, 2), device=device)
    field = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)
    return field < torch.quantile(field.flatten(), fraction)


def make_inputs(shape: tuple, dtype: torch.dtype, device: str = "cuda") -> tuple:
    """(frames, holes, src_frame, src_pos) for frames of ``shape``."""
    n, length, c, h, w = shape
    frames = torch.randn(shape, device=device, dtype=dtype)
    holes = blobs(n * length, h, w, HOLE_FRACTION, device).view(n, length, 1, h, w)
    src_frame = torch.randint(T0, T0 + length, (n, 1, h, w), device=device, dtype=torch.int32)
    src_frame[blobs(n, h, w, NONE_FRACTION, device)] = -1
    coarse = torch.randn(n, 2, max(h // 16, 2), max(w // 16, 2), device=device) * FLOW_STD
    shift = F.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=True)
    rows = torch.arange(h, device=device, dtype=torch.float32)
    cols = torch.arange(w, device=device, dtype=torch.float32)
    ys, xs = torch.meshgrid(rows, cols, indexing="ij")
    src_pos = torch.stack((xs, ys)) + shift
    return frames, holes.to(torch.uint8), src_frame, src_pos


def minimal_bytes(shape: tuple, dtype: torch.dtype) -> int:
    """The state read, one source pixel (C values and a hole byte) per output pixel, the
    image and valid written."""
    n, _, c, h, w = shape
    size = torch.empty(0, dtype=dtype).element_size()
    return n * h * w * ((4 + 2 * 4) + (c * size + 1) + (c * size + 1))


def mismatch(expected: tuple, fn, args: tuple, dtype: str) -> str:
    """Empty unless ``fn(*args)`` differs from ``expected`` beyond MAX_DISAGREEMENT / ATOL."""
    try:
        image, valid = fn(*args)
    except Exception as error:  # reported in the table, like a failed timing
        return "check " + common.failure(error)
    fraction = (valid != expected[1]).float().mean().item()
    both = (valid & expected[1]).expand_as(image)
    error = (image.float() - expected[0].float())[both].abs().max().item() if both.any() else 0
    notes = []
    if fraction > MAX_DISAGREEMENT:
        notes.append(f"valid differs from eager on {100 * fraction:.3f}% of pixels")
    if error > ATOL[dtype]:
        notes.append(f"image differs from eager (max abs err {error:.2e})")
    return "; ".join(notes)


def check_against_eager(shape: tuple, dtype: str, impls: dict) -> dict[str, str]:
    """Notes per implementation: outputs against eager's; for eager, the valid fraction."""
    args = make_inputs(shape, DTYPES[dtype])
    expected = composite(*args)
    notes = {"eager": f"valid pixels: {100 * expected[1].float().mean().item():.0f}%"}
    for name, fn in impls.items():
        if name != "eager" and not isinstance(fn, str):
            notes[name] = mismatch(expected, fn, args, dtype)
    return notes


def bench_case(shape: tuple, dtype: str, impls: dict) -> Iterator[common.Row]:
    """Times every implementation on one shape and dtype."""
    checks = check_against_eager(shape, dtype, impls)
    arg_sets = common.input_sets(lambda: make_inputs(shape, DTYPES[dtype]))
    num_bytes = minimal_bytes(shape, DTYPES[dtype])
    label = ", ".join(map(str, shape))
    for name, fn in impls.items():
        check = checks.get(name, "")
        row = common.measure(label, dtype, PASS, name, fn, arg_sets, num_bytes, check)
        common.print_row(row)
        yield row


def run_gpu(shapes: list[tuple], out_dir: Path) -> None:
    """Measures every shape, dtype and implementation; writes and prints the table."""
    impls = common.gpu_implementations(composite, fused)

    def bench_shape(shape: tuple) -> Iterator[common.Row]:
        return (row for dtype in DTYPES for row in bench_case(shape, dtype, impls))

    common.measure_table(OP, NOTES, shapes, out_dir, bench_shape)


def main(argv: list[str] | None = None) -> int:
    return common.gpu_main(argv, OP, "propagation_gather GPU benchmark", SHAPES, run_gpu)


# CPU figures (pytest-benchmark): cpu backend vs torch reference backend vs eager composite.


def pytest_generate_tests(metafunc):
    impls = common.cpu_implementations(fused, composite)
    common.parametrize_implementations(metafunc, "cpu_impl", impls)


def test_cpu_forward(benchmark, cpu_impl):
    torch.manual_seed(0)
    args = make_inputs(CPU_SHAPE, torch.float32, "cpu")
    benchmark.group = f"{OP} {CPU_SHAPE} float32"
    benchmark(cpu_impl, *args)


if __name__ == "__main__":
    sys.exit(main())
