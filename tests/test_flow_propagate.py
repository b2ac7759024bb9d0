"""flow_propagate (SPEC 3.5b) on every backend against the reference."""

from __future__ import annotations

import itertools

import pytest
import torch
from support import (
    MAIN_CASE,
    ONE_DTYPE_CASES,
    backend_params,
    dtype_cases,
    own_process_on_cuda,
    sanitized_params,
    with_layout,
)
from test_fb_validity import CASES, EXTREMES, MAX_NEAR_THRESHOLD, NEAR, make_flows

import fused_inpaint as fi
from fused_inpaint import reference
from fused_inpaint.ops.flow_propagate import OPS

BACKENDS = backend_params("flow_propagate")
KERNEL_BACKENDS = backend_params("flow_propagate", backends=("cpu", "cuda", "triton"))
OPTIONS = [
    pytest.param(dict(t=5), id="t5"),
    pytest.param(dict(t=5, max_age=2), id="max-age"),
    pytest.param(dict(t=0, alpha=0.05, beta=1.0), id="t0-alpha-beta"),
    pytest.param(dict(t=7, max_age=0), id="max-age-0"),
]
# A hole mask may come in any dtype; each case uses one.
HOLE_DTYPES = {"odd": torch.bool, "row": torch.uint8, "column": torch.float32}
EPS32 = torch.finfo(torch.float32).eps


def make_state(n: int, h: int, w: int, device, layout: str = "contiguous"):
    """A neighbour's state: sources in frames -1 (none) to 9, positions anywhere in a frame."""
    src_frame = torch.randint(-1, 10, (n, 1, h, w), dtype=torch.int32)
    src_pos = torch.rand(n, 2, h, w) * torch.tensor([w - 1.0, h - 1.0]).view(1, 2, 1, 1)
    return tuple(with_layout(s.to(device), layout) for s in (src_frame, src_pos))


def make_inputs(case: str, dtype_case: str, device):
    """(hole, flow_to, flow_from, src_frame, src_pos) of a case: fb_validity's flow pairs
    (about half the pixels pass the test, plus the case's extremes), 60% holes."""
    flow_to, flow_from = make_flows(case, dtype_case, device)
    n, _, h, w = flow_to.shape
    layout = (CASES | EXTREMES)[case][4]
    hole = (torch.rand(n, 1, h, w) < 0.6).to(HOLE_DTYPES.get(case, torch.uint8))
    return (
        with_layout(hole.to(device), layout),
        flow_to,
        flow_from,
        *make_state(n, h, w, device, layout),
    )


def near_tie(flow_to: torch.Tensor) -> torch.Tensor:
    """Pixels (N, 1, H, W) whose q = p + flow_to(p) lies within float32 rounding of a .5
    tie, where rounding q to float32 first may pick the other neighbour."""
    n, _, h, w = flow_to.shape
    xs, ys = reference.pixel_grid(h, w, torch.float64, "cpu")
    f = flow_to.double().cpu()
    near = torch.zeros(n, h, w, dtype=torch.bool)
    for q in (xs + f[:, 0], ys + f[:, 1]):
        near |= ((q - q.floor()) - 0.5).abs() <= EPS32 * q.abs().clamp_min(1)
    return near.unsqueeze(1)


def near_threshold(flow_to: torch.Tensor, flow_from: torch.Tensor, kw: dict) -> torch.Tensor:
    """Pixels whose fb test value lies within float rounding of its threshold."""
    alpha, beta = kw.get("alpha", 0.01), kw.get("beta", 0.5)
    v = reference.fb_test_values(flow_to.double(), flow_from.double(), alpha, beta)
    return ((v.lhs - v.rhs).abs() / (v.lhs.abs() + v.rhs.abs() + 1e-30) <= NEAR).cpu()


