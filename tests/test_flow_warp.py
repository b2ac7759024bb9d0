"""flow_warp (SPEC 3.1) on every backend against the float64 reference."""

from __future__ import annotations

import itertools

import pytest
import torch
import torch.nn.functional as F
from support import (
    DTYPE_CASES,
    HAS_GPU,
    MAIN_CASE,
    assert_matches_reference,
    backend_params,
    check_second_order,
    dtype_cases,
    interpreted,
    own_process_on_cuda,
    sanitized_params,
    with_layout,
)

import fused_inpaint as fi
from fused_inpaint import reference
from fused_inpaint.ops.flow_warp import OPS

BACKENDS = backend_params("flow_warp")
KERNEL_BACKENDS = backend_params("flow_warp", backends=("cpu", "cuda", "triton"))
MODES = [
    pytest.param(m, p, a, id=f"{m}-{p}-{'ac' if a else 'noac'}")
    for m, p, a in itertools.product(("bilinear", "nearest"), ("zeros", "border"), (True, False))
]

# name: (x shape (N, C, H, W), flow kind, layout)
CASES = {
    "odd": ((2, 3, 5, 7), "small", "contiguous"),
    "row": ((2, 3, 1, 9), "small", "contiguous"),
    "column": ((1, 4, 8, 1), "small", "contiguous"),
    "pixel": ((1, 2, 1, 1), "small", "contiguous"),
    "large_flow": ((2, 3, 6, 5), "large", "contiguous"),
    "edges": ((1, 3, 4, 6), "edges", "contiguous"),
    "nonfinite": ((2, 3, 5, 6), "nonfinite", "contiguous"),
    "channels_last": ((2, 5, 6, 7), "small", "channels_last"),
    "strided": ((2, 3, 5, 7), "small", "strided"),
}
# The CUDA kernels' extreme inputs, besides those of CASES: NaN and inf flows on a 1x1
# frame, flows past the frame (to 1e30) with no channels.
EXTREMES = {
    "pixel_nonfinite": ((1, 2, 1, 1), "nonfinite", "contiguous"),
    "no_channels": ((2, 0, 4, 5), "large", "contiguous"),
}


def make_flow(kind: str, n: int, h: int, w: int) -> torch.Tensor:
    """A float64 flow (N, 2, H, W) of the given kind."""
    flow = torch.randn(n, 2, h, w, dtype=torch.float64) * 2.5
    if kind == "large":  # most samples leave the frame, some absurdly far
        flow = torch.randn(n, 2, h, w, dtype=torch.float64) * 40
        far = torch.rand(n, 2, h, w) < 0.15
        flow[far] = torch.tensor([1e6, -1e6, 1e30, -1e30], dtype=torch.float64)[
            torch.randint(0, 4, (int(far.sum()),))
        ]
    elif kind == "edges":  # sample points exactly on and around the frame's edges
        for axis, size in ((0, w), (1, h)):
            targets = torch.tensor(
                [-1.5, -1.0, -0.5, 0.0, 0.5, size - 1.5, size - 1.0, size - 0.5, size, size + 0.5],
                dtype=torch.float64,
            )
            q = targets[torch.randint(0, len(targets), (n, h, w))]
            p = torch.arange(size, dtype=torch.float64)
            p = p.view(1, 1, w) if axis == 0 else p.view(1, h, 1)
            flow[:, axis] = q - p
    elif kind == "nonfinite":
        bad = torch.rand(n, 2, h, w) < 0.25
        flow[bad] = torch.tensor([float("nan"), float("inf"), -float("inf")], dtype=torch.float64)[
            torch.randint(0, 3, (int(bad.sum()),))
        ]
    return flow


def make_inputs(case: str, dtype_case: str, device: str):
    shape, kind, layout = (CASES | EXTREMES)[case]
    dtype, flow_dtype = DTYPE_CASES[dtype_case]
    n, _, h, w = shape
    x = torch.randn(shape, dtype=torch.float64).to(device=device, dtype=dtype)
    flow = make_flow(kind, n, h, w).to(device=device, dtype=flow_dtype)
    return with_layout(x, layout), with_layout(flow, layout)


