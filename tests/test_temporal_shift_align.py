"""temporal_shift_align (SPEC 3.4) on every backend against the float64 reference."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from support import (
    DTYPE_CASES,
    assert_matches_reference,
    backend_params,
    check_second_order,
    dtype_cases,
    interpreted,
    own_process_on_cuda,
    sanitized_params,
)

import fused_inpaint as fi
from fused_inpaint import reference
from fused_inpaint.ops.temporal_shift_align import OPS

BACKENDS = backend_params("temporal_shift_align")
KERNEL_BACKENDS = backend_params("temporal_shift_align", backends=("cpu", "cuda", "triton"))

# name: ((N, T, C, H, W), fold_div, (Hf, Wf), flow kind, masks, causal)
CASES = {
    "flow_2x": ((2, 3, 8, 5, 6), 4, (10, 12), "small", "both", False),
    "same_res": ((1, 4, 6, 5, 7), 3, (5, 7), "small", "fw", False),
    "flow_coarser": ((2, 3, 5, 6, 7), 2, (3, 4), "small", "bw", False),
    "flow_1x1": ((1, 3, 4, 4, 5), 4, (1, 1), "small", "none", False),
    "one_frame": ((2, 1, 8, 3, 4), 4, (6, 8), "small", "both", False),
    "two_frames_odd_c": ((1, 2, 7, 4, 5), 3, (8, 10), "small", "both", False),
    "causal": ((2, 3, 8, 4, 5), 4, (8, 10), "small", "bw", True),
    "large_flow": ((1, 3, 6, 5, 6), 3, (10, 12), "large", "both", False),
    "nonfinite": ((1, 3, 6, 5, 6), 3, (5, 6), "nonfinite", "none", False),
    "time_major": ((2, 3, 6, 4, 5), 2, (8, 10), "small", "both", False),
}
# The CUDA kernels' extreme inputs, besides those of CASES: NaN, inf and 1e30 flows on a
# 1x1 frame, and with no channels.
EXTREMES = {
    "pixel": ((1, 3, 4, 1, 1), 2, (1, 1), "extreme", "both", False),
    "no_channels": ((2, 3, 0, 4, 5), 2, (8, 10), "extreme", "both", False),
}
# The case run in every dtype (support.MAIN_CASE): on the GPU the non-contiguous one.
MAIN_CASE = {"cpu": "flow_2x", "cuda": "time_major"}


def flow_dtype_cases(backend: str, device: str, every_dtype: bool = True) -> list[str]:
    """The dtype cases of a backend whose flows are float32/float64, as TSAM takes them."""
    return [
        d
        for d in dtype_cases(backend, device, every_dtype)
        if DTYPE_CASES[d][1] in (torch.float32, torch.float64)
    ]


def make_flow(kind: str, shape) -> torch.Tensor:
    n, k, hf, wf = shape
    flow = torch.randn(n, k, 2, hf, wf, dtype=torch.float64) * 2
    if kind == "large":
        far = torch.rand(flow.shape) < 0.3
        flow[far] = torch.randn(int(far.sum()), dtype=torch.float64) * 1e3
    elif kind in ("nonfinite", "extreme"):
        bad = torch.rand(flow.shape) < 0.25
        values = [float("nan"), float("inf"), -float("inf")]
        if kind == "extreme":
            values += [1e30, -1e30]
        flow[bad] = torch.tensor(values, dtype=torch.float64)[
            torch.randint(0, len(values), (int(bad.sum()),))
        ]
    return flow


def make_inputs(case: str, dtype_case: str, device: str):
    """(x, flow_fw, flow_bw, valid_fw, valid_bw) of a case; flow_fw is None when causal."""
    (n, t, c, h, w), _, (hf, wf), kind, masks, causal = (CASES | EXTREMES)[case]
    dtype, flow_dtype = DTYPE_CASES[dtype_case]
    if case == "time_major":
        x = torch.randn(t, n, c, h, w, dtype=torch.float64).transpose(0, 1)
    else:
        x = torch.randn(n, t, c, h, w, dtype=torch.float64)
    x = x.to(device=device, dtype=dtype)
    flows = [
        make_flow(kind, (n, t - 1, hf, wf)).to(device=device, dtype=flow_dtype) for _ in range(2)
    ]
    valid = []
    for side in ("fw", "bw"):
        mask = torch.rand(n, t - 1, 1, hf, wf, dtype=torch.float64)
        mask = torch.where(mask < 0.2, 0.0, torch.where(mask > 0.6, 1.0, mask))  # 0, 1, between
        valid.append(mask.to(device=device, dtype=flow_dtype) if masks in (side, "both") else None)
    return x, None if causal else flows[0], flows[1], valid[0], valid[1]


def run(backend, x, flow_fw, flow_bw, valid_fw, valid_bw, **kw):
    with fi.use_backend(backend):
        return fi.temporal_shift_align(x, flow_fw, flow_bw, valid_fw, valid_bw, **kw)


def reference_results(inputs, grad_out, kw, cast):
    """Reference output and gradients (x, flow_fw, flow_bw) on inputs cast by ``cast``."""
    x, flow_fw, flow_bw, valid_fw, valid_bw = (None if t is None else cast(t) for t in inputs)
    leaves = [t.requires_grad_() for t in (x, flow_fw, flow_bw) if t is not None]
    out = reference.temporal_shift_align(x, flow_fw, flow_bw, valid_fw, valid_bw, **kw)
    return out, torch.autograd.grad(out, leaves, cast(grad_out), allow_unused=True)


def check_against_reference(backend, device, case, dtype_case, inputs_device):
    """The op on ``backend`` with the case's inputs moved to ``device``, forward and
    backward, against the reference on ``inputs_device``, in float64 and in the inputs'
    precision."""
    _, fold_div, _, _, _, causal = (CASES | EXTREMES)[case]
    kw = {"fold_div": fold_div, "causal": causal}
    inputs = make_inputs(case, dtype_case, inputs_device)
    on_device = [None if t is None else t.to(device) for t in inputs]
    leaves = [t.requires_grad_() for t in on_device[:3] if t is not None]
    out = run(backend, *on_device, **kw)
    grad_out = torch.randn_like(out)
    grads = torch.autograd.grad(out, leaves, grad_out, allow_unused=True)
    grad_out = grad_out.to(inputs_device)
    out64, grads64 = reference_results(inputs, grad_out, kw, lambda t: t.detach().double())
    out_lp, grads_lp = reference_results(inputs, grad_out, kw, lambda t: t.detach().clone())
    tag = f"{dtype_case} {case}"
    assert out.dtype == inputs[0].dtype
    assert_matches_reference(out, out64, out_lp, f"out {tag}")
    for i, (g, g64, g_lp) in enumerate(zip(grads, grads64, grads_lp, strict=True)):
        name = f"grad of input {i} {tag}"  # x, then the flows given
        if g64 is None:  # t = 1: no flow is read
            assert g is None or not g.any(), name
            continue
        assert_matches_reference(g, g64, g_lp, name)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_forward_and_backward_match_reference(backend, device, case):
    for dtype_case in flow_dtype_cases(backend, device, every_dtype=case == MAIN_CASE[device]):
        check_against_reference(backend, device, case, dtype_case, device)


@pytest.mark.parametrize(
    "dtype_case", sanitized_params("temporal_shift_align", flow_dtype_cases("cuda", "cuda"))
)
def test_cuda_kernels_on_extreme_inputs(dtype_case):
    """Forward and backward, with and without masks and causal, on the extreme cases. The
    reference runs on the CPU: under compute-sanitizer, little but the kernels runs on the
    GPU."""
    for case in ("large_flow", "nonfinite", "flow_1x1", "causal", *EXTREMES):
        check_against_reference("cuda", "cuda", case, dtype_case, "cpu")


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("causal", [False, True])
def test_zero_flows_equal_temporal_shift(backend, device, causal):
    for dtype_case in flow_dtype_cases(backend, device):
        dtype, flow_dtype = DTYPE_CASES[dtype_case]
        x = torch.randn(2, 4, 16, 5, 6, device=device).to(dtype)
        zero = torch.zeros(2, 3, 2, 10, 12, device=device, dtype=flow_dtype)
        ones = torch.ones(2, 3, 1, 10, 12, device=device, dtype=flow_dtype)
        out = run(backend, x, zero, zero, ones, ones, fold_div=4, causal=causal)
        expected = reference.temporal_shift(x, fold_div=4)
        if causal:
            expected[:, :, :4] = x[:, :, :4]
        assert torch.equal(out, expected), dtype_case


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_untrusted_alignment_keeps_own_features(backend, device):
    x = torch.randn(1, 3, 8, 4, 5, device=device)
    flow = torch.randn(1, 2, 2, 4, 5, device=device)
    zeros = torch.zeros(1, 2, 1, 4, 5, device=device)
    out = run(backend, x, flow, flow, zeros, zeros, fold_div=4)
    assert torch.equal(out[:, :-1, :2], x[:, :-1, :2])
    assert torch.equal(out[:, 1:, 2:4], x[:, 1:, 2:4])
    assert not out[:, -1, :2].any() and not out[:, 0, 2:4].any()
    assert torch.equal(out[:, :, 4:], x[:, :, 4:])


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_gradcheck_float64(backend, device):
    x, flow_fw, flow_bw, valid_fw, valid_bw = make_inputs("flow_coarser", "fp64", device)
    valid_fw = torch.rand_like(flow_fw[:, :, :1])

    def shift_align(x, flow_fw, flow_bw):
        return run(backend, x, flow_fw, flow_bw, valid_fw, valid_bw, fold_div=2)

    inputs = tuple(t.requires_grad_() for t in (x, flow_fw, flow_bw))
    assert torch.autograd.gradcheck(
        shift_align, inputs, eps=1e-6, atol=1e-7, fast_mode=interpreted(backend, device)
    )


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_non_finite_features_where_the_weight_is_0_or_1(backend, device):
    # A weight of 0 keeps the frame's own value, 1 takes the sample whole: the other side is
    # not read even where it is NaN or inf; a weight between blends them (non-finite too).
    generator = torch.Generator().manual_seed(3)
    for trial in range(6):
        x = torch.randn(1, 3, 4, 4, 5, generator=generator, dtype=torch.float64)
        spots = torch.randperm(x.numel(), generator=generator)[:4]
        x.view(-1)[spots] = torch.tensor([math.nan, math.inf, -math.inf, math.nan]).double()
        shape = (1, 2, 2, 4, 5)
        flows = [
            torch.randint(-1, 2, shape, generator=generator).double()  # taps of weight 0
            if trial % 2
            else torch.randn(shape, generator=generator, dtype=torch.float64)
            for _ in range(2)
        ]
        valid = torch.rand(1, 2, 1, 4, 5, generator=generator, dtype=torch.float64)
        valid = torch.where(valid < 0.3, 0.0, torch.where(valid > 0.6, 1.0, valid))
        inputs = [t.to(device=device, dtype=torch.float32) for t in (x, *flows, valid, valid)]
        expected = reference.temporal_shift_align(x, *flows, valid, valid, fold_div=4)
        out = run(backend, *inputs, fold_div=4)
        torch.testing.assert_close(out.cpu(), expected.float(), equal_nan=True)
        kept = (valid == 0).expand(-1, -1, 1, -1, -1)  # a behind-channel keeps its own value
        own = x[:, 1:, 1:2].float()[kept]
        torch.testing.assert_close(out[:, 1:, 1:2].cpu()[kept], own, rtol=0, atol=0, equal_nan=True)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_gradients_of_gradients(backend, device):
    x, flow_fw, flow_bw, valid_fw, valid_bw = make_inputs("flow_coarser", "fp64", device)

    def shift_align(x, flow_fw, flow_bw):
        return run(backend, x, flow_fw, flow_bw, valid_fw, valid_bw, fold_div=2) ** 2

    inputs = tuple(t.requires_grad_() for t in (x, flow_fw, flow_bw))
    check_second_order(backend, shift_align, inputs)


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
def test_opcheck(backend, device):
    x, flow_fw, flow_bw, valid_fw, valid_bw = make_inputs("flow_2x", "fp32", device)
    op = OPS[backend]
    args = (x.requires_grad_(), flow_fw.requires_grad_(), flow_bw.requires_grad_())
    torch.library.opcheck(op, (*args, valid_fw, valid_bw, 2, False))
    torch.library.opcheck(op, (*args, None, valid_bw, 1, True))
    backward_name = op._schema.name.split("::")[1].replace("align", "align_backward")
    backward_op = getattr(torch.ops.fused_inpaint, backward_name).default
    grad_out = torch.randn_like(x)
    plain = (x.detach(), flow_fw.detach(), flow_bw.detach())
    torch.library.opcheck(backward_op, (grad_out, *plain, valid_fw, valid_bw, 2, False, True))
    torch.library.opcheck(backward_op, (grad_out, *plain, None, None, 2, True, False))


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_torch_compile_fullgraph(backend, device):
    torch._dynamo.reset()
    x, flow_fw, flow_bw, valid_fw, valid_bw = make_inputs("flow_2x", "fp32", device)
    inputs = tuple(t.requires_grad_() for t in (x, flow_fw, flow_bw))

    def loss(x, flow_fw, flow_bw):
        out = fi.temporal_shift_align(x, flow_fw, flow_bw, valid_fw, valid_bw, fold_div=4)
        return (out**2).sum()

    with fi.use_backend(backend):
        value = torch.compile(loss, fullgraph=True)(*inputs)
        grads = torch.autograd.grad(value, inputs)
        expected = loss(*inputs)
        expected_grads = torch.autograd.grad(expected, inputs)
    torch.testing.assert_close(value, expected)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_module(backend, device):
    x, flow_fw, flow_bw, valid_fw, valid_bw = make_inputs("causal", "fp32", device)
    module = fi.nn.TemporalShiftAlign(fold_div=4, causal=True)
    with fi.use_backend(backend):
        out = module(x, None, flow_bw, valid_bw=valid_bw)
    expected = reference.temporal_shift_align(
        x, None, flow_bw, None, valid_bw, fold_div=4, causal=True
    )
    torch.testing.assert_close(out, expected)
    assert "causal=True" in repr(module)


def test_bad_arguments_name_the_argument():
    x = torch.randn(2, 3, 8, 4, 5)
    flow = torch.randn(2, 2, 2, 8, 10)
    valid = torch.ones(2, 2, 1, 8, 10)
    cases = [
        ((x[0], flow, flow), {}, ValueError, r"x must have shape \(N, T, C, H, W\)"),
        ((x, flow[:, :1], flow), {}, ValueError, "flow_fw must have shape"),
        ((x, flow, flow[:, :, :1]), {}, ValueError, "flow_bw must have shape"),
        ((x, flow, flow[..., :4]), {}, ValueError, "flow_fw must have shape"),
        ((x, flow.double(), flow), {}, TypeError, "flow_fw must have the dtype of x"),
        ((x.half(), flow.half(), flow.half()), {}, TypeError, "flow_bw must be float32"),
        ((x, None, flow), {}, ValueError, "flow_fw is required unless causal=True"),
        ((x, flow, flow, valid[..., :3]), {}, ValueError, "valid_fw must have shape"),
        ((x, flow, flow, None, valid[:, :, :, :2]), {}, ValueError, "valid_bw must have shape"),
        ((x, flow, flow), {"fold_div": 0}, ValueError, "fold_div must be an integer >= 1"),
        ((x, flow, flow), {"causal": "yes"}, TypeError, "causal must be a bool"),
        ((x, flow, flow.to("meta")), {}, ValueError, "flow_bw must be on the same device"),
    ]
    for args, kw, error, message in cases:
        with pytest.raises(error, match=message):
            fi.temporal_shift_align(*args, **kw)


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
@own_process_on_cuda
def test_registered_op_rejects_bad_arguments(backend, device):
    x = torch.randn(2, 3, 8, 4, 5, device=device)
    flow = torch.randn(2, 2, 2, 8, 10, device=device)
    op = OPS[backend]
    for args in [
        (x[0], flow, flow),
        (x, flow[:, :1], flow),
        (x, flow, flow[..., :3]),
        (x, flow.double(), flow.double()),
    ]:
        with pytest.raises(RuntimeError):
            op(*args, None, None, 1, False)


def tsam_composite(x, flow_fw, flow_bw, valid_fw, valid_bw, fold_div):
    """The chain every TSAM layer runs today: resize the flows and masks, build grids,
    grid_sample the shifted groups, blend by the masks, concatenate."""
    n, t, c, h, w = x.shape
    fold = c // fold_div

    def align(src, own, flow, valid):
        m = src.shape[0] * src.shape[1]
        src, own = src.flatten(0, 1), own.flatten(0, 1)
        hf, wf = flow.shape[-2:]
        f = F.interpolate(flow.flatten(0, 1), size=(h, w), mode="nearest")
        f = torch.stack([f[:, 0] * (w / wf), f[:, 1] * (h / hf)], dim=-1)
        gy, gx = torch.meshgrid(
            torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij"
        )
        q = torch.stack([gx, gy], dim=-1) + f
        grid = torch.stack([2 * q[..., 0] / (w - 1) - 1, 2 * q[..., 1] / (h - 1) - 1], dim=-1)
        sampled = F.grid_sample(src, grid, align_corners=True)
        inside = (
            ((q[..., 0] >= 0) & (q[..., 0] <= w - 1) & (q[..., 1] >= 0) & (q[..., 1] <= h - 1))
            .unsqueeze(1)
            .to(x.dtype)
        )
        trust = inside * F.interpolate(valid.flatten(0, 1), size=(h, w), mode="nearest")
        out = trust * sampled + (1 - trust) * own
        return out.view(m // (t - 1), t - 1, -1, h, w)

    zero = torch.zeros_like(x[:, :1, :fold])
    ahead = torch.cat([align(x[:, 1:, :fold], x[:, :-1, :fold], flow_fw, valid_fw), zero], 1)
    behind = torch.cat(
        [zero, align(x[:, :-1, fold : 2 * fold], x[:, 1:, fold : 2 * fold], flow_bw, valid_bw)], 1
    )
    return torch.cat([ahead, behind, x[:, :, 2 * fold :]], dim=2)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_matches_the_tsam_composite(backend, device):
    """Equal to the resize + grid_sample + blend + cat chain where flows map pixels exactly
    (grid_sample's normalisation rounds, hence float64)."""
    x, flow_fw, flow_bw, valid_fw, valid_bw = make_inputs("flow_2x", "fp64", device)
    out = run(backend, x, flow_fw, flow_bw, valid_fw, valid_bw, fold_div=4)
    expected = tsam_composite(
        x.cpu(), flow_fw.cpu(), flow_bw.cpu(), valid_fw.cpu(), valid_bw.cpu(), 4
    )
    torch.testing.assert_close(out.cpu(), expected, rtol=1e-9, atol=1e-9)
