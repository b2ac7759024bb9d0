"""The Triton kernels' float math (fused_inpaint.triton._math) against float64, under the
interpreter and on the GPU, where Triton's own float32 ``/`` and ``tl.exp`` are approximate."""

from __future__ import annotations

import pytest
import torch
from support import HAS_GPU

triton = pytest.importorskip("triton")
tl = pytest.importorskip("triton.language")

from fused_inpaint.triton._math import divide, exp_nonpositive  # noqa: E402

DEVICES = [
    pytest.param("cpu", id="interpreter"),
    pytest.param(
        "cuda",
        marks=[pytest.mark.gpu, pytest.mark.skipif(not HAS_GPU, reason="no CUDA device")],
    ),
]
BLOCK = 1024


@triton.jit
def math_kernel(a_ptr, b_ptr, quotient_ptr, exp_ptr, n, BLOCK: tl.constexpr):
    """quotient = divide(a, b), exp = exp_nonpositive(a), elementwise over n values."""
    i = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = i < n
    a = tl.load(a_ptr + i, mask=mask, other=1.0)
    b = tl.load(b_ptr + i, mask=mask, other=1.0)
    tl.store(quotient_ptr + i, divide(a, b), mask=mask)
    tl.store(exp_ptr + i, exp_nonpositive(a), mask=mask)


def run(a: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    quotient, exp = torch.empty_like(a), torch.empty_like(a)
    math_kernel[(triton.cdiv(a.numel(), BLOCK),)](a, b, quotient, exp, a.numel(), BLOCK=BLOCK)
    return quotient.cpu(), exp.cpu()


def ulps(actual: torch.Tensor, expected: torch.Tensor) -> torch.Tensor:
    """|actual - expected| in units of the last place of expected's float32 rounding."""
    e32 = expected.float()
    ulp = (torch.nextafter(e32.abs(), torch.tensor(float("inf"))) - e32.abs()).double()
    return (actual.double() - expected).abs() / ulp


@pytest.mark.parametrize("device", DEVICES)
def test_float32_division_rounds_to_nearest_and_exp_is_within_two_ulps(device):
    generator = torch.Generator().manual_seed(0)
    a = -torch.rand(4096, generator=generator, dtype=torch.float64) * 87
    b = torch.exp(torch.randn(4096, generator=generator, dtype=torch.float64) * 4)
    a, b = a.float(), b.float()
    quotient, exp = run(a.to(device), b.to(device))
    # Rounding the float64 quotient again to float32 is exact rounding (53 >= 2 * 24 + 2).
    assert torch.equal(quotient, (a.double() / b.double()).float())
    assert ulps(exp, torch.exp(a.double())).max() <= 2


@pytest.mark.parametrize("device", DEVICES)
def test_exp_of_extremes(device):
    a = torch.tensor([0.0, -0.0, -86.9, -87.5, -1e30, -float("inf"), float("nan")])
    _, exp = run(a.to(device), torch.ones_like(a).to(device))
    assert torch.equal(exp[:2], torch.ones(2))
    assert ulps(exp[2:3], torch.exp(a[2:3].double())).max() <= 2
    assert torch.equal(exp[3:6], torch.zeros(3))
    assert exp[6].isnan()


@pytest.mark.parametrize("device", DEVICES)
def test_float64_goes_through_the_precise_operations(device):
    a = torch.tensor([-0.3, -20.0, -700.0], dtype=torch.float64)
    b = torch.tensor([3.0, 7.0, 1e-300], dtype=torch.float64)
    quotient, exp = run(a.to(device), b.to(device))
    assert torch.equal(quotient, a / b)
    torch.testing.assert_close(exp, torch.exp(a), rtol=4e-16, atol=0)