def run(backend, x, flow, **kw):
    with fi.use_backend(backend):
        return fi.flow_warp(x, flow, **kw)


def reference_outputs(x, flow, grad_out, kw):
    """(out, grad_x, grad_flow) of the reference in float64 and in the inputs' own dtypes."""
    results = []
    for cast in (lambda t: t.detach().double(), lambda t: t.detach().clone()):
        rx, rf = cast(x).requires_grad_(), cast(flow).requires_grad_()
        out = reference.flow_warp(rx, rf, **kw)
        gx, gf = torch.autograd.grad(out, (rx, rf), cast(grad_out))
        results.append((out, gx, gf))
    return results


def check_against_reference(backend, device, x, flow, kw, tag):
    """flow_warp on ``backend`` with x and flow moved to ``device``, forward and backward,
    against the reference on their own device, in float64 and in their precision."""
    x_on, flow_on = (t.to(device).requires_grad_() for t in (x, flow))
    out = run(backend, x_on, flow_on, **kw)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x_on, flow_on), grad_out)
    expected64, expected_lowp = reference_outputs(x, flow, grad_out.to(x.device), kw)
    assert out.dtype == x.dtype and grads[1].dtype == flow.dtype
    names = ("out", "grad_x", "grad_flow")
    for name, actual, e64, e_lp in zip(
        names, (out, *grads), expected64, expected_lowp, strict=True
    ):
        assert_matches_reference(actual, e64, e_lp, f"{name} {tag}")


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("mode,padding_mode,align_corners", MODES)
@pytest.mark.parametrize("case", list(CASES))
def test_forward_and_backward_match_reference(
    backend, device, mode, padding_mode, align_corners, case
):
    kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
    for dtype_case in dtype_cases(backend, device, every_dtype=case == MAIN_CASE[device]):
        x, flow = make_inputs(case, dtype_case, device)
        check_against_reference(backend, device, x, flow, kw, f"{dtype_case} {case}")


