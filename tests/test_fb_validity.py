"""fb_validity (SPEC 3.2) on every backend against the reference."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from support import (
    DTYPE_CASES,
    MAIN_CASE,
    ONE_DTYPE_CASES,
    backend_params,
    dtype_cases,
    own_process_on_cuda,
    sanitized_params,
    with_layout,
)

import fused_inpaint as fi
from fused_inpaint import reference
from fused_inpaint.ops.fb_validity import OPS

BACKENDS = backend_params("fb_validity")
KERNEL_BACKENDS = backend_params("fb_validity", backends=("cpu", "cuda", "triton"))

# name: (N, H, W, flow kind, layout)
CASES = {
    "odd": (2, 9, 11, "consistent", "contiguous"),
    "row": (2, 1, 13, "consistent", "contiguous"),
    "column": (1, 10, 1, "consistent", "contiguous"),
    "large_flow": (2, 7, 8, "large", "contiguous"),
    "nonfinite": (2, 8, 9, "nonfinite", "contiguous"),
    "channels_last": (2, 8, 9, "consistent", "channels_last"),
    "strided": (2, 9, 7, "consistent", "strided"),
}
# The CUDA kernels' extreme inputs, besides those of CASES: NaN and inf on a 1x1 frame.
EXTREMES = {"pixel": (1, 1, 1, "nonfinite", "contiguous")}
# The share of pixels whose test value may land on the other side of a threshold
# through float rounding; every such pixel must also lie within rounding of it.
MAX_NEAR_THRESHOLD = 0.02
NEAR = 1e-4  # relative distance to the threshold that float32 rounding can cross


def smooth_flow(n: int, h: int, w: int, magnitude: float) -> torch.Tensor:
    """A smooth random flow (N, 2, H, W) in float64: a coarse field upsampled."""
    coarse = torch.randn(n, 2, 3, 3, dtype=torch.float64) * magnitude
    return F.interpolate(coarse, size=(h, w), mode="bicubic", align_corners=True)


def make_flows(case: str, dtype_case: str, device: str):
    """(flow_fw, flow_bw): roughly inverse flows, noisy enough that about half the pixels
    pass the test, plus the case's extremes."""
    n, h, w, kind, layout = (CASES | EXTREMES)[case]
    _, flow_dtype = DTYPE_CASES[dtype_case]
    fw = smooth_flow(n, h, w, 2.0)
    bw = -fw + torch.randn(n, 2, h, w, dtype=torch.float64) * 0.6
    if kind == "large":
        fw = fw * 30
        fw[torch.rand(fw.shape) < 0.1] = 1e30
    elif kind == "nonfinite":
        for flow in (fw, bw):
            bad = torch.rand(flow.shape) < 0.2
            flow[bad] = torch.tensor(
                [float("nan"), float("inf"), -float("inf")], dtype=torch.float64
            )[torch.randint(0, 3, (int(bad.sum()),))]
    return tuple(with_layout(f.to(device=device, dtype=flow_dtype), layout) for f in (fw, bw))


def make_hole(flow: torch.Tensor) -> torch.Tensor:
    n, _, h, w = flow.shape
    return torch.rand(n, 1, h, w, device=flow.device) < 0.3


def check_agreement(actual, flow, other, kw, source_mask, name):
    """``actual`` equals the reference mask except at pixels whose test value lies within
    float rounding of a threshold; returns how many such pixels there were."""
    expected = reference._fb_valid_one(
        flow.double(), other.double(), kw["alpha"], kw["beta"], kw["check_bounds"], source_mask
    )
    assert actual.shape == expected.shape, name
    values = set(actual.double().unique().tolist())
    assert values <= {0.0, 1.0}, f"{name}: values {values}"
    disagree = actual.bool().cpu() != expected.cpu()
    if disagree.any():
        v = reference.fb_test_values(
            flow.double(), other.double(), kw["alpha"], kw["beta"], source_mask
        )
        margin = (v.lhs - v.rhs).abs() / (v.lhs.abs() + v.rhs.abs() + 1e-30)
        near = margin <= NEAR
        if v.hole is not None:
            near |= (v.hole - 0.1).abs() <= NEAR
        far = disagree & ~near.cpu()
        assert not far.any(), f"{name}: {int(far.sum())} pixels disagree away from a threshold"
    count = int(disagree.sum())
    print(f"{name}: {count} of {actual.numel()} pixels within rounding of a threshold differ")
    assert count <= MAX_NEAR_THRESHOLD * actual.numel() + 1, f"{name}: {count} near-threshold"
    return count


