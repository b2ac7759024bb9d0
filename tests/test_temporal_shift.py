"""temporal_shift (SPEC 3.3) on every backend against the reference; compat.tsm_shift."""

from __future__ import annotations

import pytest
import torch
from support import (
    DTYPE_CASES,
    MAIN_CASE,
    ONE_DTYPE_CASES,
    backend_params,
    dtype_cases,
    interpreted,
    own_process_on_cuda,
    sanitized_params,
)

import fused_inpaint as fi
from fused_inpaint import reference
from fused_inpaint.ops.temporal_shift import OPS

BACKENDS = backend_params("temporal_shift")
KERNEL_BACKENDS = backend_params("temporal_shift", backends=("cpu", "cuda", "triton"))

# name: ((N, T, C, H, W), fold_div, layout)
CASES = {
    "odd": ((2, 3, 8, 4, 5), 8, "contiguous"),
    "one_frame": ((1, 1, 5, 3, 3), 2, "contiguous"),
    "two_frames": ((2, 2, 7, 3, 4), 3, "contiguous"),
    "fold_div_1": ((1, 3, 4, 2, 3), 1, "contiguous"),
    "fold_zero": ((1, 3, 3, 2, 3), 8, "contiguous"),
    "time_major": ((2, 4, 6, 3, 5), 3, "time_major"),
    "strided": ((2, 3, 6, 4, 5), 2, "strided"),
}
# The CUDA kernel's extreme inputs, besides one frame and fold 0 of CASES: 1x1 frames, no
# channels.
EXTREMES = {
    "pixel": ((2, 3, 4, 1, 1), 2, "contiguous"),
    "no_channels": ((2, 3, 0, 4, 5), 2, "contiguous"),
}


def make_input(case: str, dtype: torch.dtype, device: str) -> torch.Tensor:
    (n, t, c, h, w), _, layout = (CASES | EXTREMES)[case]
    if layout == "time_major":  # (T, N, ...) storage seen as (N, T, ...)
        return torch.randn(t, n, c, h, w, device=device).to(dtype).transpose(0, 1)
    if layout == "strided":
        base = torch.randn(n, t, 2 * c, h, w + 3, device=device).to(dtype)
        return base[:, :, ::2, :, 1 : w + 1]
    return torch.randn(n, t, c, h, w, device=device).to(dtype)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_forward_and_backward_equal_reference(backend, device, case):
    fold_div = CASES[case][1]
    for dtype_case in dtype_cases(backend, device, every_dtype=case == MAIN_CASE[device]):
        x = make_input(case, DTYPE_CASES[dtype_case][0], device).requires_grad_()
        with fi.use_backend(backend):
            out = fi.temporal_shift(x, fold_div=fold_div)
        grad_out = torch.randn_like(out)
        (grad,) = torch.autograd.grad(out, x, grad_out)
        ref_x = x.detach().clone().requires_grad_()
        expected = reference.temporal_shift(ref_x, fold_div=fold_div)
        (expected_grad,) = torch.autograd.grad(expected, ref_x, grad_out)
        # A shift only moves values: exact in every dtype.
        assert torch.equal(out, expected), dtype_case
        assert torch.equal(grad, expected_grad), dtype_case