@pytest.mark.parametrize("dtype_case", sanitized_params("flow_warp"))
def test_cuda_kernels_on_extreme_inputs(dtype_case):
    """Forward and backward in every mode on the extreme cases. The reference runs on the
    CPU: under compute-sanitizer, little but the kernels runs on the GPU."""
    for case, mode in itertools.product(["large_flow", "nonfinite", *EXTREMES], MODES):
        kw = dict(zip(("mode", "padding_mode", "align_corners"), mode.values, strict=True))
        x, flow = make_inputs(case, dtype_case, "cpu")
        check_against_reference("cuda", "cuda", x, flow, kw, f"{dtype_case} {case} {mode.id}")


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_output_keeps_memory_format(backend, device):
    x, flow = make_inputs("channels_last", "fp32", device)
    out = run(backend, x, flow)
    assert out.is_contiguous(memory_format=torch.channels_last)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_nonfinite_flow_samples_nothing(backend, device):
    x = torch.randn(1, 2, 4, 5, device=device)
    flow = torch.zeros(1, 2, 4, 5, device=device)
    flow[0, 0, 1, 2] = float("nan")
    flow[0, 1, 2, 3] = float("inf")
    flow[0, 0, 3, 0] = -float("inf")
    for padding_mode in ("zeros", "border"):
        out = run(backend, x, flow, padding_mode=padding_mode)
        assert torch.equal(out[0, :, 1, 2], torch.zeros(2, device=device))
        assert torch.equal(out[0, :, 2, 3], torch.zeros(2, device=device))
        assert torch.equal(out[0, :, 3, 0], torch.zeros(2, device=device))
        untouched = torch.ones(4, 5, dtype=torch.bool)
        untouched[1, 2] = untouched[2, 3] = untouched[3, 0] = False
        assert torch.equal(out[0][:, untouched], x[0][:, untouched])


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_identity_and_integer_shift(backend, device):
    x = torch.randn(2, 3, 6, 7, device=device)
    assert torch.equal(run(backend, x, torch.zeros(2, 2, 6, 7, device=device)), x)
    flow = torch.zeros(2, 2, 6, 7, device=device)
    flow[:, 0] = 1.0  # sample one column to the right
    out = run(backend, x, flow)
    assert torch.equal(out[..., :-1], x[..., 1:])
    assert torch.equal(out[..., -1], torch.zeros_like(out[..., -1]))


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("mode,padding_mode,align_corners", MODES)
def test_gradcheck_float64(backend, device, mode, padding_mode, align_corners):
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64, device=device, requires_grad=True)
    # Random flows keep sample points off the kinks at integer coordinates.
    flow = (torch.randn(2, 2, 4, 5, dtype=torch.float64, device=device) * 2).requires_grad_()

    def warp(x, flow):
        return run(
            backend, x, flow, mode=mode, padding_mode=padding_mode, align_corners=align_corners
        )

    assert torch.autograd.gradcheck(
        warp, (x, flow), eps=1e-6, atol=1e-7, fast_mode=interpreted(backend, device)
    )


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_gradients_of_gradients(backend, device):
    x = torch.randn(1, 2, 3, 4, dtype=torch.float64, device=device, requires_grad=True)
    flow = (torch.randn(1, 2, 3, 4, dtype=torch.float64, device=device) * 2).requires_grad_()
    check_second_order(backend, lambda x, flow: run(backend, x, flow) ** 2, (x, flow))


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_opcheck(backend, device, layout):
    x = with_layout(torch.randn(2, 3, 5, 6, device=device), layout)
    flow = with_layout(torch.randn(2, 2, 5, 6, device=device) * 2, layout)
    op = OPS[backend]
    torch.library.opcheck(op, (x.requires_grad_(), flow.requires_grad_(), 0, 1, True))
    torch.library.opcheck(op, (x.detach(), flow.detach(), 1, 0, False))
    backward_op = getattr(
        torch.ops.fused_inpaint,
        op._schema.name.split("::")[1].replace("flow_warp", "flow_warp_backward"),
    ).default
    grad_out = torch.randn_like(x)
    torch.library.opcheck(backward_op, (grad_out, x.detach(), flow.detach(), 0, 0, True))


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_torch_compile_fullgraph(backend, device):
    torch._dynamo.reset()
    x = torch.randn(2, 3, 5, 6, device=device, requires_grad=True)
    flow = (torch.randn(2, 2, 5, 6, device=device) * 2).requires_grad_()

    def loss(x, flow):
        return (fi.flow_warp(x, flow, padding_mode="border") ** 2).sum()

    with fi.use_backend(backend):
        compiled = torch.compile(loss, fullgraph=True)
        value = compiled(x, flow)
        grads = torch.autograd.grad(value, (x, flow))
        expected = loss(x, flow)
        expected_grads = torch.autograd.grad(expected, (x, flow))
    torch.testing.assert_close(value, expected)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_empty_inputs(backend, device):
    for shape in [(0, 3, 4, 5), (2, 0, 4, 5), (2, 3, 0, 5), (2, 3, 4, 0)]:
        n, _, h, w = shape
        x = torch.randn(shape, device=device, requires_grad=True)
        flow = torch.randn(n, 2, h, w, device=device, requires_grad=True)
        out = run(backend, x, flow)
        assert out.shape == shape
        grad_x, grad_flow = torch.autograd.grad(out.sum(), (x, flow), allow_unused=True)
        if grad_flow is not None:
            assert torch.equal(grad_flow, torch.zeros_like(flow))