def check_state(actual, inputs, kw: dict, name: str) -> int:
    """``actual`` is the reference's state bit for bit in the flows' own precision, and the
    float64 reference's except at pixels within rounding of the test's threshold or of a
    .5 tie of q; returns how many of those differ."""
    frame, pos = (a.cpu() for a in actual)
    hole, flow_to, flow_from, src_frame, src_pos = inputs
    n, _, h, w = flow_to.shape
    assert frame.dtype == torch.int32 and frame.shape == (n, 1, h, w), name
    assert pos.dtype == torch.float32 and pos.shape == (n, 2, h, w), name
    same_frame, same_pos = reference.flow_propagate(*inputs, **kw)
    assert torch.equal(frame, same_frame.cpu()), f"{name}: src_frame differs from the reference"
    assert torch.equal(pos, same_pos.cpu()), f"{name}: src_pos differs from the reference"

    rest = (flow_to.double(), flow_from.double(), src_frame, src_pos)
    frame64, pos64 = (e.cpu() for e in reference.flow_propagate(hole, *rest, **kw))
    near = near_threshold(flow_to, flow_from, kw) | near_tie(flow_to)
    disagree = frame != frame64
    far = disagree & ~near
    assert not far.any(), f"{name}: {int(far.sum())} pixels differ away from a threshold or tie"
    count = int(disagree.sum())
    print(f"{name}: {count} of {frame.numel()} pixels near a threshold or tie differ")
    assert count <= MAX_NEAR_THRESHOLD * frame.numel() + 1, f"{name}: {count} near-threshold"
    # Float32 coordinates round q, then the carried position: a few float32 ulps of each.
    xs, ys = reference.pixel_grid(h, w, torch.float64, "cpu")
    f = flow_to.double().cpu()
    q = torch.stack([xs + f[:, 0], ys + f[:, 1]], dim=1).nan_to_num(0.0, 0.0, 0.0)
    exact = flow_to.dtype == torch.float64
    bound = 0.0 if exact else 2 * EPS32 * (q.abs() + pos64.double().abs() + 1)
    error = (pos.double() - pos64.double()).abs()
    assert (error <= bound)[~near.expand_as(pos)].all(), f"{name}: src_pos off the float64 one"
    return count


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("options", OPTIONS)
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(backend, device, options, case):
    for dtype_case in dtype_cases(backend, device, every_dtype=case == MAIN_CASE[device]):
        if dtype_case.endswith("flow32"):
            continue  # a flow-only op: its dtype is the flow's
        inputs = make_inputs(case, dtype_case, device)
        with fi.use_backend(backend):
            actual = fi.flow_propagate(*inputs, **options)
        check_state(actual, inputs, options, f"{dtype_case} {case}")


@pytest.mark.parametrize("dtype_case", sanitized_params("flow_propagate", ONE_DTYPE_CASES))
def test_cuda_kernel_on_extreme_inputs(dtype_case):
    """Every option on fb_validity's extreme cases, with the reference on the CPU: under
    compute-sanitizer, little but the kernel runs on the GPU."""
    for case, options in itertools.product(["large_flow", "nonfinite", *EXTREMES], OPTIONS):
        inputs = make_inputs(case, dtype_case, "cpu")
        with fi.use_backend("cuda"):
            actual = fi.flow_propagate(*(t.cuda() for t in inputs), **options.values[0])
        check_state(actual, inputs, options.values[0], f"{dtype_case} {case} {options.id}")


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_state_semantics(backend, device):
    """Known pixels hold (t, p); a hole pixel takes the source at round(q) (half to even),
    moved by q - round(q), unless its flows disagree, q leaves the frame or is not finite,
    the neighbour there holds nothing, or the source is older than max_age."""
    h, w, t = 4, 5, 6
    flow_to = torch.zeros(1, 2, h, w)
    flow_from = torch.zeros(1, 2, h, w)  # |flow_to|^2 < beta = 0.5 passes, more fails
    src_frame = torch.full((1, 1, h, w), 5, dtype=torch.int32)
    ys, xs = torch.meshgrid(torch.arange(h) * 10.0, torch.arange(w) * 10.0, indexing="ij")
    src_pos = torch.stack((xs, ys)).unsqueeze(0)
    hole = torch.ones(1, 1, h, w, dtype=torch.bool)
    hole[0, 0, 3, 0] = False
    flow_to[0, :, 3, 0] = float("nan")  # a known pixel reads no flow
    flow_to[0, 0, 1, 1] = 0.25  # q = (1.25, 1): r = (1, 1), moved by 0.25
    flow_to[0, 0, 1, 2] = 0.5  # q = (2.5, 1): a tie, r = (2, 1), moved by 0.5
    flow_to[0, 0, 1, 3] = -0.5  # q = (2.5, 1) again
    flow_to[0, 1, 2, 3] = 0.5  # q = (3, 2.5): r = (3, 2), moved by 0.5
    flow_to[0, 0, 0, 0] = -0.5  # q out of frame
    flow_to[0, 0, 0, 1] = 1.0  # inconsistent: |f + b|^2 = 1 >= 0.01 + 0.5
    flow_to[0, 1, 0, 2] = float("inf")
    flow_to[0, 0, 2, 1] = 0.25  # r = (1, 2), whose neighbour holds nothing
    src_frame[0, 0, 2, 1] = -1
    flow_to[0, 0, 2, 2] = 0.25  # r = (2, 2): a source 3 frames before t, too old
    src_frame[0, 0, 2, 2] = t - 3
    src_frame[0, 0, 2, 4] = t + 2  # a source 2 frames after t, kept
    args = (hole, flow_to, flow_from, src_frame, src_pos)
    with fi.use_backend(backend):
        frame, pos = (
            s.cpu() for s in fi.flow_propagate(*(a.to(device) for a in args), t=t, max_age=2)
        )
    expected_frame = src_frame.clone()
    expected_pos = src_pos.clone()
    expected_frame[0, 0, 3, 0] = t
    expected_pos[0, :, 3, 0] = torch.tensor([0.0, 3.0])
    for y, x, move in [(1, 1, (0.25, 0)), (1, 2, (0.5, 0)), (2, 3, (0, 0.5))]:
        expected_pos[0, :, y, x] += torch.tensor(move)
    expected_frame[0, 0, 1, 3] = 5
    expected_pos[0, :, 1, 3] = src_pos[0, :, 1, 2] + torch.tensor([0.5, 0.0])
    for y, x in [(0, 0), (0, 1), (0, 2), (2, 1), (2, 2)]:
        expected_frame[0, 0, y, x] = -1
        expected_pos[0, :, y, x] = 0.0
    assert torch.equal(frame, expected_frame)
    assert torch.equal(pos, expected_pos)