@pytest.mark.parametrize("dtype_case", sanitized_params("temporal_shift", ONE_DTYPE_CASES))
def test_cuda_kernel_on_extreme_inputs(dtype_case):
    """Both directions (the forward and the backward) on one frame, fold 0, 1x1 frames and
    no channels, against the reference on the CPU."""
    for case in ("one_frame", "fold_zero", *EXTREMES):
        x = make_input(case, DTYPE_CASES[dtype_case][0], "cpu")
        fold_div = (CASES | EXTREMES)[case][1]
        x_cuda = x.cuda().requires_grad_()
        with fi.use_backend("cuda"):
            out = fi.temporal_shift(x_cuda, fold_div=fold_div)
        grad_out = torch.randn_like(x)
        (grad,) = torch.autograd.grad(out, x_cuda, grad_out.cuda())
        ref_x = x.clone().requires_grad_()
        expected = reference.temporal_shift(ref_x, fold_div=fold_div)
        (expected_grad,) = torch.autograd.grad(expected, ref_x, grad_out)
        assert torch.equal(out.cpu(), expected), f"{dtype_case} {case}"
        assert torch.equal(grad.cpu(), expected_grad), f"{dtype_case} {case}"


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_gradcheck_float64(backend, device):
    x = torch.randn(2, 3, 5, 2, 3, dtype=torch.float64, device=device, requires_grad=True)
    with fi.use_backend(backend):
        assert torch.autograd.gradcheck(
            lambda x: fi.temporal_shift(x, fold_div=2),
            (x,),
            fast_mode=interpreted(backend, device),
        )


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
def test_opcheck(backend, device):
    x = make_input("time_major", torch.float32, device)
    torch.library.opcheck(OPS[backend], (x.requires_grad_(), 2, False))
    torch.library.opcheck(OPS[backend], (x.detach(), 1, True))


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_torch_compile_fullgraph(backend, device):
    torch._dynamo.reset()
    x = torch.randn(2, 3, 8, 4, 5, device=device, requires_grad=True)

    def loss(x):
        return (fi.temporal_shift(x, fold_div=4) ** 2).sum()

    with fi.use_backend(backend):
        value = torch.compile(loss, fullgraph=True)(x)
        (grad,) = torch.autograd.grad(value, x)
        expected = loss(x)
        (expected_grad,) = torch.autograd.grad(expected, x)
    torch.testing.assert_close(value, expected)
    torch.testing.assert_close(grad, expected_grad)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_empty_inputs(backend, device):
    for shape in [(0, 3, 4, 2, 2), (2, 0, 4, 2, 2), (2, 3, 0, 2, 2), (2, 3, 4, 0, 2)]:
        x = torch.randn(shape, device=device)
        with fi.use_backend(backend):
            assert fi.temporal_shift(x).shape == shape


def test_bad_arguments_name_the_argument():
    x = torch.randn(2, 3, 8, 4, 5)
    cases = [
        ((x[0],), {}, ValueError, r"x must have shape \(N, T, C, H, W\)"),
        ((x.long(),), {}, TypeError, "x must be a floating-point tensor"),
        ((x,), {"fold_div": 0}, ValueError, "fold_div must be an integer >= 1"),
        ((x,), {"fold_div": 2.5}, ValueError, "fold_div must be an integer >= 1"),
        (([1.0],), {}, TypeError, "x must be a torch.Tensor"),
    ]
    for args, kw, error, message in cases:
        with pytest.raises(error, match=message):
            fi.temporal_shift(*args, **kw)


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
@own_process_on_cuda
def test_registered_op_rejects_bad_arguments(backend, device):
    x = torch.randn(2, 3, 8, 4, 5, device=device)
    with pytest.raises(RuntimeError):
        OPS[backend](x[0], 1, False)
    with pytest.raises(RuntimeError):
        OPS[backend](x, -1, False)


def tsm_shift_composite(x, n_segment, fold_div=3):
    """TSM's TemporalShift.shift, rewritten: (N*T, C, H, W) in, the same layout out."""
    nt, c, h, w = x.size()
    x = x.view(nt // n_segment, n_segment, c, h, w)
    fold = c // fold_div
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold : 2 * fold] = x[:, :-1, fold : 2 * fold]
    out[:, :, 2 * fold :] = x[:, :, 2 * fold :]
    return out.view(nt, c, h, w)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_compat_matches_tsm(backend, device):
    x = torch.randn(2 * 4, 16, 5, 6, device=device, requires_grad=True)
    with fi.use_backend(backend):
        out = fi.compat.tsm_shift(x, 4)
        out_div4 = fi.compat.tsm_shift(x, 4, fold_div=4)
    assert torch.equal(out, tsm_shift_composite(x, 4, fold_div=8))
    assert torch.equal(out_div4, tsm_shift_composite(x, 4, fold_div=4))
    grad_out = torch.randn_like(out)
    (grad,) = torch.autograd.grad(out, x, grad_out)
    (expected,) = torch.autograd.grad(tsm_shift_composite(x, 4, fold_div=8), x, grad_out)
    assert torch.equal(grad, expected)
    with pytest.raises(ValueError, match="n_segment"):
        fi.compat.tsm_shift(x, 3)