def test_bad_arguments_name_the_argument():
    x = torch.randn(2, 3, 5, 6)
    flow = torch.randn(2, 2, 5, 6)
    cases = [
        ((x[0], flow), {}, ValueError, "x must have shape"),
        ((x, flow[0]), {}, ValueError, "flow must have shape"),
        ((x, flow[:1]), {}, ValueError, r"flow must have shape \(N, 2, H, W\)"),
        ((x, flow[:, :1]), {}, ValueError, "flow must have shape"),
        ((x, flow[..., :5]), {}, ValueError, "flow must have shape"),
        ((x.long(), flow), {}, TypeError, "x must be a floating-point tensor"),
        ((x, flow.double()), {}, TypeError, "flow must have the dtype of x"),
        ((x.half(), flow.double()), {}, TypeError, "flow must have the dtype of x"),
        ((x, flow.to("meta")), {}, ValueError, "flow must be on the same device as x"),
        (("x", flow), {}, TypeError, "x must be a torch.Tensor"),
        ((x, flow), {"mode": "bicubic"}, ValueError, "mode must be one of"),
        ((x, flow), {"padding_mode": "reflection"}, ValueError, "padding_mode must be one of"),
        ((x, flow), {"align_corners": 1}, TypeError, "align_corners must be a bool"),
    ]
    for args, kw, error, message in cases:
        with pytest.raises(error, match=message):
            fi.flow_warp(*args, **kw)


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
@own_process_on_cuda
def test_registered_op_rejects_bad_arguments(backend, device):
    """Direct callers of the registered op get an error, never a crash."""
    x = torch.randn(2, 3, 5, 6, device=device)
    flow = torch.randn(2, 2, 5, 6, device=device)
    op = OPS[backend]
    for args in [
        (x[0], flow, 0, 0, True),
        (x, flow[:, :1], 0, 0, True),
        (x, flow[..., :4], 0, 0, True),
        (x, flow, 7, 0, True),
        (x, flow, 0, 9, True),
    ]:
        with pytest.raises(RuntimeError):
            op(*args)


def test_backend_must_run_on_the_tensors_device():
    x, flow = torch.randn(1, 2, 3, 4), torch.randn(1, 2, 3, 4)
    with fi.use_backend("cuda"), pytest.raises(RuntimeError, match="backend 'cuda' cannot run"):
        fi.flow_warp(x, flow)
    if fi.available_backends()["cpu"].available:
        with fi.use_backend("cpu"), pytest.raises(TypeError, match="does not support dtype"):
            fi.flow_warp(x.half(), flow)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_module(backend, device):
    module = fi.nn.FlowWarp(padding_mode="border", align_corners=False)
    x, flow = make_inputs("odd", "fp32", device)
    with fi.use_backend(backend):
        out = module(x, flow)
    expected = reference.flow_warp(x, flow, padding_mode="border", align_corners=False)
    torch.testing.assert_close(out, expected)
    assert "border" in repr(module)


def mmagic_flow_warp(x, flow, interpolation="bilinear", padding_mode="zeros", align_corners=True):
    """mmagic's composite, rewritten: pixel grid + flow, normalised, then grid_sample."""
    _, _, h, w = x.shape
    grid_y, grid_x = torch.meshgrid(
        torch.arange(0, h, device=x.device), torch.arange(0, w, device=x.device), indexing="ij"
    )
    grid = torch.stack((grid_x, grid_y), 2).type_as(x)
    grid_flow = grid + flow
    grid_flow_x = 2.0 * grid_flow[:, :, :, 0] / max(w - 1, 1) - 1.0
    grid_flow_y = 2.0 * grid_flow[:, :, :, 1] / max(h - 1, 1) - 1.0
    grid_flow = torch.stack((grid_flow_x, grid_flow_y), dim=3)
    return F.grid_sample(
        x, grid_flow, mode=interpolation, padding_mode=padding_mode, align_corners=align_corners
    )


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("mode,padding_mode,align_corners", MODES)
def test_compat_matches_mmagic(backend, device, mode, padding_mode, align_corners):
    x = torch.randn(2, 3, 9, 11, dtype=torch.float64, device=device, requires_grad=True)
    flow = (torch.randn(2, 9, 11, 2, dtype=torch.float64, device=device) * 4).requires_grad_()
    with fi.use_backend(backend):
        out = fi.compat.flow_warp(x, flow, mode, padding_mode, align_corners)
    expected = mmagic_flow_warp(x, flow, mode, padding_mode, align_corners)
    torch.testing.assert_close(out, expected, rtol=1e-10, atol=1e-10)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, (x, flow), grad_out)
    expected_grads = torch.autograd.grad(expected, (x, flow), grad_out)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-9, atol=1e-9)


def test_compat_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="spatial sizes"):
        fi.compat.flow_warp(torch.randn(1, 2, 4, 5), torch.randn(1, 4, 6, 2))


def test_nan_poisoning_is_active():
    assert torch.isnan(torch.empty(8)).all()
    if HAS_GPU:
        assert torch.isnan(torch.empty(8, device="cuda")).all()