def translated_clip(length: int, h: int, w: int, dx: int, dy: int):
    """(frames (1, length, 3, H, W), holes (1, length, 1, H, W) bool): a scene moving by
    (dx, dy) >= 0 pixels per frame; a rectangle on the top edge is a hole in every frame but
    the first."""
    scene = torch.randn(3, h + (length - 1) * dy, w + (length - 1) * dx)
    offsets = range(length - 1, -1, -1)
    frames = torch.stack([scene[:, o * dy : o * dy + h, o * dx : o * dx + w] for o in offsets])
    holes = torch.zeros(1, length, 1, h, w, dtype=torch.bool)
    holes[0, 1:, 0, :6, 3:10] = True
    return frames.unsqueeze(0), holes


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_integer_flows_carry_pixels_back_exactly(backend, device):
    """Along integer flows a chain of propagate steps carries each hole pixel of the last
    frame to where it was last seen, and the gather returns that pixel's value exactly."""
    length, h, w, dx, dy = 5, 9, 12, 2, 1
    frames, holes = translated_clip(length, h, w, dx, dy)
    truth = frames[0, -1].clone()
    frames[holes.expand_as(frames)] = float("nan")  # never read
    frames, holes = frames.to(device), holes.to(device)
    # From frame t to t-1 and back; expanded, so the flow to t-1 has zero strides.
    flow_to = torch.tensor([-dx, -dy], dtype=torch.float32, device=device).view(1, 2, 1, 1)
    flow_to = flow_to.expand(1, 2, h, w)
    state = make_state(1, h, w, device)  # frame 0 has no hole: its state is its own
    with fi.use_backend(backend):
        for t in range(length):
            state = fi.flow_propagate(holes[:, t], flow_to, -flow_to, *state, t=t)
        image, valid = fi.propagation_gather(frames, holes, *state)
    holes = holes.cpu()
    expected_frame = torch.full((h, w), -1, dtype=torch.int32)
    expected_pos = torch.zeros(2, h, w)
    for y in range(h):
        for x in range(w):
            t, py, px = length - 1, y, x
            while t > 0 and holes[0, t, 0, py, px] and 0 <= py - dy < h and 0 <= px - dx < w:
                t, py, px = t - 1, py - dy, px - dx
            if t == 0 or not holes[0, t, 0, py, px]:
                expected_frame[y, x] = t
                expected_pos[:, y, x] = torch.tensor([px, py])
    frame, pos = (s.cpu()[0] for s in state)
    assert torch.equal(frame[0], expected_frame)
    assert torch.equal(pos, expected_pos)
    found = expected_frame >= 0
    assert found[holes[0, -1, 0]].any() and not found.all(), "the clip tests both outcomes"
    assert torch.equal(valid.cpu()[0, 0], found)
    assert torch.equal(image.cpu()[0][:, found], truth[:, found])
    assert torch.equal(image.cpu()[0][:, ~found], torch.zeros_like(truth[:, ~found]))


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_inconsistent_flows_carry_nothing(backend, device):
    hole = torch.rand(2, 1, 6, 7, device=device) < 0.5
    flow = torch.full((2, 2, 6, 7), 0.75, device=device)  # the same way: |f + b|^2 = 4.5
    with fi.use_backend(backend):
        frame, pos = fi.flow_propagate(hole, flow, flow, *make_state(2, 6, 7, device), t=3)
    assert (frame[hole] == -1).all() and (frame[~hole] == 3).all()
    assert (pos[hole.expand_as(pos)] == 0).all()
    ys, xs = torch.meshgrid(torch.arange(6.0), torch.arange(7.0), indexing="ij")
    grid = torch.stack((xs, ys)).expand_as(pos).to(device)
    assert torch.equal(pos[~hole.expand_as(pos)], grid[~hole.expand_as(pos)])


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_outputs_need_no_grad(backend, device):
    hole, flow_to, flow_from, src_frame, src_pos = make_inputs("odd", "fp32", device)
    flow_to.requires_grad_()
    flow_from.requires_grad_()
    with fi.use_backend(backend):
        frame, pos = fi.flow_propagate(hole, flow_to, flow_from, src_frame, src_pos, t=2)
    assert not frame.requires_grad and not pos.requires_grad


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
def test_opcheck(backend, device):
    hole, flow_to, flow_from, src_frame, src_pos = make_inputs("channels_last", "fp32", device)
    args = (hole.view(torch.uint8), flow_to, flow_from, src_frame, src_pos)
    op = OPS[backend]
    torch.library.opcheck(op, (*args, 4, 0.01, 0.5, None))
    torch.library.opcheck(op, (*args, 0, 0.05, 1.0, 2))


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_torch_compile_fullgraph(backend, device):
    torch._dynamo.reset()
    inputs = make_inputs("odd", "fp32", device)

    def sweep(hole, flow_to, flow_from, src_frame, src_pos):
        state = fi.flow_propagate(hole, flow_to, flow_from, src_frame, src_pos, t=4)
        return fi.flow_propagate(hole, flow_to, flow_from, *state, t=5, max_age=1)

    with fi.use_backend(backend):
        compiled = torch.compile(sweep, fullgraph=True)(*inputs)
        eager = sweep(*inputs)
    for c, e in zip(compiled, eager, strict=True):
        assert torch.equal(c, e)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_torch_compile_thresholds_that_change(backend, device):
    # A float that changes between calls is traced as a symbol: no graph break, checked.
    torch._dynamo.reset()
    inputs = make_inputs("odd", "fp32", device)

    def step(hole, flow_to, flow_from, src_frame, src_pos, alpha, beta):
        return fi.flow_propagate(
            hole, flow_to, flow_from, src_frame, src_pos, t=4, alpha=alpha, beta=beta
        )

    with fi.use_backend(backend):
        compiled = torch.compile(step, fullgraph=True)
        for alpha, beta in [(0.01, 0.5), (0.02, 0.7), (0.5, 0.0)]:
            for c, e in zip(
                compiled(*inputs, alpha, beta), step(*inputs, alpha, beta), strict=True
            ):
                assert torch.equal(c, e)
        with pytest.raises(Exception, match="beta must be finite and >= 0"):
            compiled(*inputs, 0.01, -0.5)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_empty_inputs(backend, device):
    for n, h, w in [(0, 3, 4), (2, 0, 4), (2, 3, 0)]:
        flow = torch.zeros(n, 2, h, w, device=device)
        hole = torch.zeros(n, 1, h, w, device=device)
        with fi.use_backend(backend):
            frame, pos = fi.flow_propagate(hole, flow, flow, *make_state(n, h, w, device), t=1)
        assert frame.shape == (n, 1, h, w) and pos.shape == (n, 2, h, w)