OPTIONS = [
    pytest.param(dict(check_bounds=True), None, id="bounds"),
    pytest.param(dict(check_bounds=False), None, id="no-bounds"),
    pytest.param(dict(check_bounds=True, alpha=0.05, beta=1.0), "t1", id="hole-alpha-beta"),
    pytest.param(dict(check_bounds=False), "t1", id="hole-no-bounds"),
]


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("options,holes", OPTIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(backend, device, options, holes, case):
    kw = {"alpha": 0.01, "beta": 0.5, **options}
    for dtype_case in dtype_cases(backend, device, every_dtype=case == MAIN_CASE[device]):
        if dtype_case.endswith("flow32"):
            continue  # a flow-only op: its dtype is the flow's
        fw, bw = make_flows(case, dtype_case, device)
        mask_t, mask_t1 = make_hole(fw), make_hole(fw)
        source = mask_t1 if holes else None
        with fi.use_backend(backend):
            valid = fi.fb_validity(fw, bw, source_mask=source, **kw)
            valid_fw, valid_bw = fi.fb_validity(
                fw, bw, source_mask=(mask_t, mask_t1) if holes else None, both=True, **kw
            )
        assert valid.dtype == fw.dtype and valid.shape == (fw.shape[0], 1, *fw.shape[2:])
        name = f"{dtype_case} {case}"
        check_agreement(valid, fw, bw, kw, source, name)
        check_agreement(valid_fw, fw, bw, kw, source, f"{name} both/fw")
        check_agreement(valid_bw, bw, fw, kw, mask_t if holes else None, f"{name} both/bw")
        assert torch.equal(valid_fw, valid)


@pytest.mark.parametrize("dtype_case", sanitized_params("fb_validity", ONE_DTYPE_CASES))
def test_cuda_kernels_on_extreme_inputs(dtype_case):
    """Every option and output dtype on the extreme cases, with the reference on the CPU:
    under compute-sanitizer, little but the kernels runs on the GPU."""
    cases = ["large_flow", "nonfinite", *EXTREMES]
    for case, option, dtype in itertools.product(cases, OPTIONS, [None, torch.bool, torch.uint8]):
        kw = {"alpha": 0.01, "beta": 0.5, **option.values[0]}
        fw, bw = make_flows(case, dtype_case, "cpu")
        mask_t, mask_t1 = make_hole(fw), make_hole(fw)
        masks = (mask_t, mask_t1) if option.values[1] else (None, None)
        on_gpu = [None if t is None else t.cuda() for t in (fw, bw, *masks)]
        with fi.use_backend("cuda"):
            valid_fw, valid_bw = fi.fb_validity(
                *on_gpu[:2], source_mask=tuple(on_gpu[2:]), both=True, dtype=dtype, **kw
            )
        name = f"{dtype_case} {case} {option.id} {dtype}"
        check_agreement(valid_fw, fw, bw, kw, masks[1], f"{name} fw")
        check_agreement(valid_bw, bw, fw, kw, masks[0], f"{name} bw")


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("dtype", [torch.bool, torch.uint8, torch.float16, torch.float64])
def test_output_dtype(backend, device, dtype):
    fw, bw = make_flows("odd", "fp32", device)
    with fi.use_backend(backend):
        valid = fi.fb_validity(fw, bw, dtype=dtype)
        pair = fi.fb_validity(fw, bw, dtype=dtype, both=True)
    assert valid.dtype == dtype and all(v.dtype == dtype for v in pair)
    expected = reference.fb_validity(fw, bw)
    assert torch.equal(valid.to(torch.float32), expected)
    assert torch.equal(pair[0], valid)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_mask_semantics(backend, device):
    """Zero flows are consistent; out-of-frame, non-finite, and hole-leaning samples are not."""
    fw = torch.zeros(1, 2, 4, 5, device=device)
    bw = torch.zeros(1, 2, 4, 5, device=device)
    fw[0, 0, 0, 0] = -0.5  # leaves the frame; b = 0.5 * bw[0, 0, 0, 0] is its inverse
    bw[0, 0, 0, 0] = 1.0
    fw[0, 1, 3, 4] = float("nan")
    holes = torch.zeros(1, 1, 4, 5, dtype=torch.uint8, device=device)
    holes[0, 0, 2, 2] = 255
    with fi.use_backend(backend):
        valid = fi.fb_validity(fw, bw, source_mask=holes)[0, 0].cpu()
        unbounded = fi.fb_validity(fw, bw, check_bounds=False)[0, 0].cpu()
    expected = torch.ones(4, 5)
    expected[0, 0] = expected[3, 4] = expected[2, 2] = 0
    assert torch.equal(valid, expected)
    expected_unbounded = torch.ones(4, 5)
    expected_unbounded[3, 4] = 0
    assert torch.equal(unbounded, expected_unbounded)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_single_mask_with_both_applies_to_neither(backend, device):
    fw, bw = make_flows("odd", "fp32", device)
    holes = torch.ones(fw.shape[0], 1, *fw.shape[2:], device=device)
    with fi.use_backend(backend):
        with_mask = fi.fb_validity(fw, bw, source_mask=holes, both=True)
        without = fi.fb_validity(fw, bw, both=True)
        one_way = fi.fb_validity(fw, bw, source_mask=holes)
    assert all(torch.equal(a, b) for a, b in zip(with_mask, without, strict=True))
    assert not one_way.any()


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_does_not_break_autograd(backend, device):
    fw, bw = make_flows("odd", "fp32", device)
    fw.requires_grad_()
    with fi.use_backend(backend):
        valid = fi.fb_validity(fw, bw)
    assert not valid.requires_grad
    (fw * valid).sum().backward()
    assert torch.equal(fw.grad, valid.expand_as(fw))


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
def test_opcheck(backend, device):
    fw, bw = make_flows("channels_last", "fp32", device)
    holes = make_hole(fw).view(torch.uint8)
    op = OPS[backend]
    torch.library.opcheck(op, (fw, bw, None, None, 0.01, 0.5, True, False, None))
    torch.library.opcheck(op, (fw, bw, holes, holes, 0.01, 0.5, False, True, torch.uint8))
    torch.library.opcheck(op, (fw, bw, None, holes, 0.01, 0.5, True, True, torch.bool))


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_torch_compile_fullgraph(backend, device):
    torch._dynamo.reset()
    fw, bw = make_flows("odd", "fp32", device)
    holes = make_hole(fw)

    def masks(fw, bw, holes):
        a, b = fi.fb_validity(fw, bw, source_mask=(holes, holes), both=True, dtype=torch.bool)
        return a & b, fi.fb_validity(fw, bw, check_bounds=False)

    with fi.use_backend(backend):
        compiled = torch.compile(masks, fullgraph=True)(fw, bw, holes)
        eager = masks(fw, bw, holes)
    for c, e in zip(compiled, eager, strict=True):
        assert torch.equal(c, e)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("dynamic", [False, True])
def test_torch_compile_thresholds_that_change(backend, device, dynamic):
    # A float that changes between calls is traced as a symbol: no graph break, checked.
    torch._dynamo.reset()
    fw, bw = make_flows("odd", "fp32", device)

    def masks(fw, bw, alpha, beta):
        return fi.fb_validity(fw, bw, alpha=alpha, beta=beta)

    with fi.use_backend(backend):
        compiled = torch.compile(masks, fullgraph=True, dynamic=dynamic)
        for alpha, beta in [(0.01, 0.5), (0.02, 0.7), (0.5, 0.0)]:
            assert torch.equal(compiled(fw, bw, alpha, beta), masks(fw, bw, alpha, beta))
        # dynamic=True: the graph's own check takes a symbol for finite, and only the
        # kernels (when they run) refuse inf.
        unchecked = dynamic and backend == "torch"
        for alpha in (-1.0, math.nan) if unchecked else (-1.0, math.inf, math.nan):
            with pytest.raises(Exception, match="alpha must be finite and >= 0"):
                compiled(fw, bw, alpha, 0.5)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_empty_inputs(backend, device):
    for n, h, w in [(0, 3, 4), (2, 0, 4), (2, 3, 0)]:
        fw = torch.zeros(n, 2, h, w, device=device)
        with fi.use_backend(backend):
            valid_fw, valid_bw = fi.fb_validity(fw, fw, both=True)
        assert valid_fw.shape == valid_bw.shape == (n, 1, h, w)


def test_bad_arguments_name_the_argument():
    fw, bw = torch.randn(2, 2, 5, 6), torch.randn(2, 2, 5, 6)
    holes = torch.zeros(2, 1, 5, 6)
    cases = [
        ((fw[0], bw), {}, ValueError, "flow_fw must have shape"),
        ((fw[:, :1], bw), {}, ValueError, "flow_fw must have shape"),
        ((fw, bw[:1]), {}, ValueError, "flow_bw must have shape"),
        ((fw, bw[..., :4]), {}, ValueError, "flow_bw must have shape"),
        ((fw, bw.double()), {}, TypeError, "flow_bw must have the dtype of flow_fw"),
        ((fw.long(), bw), {}, TypeError, "flow_fw must be a floating-point tensor"),
        ((fw, bw.to("meta")), {}, ValueError, "flow_bw must be on the same device"),
        ((fw, bw), {"alpha": "0.01"}, TypeError, "alpha must be a float"),
        ((fw, bw), {"check_bounds": None}, TypeError, "check_bounds must be a bool"),
        ((fw, bw), {"dtype": torch.int32}, TypeError, "dtype must be one of"),
        ((fw, bw), {"source_mask": holes[:, :, :4]}, ValueError, "source_mask must have shape"),
        ((fw, bw), {"source_mask": holes[0]}, ValueError, "source_mask must have shape"),
        ((fw, bw), {"source_mask": (holes,)}, ValueError, "source_mask must be a tensor or a pair"),
    ]
    for args, kw, error, message in cases:
        with pytest.raises(error, match=message):
            fi.fb_validity(*args, **kw)


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
@own_process_on_cuda
def test_registered_op_rejects_bad_arguments(backend, device):
    fw = torch.randn(2, 2, 5, 6, device=device)
    holes = torch.zeros(2, 1, 5, 6, dtype=torch.uint8, device=device)
    op = OPS[backend]
    for args in [
        (fw[0], fw, None, None),
        (fw, fw[:, :1], None, None),
        (fw, fw, holes[..., :3], None),
        (fw, fw, holes.float(), None),
        (fw, fw.double(), None, None),
    ]:
        with pytest.raises(RuntimeError):
            op(*args, 0.01, 0.5, True, False, None)
        with pytest.raises(RuntimeError):
            op(fw, fw, None, None, 0.01, 0.5, True, False, torch.int32)
    # The thresholds, as flow_propagate's and the public function's checks word them.
    for value in (float("nan"), float("inf"), -float("inf"), -0.5):
        with pytest.raises(RuntimeError, match="alpha must be finite and >= 0"):
            op(fw, fw, None, None, value, 0.5, True, False, None)
        with pytest.raises(RuntimeError, match="beta must be finite and >= 0"):
            op(fw, fw, None, None, 0.01, value, True, True, None)
    # Frame t's holes lean on the backward test only: given without it, they are refused.
    with pytest.raises(RuntimeError, match="source_bw is read only with both=True"):
        op(fw, fw, holes, holes, 0.01, 0.5, True, False, None)
    assert op(fw, fw, holes, holes, 0.01, 0.5, True, True, None).shape == (2, 2, 1, 5, 6)


def propainter_fb_consistency_check(flow_fw, flow_bw, alpha1=0.01, alpha2=0.5):
    """ProPainter's fbConsistencyCheck, rewritten: warp the backward flow by the forward
    one (meshgrid + grid_sample), then threshold squared lengths."""
    _, _, h, w = flow_fw.shape
    grid_y, grid_x = torch.meshgrid(
        torch.arange(0, h, device=flow_fw.device),
        torch.arange(0, w, device=flow_fw.device),
        indexing="ij",
    )
    grid = torch.stack((grid_x, grid_y), 2).type_as(flow_fw)
    grid_flow = grid + flow_fw.permute(0, 2, 3, 1)
    grid_flow = torch.stack(
        (
            2.0 * grid_flow[..., 0] / max(w - 1, 1) - 1.0,
            2.0 * grid_flow[..., 1] / max(h - 1, 1) - 1.0,
        ),
        dim=3,
    )
    flow_bw_warped = F.grid_sample(
        flow_bw, grid_flow, mode="bilinear", padding_mode="zeros", align_corners=True
    )

    def length_sq(x):
        return torch.sum(torch.square(x), dim=1, keepdim=True)

    flow_diff_fw = flow_fw + flow_bw_warped
    mag_sq_fw = length_sq(flow_fw) + length_sq(flow_bw_warped)
    occ_thresh_fw = alpha1 * mag_sq_fw + alpha2
    return (length_sq(flow_diff_fw) < occ_thresh_fw).to(flow_fw)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_compat_matches_propainter(backend, device):
    kw = dict(alpha=0.01, beta=0.5, check_bounds=False)
    total = 0
    for case in ("odd", "channels_last", "large_flow"):
        fw, bw = make_flows(case, "fp32", device)
        with fi.use_backend(backend):
            ours = fi.compat.fb_consistency_check(fw, bw)
        theirs = propainter_fb_consistency_check(fw, bw)
        assert ours.dtype == theirs.dtype == torch.float32
        # Their grid round trip rounds differently; disagreements must be near-threshold.
        disagree = ours != theirs
        if disagree.any():
            check_agreement(theirs, fw, bw, kw, None, f"propainter {case}")
        total += int(disagree.sum())
    assert total <= 3, f"{total} near-threshold pixels differ from ProPainter"