def test_bad_arguments_name_the_argument():
    hole, flow_to, flow_from, src_frame, src_pos = make_inputs("odd", "fp32", "cpu")
    good = dict(hole=hole, flow_to=flow_to, flow_from=flow_from, src_frame=src_frame,
                src_pos=src_pos)  # fmt: skip
    cases = [
        (dict(hole=None), {}, TypeError, "hole must be a torch.Tensor of shape"),
        (dict(hole=hole[0]), {}, ValueError, "hole must have shape"),
        (dict(hole=hole[..., :4]), {}, ValueError, "hole must have shape"),
        (dict(flow_to=flow_to[:, :1]), {}, ValueError, "flow_to must have shape"),
        (dict(flow_to=flow_to.long()), {}, TypeError, "flow_to must be a floating-point"),
        (dict(flow_from=flow_from[..., :4]), {}, ValueError, "flow_from must have shape"),
        (dict(flow_from=flow_from.double()), {}, TypeError, "flow_from must have the dtype"),
        (dict(flow_from=flow_from.to("meta")), {}, ValueError, "flow_from must be on the same"),
        (dict(src_frame=src_frame.float()), {}, TypeError, "src_frame must be torch.int32"),
        (dict(src_frame=src_frame[:1]), {}, ValueError, "src_frame must have shape"),
        (dict(src_pos=src_pos.double()), {}, TypeError, "src_pos must be torch.float32"),
        (dict(src_pos=src_pos[:, :1]), {}, ValueError, "src_pos must have shape"),
        (dict(src_pos=src_pos.to("meta")), {}, ValueError, "src_pos must be on the same"),
        ({}, dict(t=-1), ValueError, "t must be a frame index"),
        ({}, dict(t=2**31), ValueError, "t must be a frame index"),
        ({}, dict(t=1.0), TypeError, "t must be an int"),
        ({}, dict(t=True), TypeError, "t must be an int"),
        ({}, dict(t=1, alpha=float("nan")), ValueError, "alpha must be finite and >= 0"),
        ({}, dict(t=1, alpha=-0.01), ValueError, "alpha must be finite and >= 0"),
        ({}, dict(t=1, beta=float("inf")), ValueError, "beta must be finite and >= 0"),
        ({}, dict(t=1, beta="0.5"), TypeError, "beta must be a float"),
        ({}, dict(t=1, max_age=-1), ValueError, "max_age must be >= 0"),
        ({}, dict(t=1, max_age=1.5), TypeError, "max_age must be an int or None"),
    ]
    for tensors, kw, error, message in cases:
        args = {**good, **tensors}
        with pytest.raises(error, match=message):
            fi.flow_propagate(*args.values(), **{"t": 1, **kw})


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
@own_process_on_cuda
def test_registered_op_rejects_bad_arguments(backend, device):
    hole, flow_to, flow_from, src_frame, src_pos = make_inputs("odd", "fp32", device)
    hole = hole.view(torch.uint8)
    op = OPS[backend]
    for args in [
        (hole.float(), flow_to, flow_from, src_frame, src_pos, 1, 0.01, 0.5, None),
        (hole, flow_to[:, :1], flow_from, src_frame, src_pos, 1, 0.01, 0.5, None),
        (hole, flow_to, flow_from.double(), src_frame, src_pos, 1, 0.01, 0.5, None),
        (hole, flow_to, flow_from, src_frame.long(), src_pos, 1, 0.01, 0.5, None),
        (hole, flow_to, flow_from, src_frame, src_pos[..., :3], 1, 0.01, 0.5, None),
        (hole, flow_to, flow_from, src_frame, src_pos, -1, 0.01, 0.5, None),
        (hole, flow_to, flow_from, src_frame, src_pos, 1, float("nan"), 0.5, None),
        (hole, flow_to, flow_from, src_frame, src_pos, 1, 0.01, -0.5, None),
        (hole, flow_to, flow_from, src_frame, src_pos, 1, 0.01, 0.5, -2),
    ]:
        with pytest.raises(RuntimeError):
            op(*args)
