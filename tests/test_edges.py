"""The adversarial suite: every op at the edges of what it accepts.

Sides at the float32 boundary (2^24 - 1, 2^24, 2^24 + 4, 2^25, the other side 1), zero
sizes, stride-0 and channels_last inputs, NaN, infinite and huge flows and positions,
int32 extremes of frame indices, integer arguments at their limits and an impossible
allocation. tools/sanitize.sh runs it (marked ``adversarial``) against the CPU kernels built
with AddressSanitizer and UndefinedBehaviorSanitizer; it also runs in the normal test run.

At the boundary sizes the inputs are small integers and flows in halves, so every product
and sum is exact in float32: each kernel must give the reference's float32 result exactly.
"""

from __future__ import annotations

import contextlib
import itertools
import re
import sys

import pytest
import torch
from support import HAS_GPU

import fused_inpaint as fi
from fused_inpaint import _backend, reference
from fused_inpaint.ops.flow_propagate import OPS as PROPAGATE_OPS
from fused_inpaint.ops.propagation_gather import OPS as GATHER_OPS
from fused_inpaint.ops.temporal_shift import OPS as SHIFT_OPS
from fused_inpaint.ops.temporal_shift_align import OPS as ALIGN_OPS

pytestmark = pytest.mark.adversarial

# (side, axis): the long side of a frame one pixel thin. The reference takes seconds per op
# at these sizes: the tests are marked long (collected first).
BOUNDARY_SIZES = [
    pytest.param(2**24 - 1, "W", id="2p24m1-W"),
    pytest.param(2**24, "H", id="2p24-H"),
    pytest.param(2**24 + 4, "W", id="2p24p4-W"),
    pytest.param(2**25, "H", id="2p25-H"),
]
# Each mode and padding; with each align_corners.
WARP_SAMPLING = list(itertools.product(("bilinear", "nearest"), ("zeros", "border")))
WARP_MODES = [(*sampling, align) for sampling in WARP_SAMPLING for align in (True, False)]
# Each mode and padding, with one align_corners by turns.
WARP_MODES_BY_TURNS = [(*sampling, k % 2 == 0) for k, sampling in enumerate(WARP_SAMPLING)]
# The last pixels along the long side: those compared, and those whose programs the
# interpreter runs.
TAIL = 8
STEPS = torch.tensor([-1.5, -1.0, -0.5, 0.0, 0.5, 1.0, 1.5, 2.0])


def kernel_backends(op: str) -> list:
    """The compiled CPU kernels, Triton (interpreted on CPU) and CUDA where they can run."""
    params = []
    for backend, device in (
        ("cpu", "cpu"),
        ("triton", "cpu"),
        ("cuda", "cuda"),
        ("triton", "cuda"),
    ):
        marks = [pytest.mark.gpu, pytest.mark.sanitize] if device == "cuda" else []
        reason = "no CUDA device" if device == "cuda" and not HAS_GPU else None
        reason = reason or _backend._unavailable_reason(backend, op, device)
        if reason:
            marks.append(pytest.mark.skip(reason=reason))
        params.append(pytest.param(backend, device, id=f"{backend}-{device}", marks=marks))
    return params


def device_backends(op: str) -> list:
    """pytest params (device, its kernel backends that can run the op): the reference runs
    seconds per op at the boundary sizes, so one test compares every backend of a device
    with one result of it. CUDA ones are marked ``gpu`` and ``sanitize``."""
    params = []
    for device in ("cpu", "cuda"):
        backends = [
            p.values[0] for p in kernel_backends(op)
            if p.values[1] == device and not any(m.name == "skip" for m in p.marks)
        ]  # fmt: skip
        marks = [pytest.mark.gpu, pytest.mark.sanitize] if device == "cuda" else []
        if not backends:
            marks.append(pytest.mark.skip(reason=f"no kernel backend runs {op} on {device}"))
        params.append(pytest.param(device, tuple(backends), id=device, marks=marks))
    return params


def interpreted(backend: str, device: str) -> bool:
    return backend == "triton" and device == "cpu"


@contextlib.contextmanager
def last_programs(count: int):
    """Under Triton's interpreter, each launch runs only the last ``count`` programs along
    each axis of its grid: those that write the last pixels of a long row or column. The
    interpreter runs programs one after another, tens of microseconds each, so all of a
    2^25-pixel grid would take minutes; the kernels and launchers run unchanged."""
    from triton.runtime import interpreter

    grid_loop = interpreter.GridExecutor.__call__.__code__

    def tail_range(*args):
        if len(args) == 1 and sys._getframe(1).f_code is grid_loop and args[0] > count:
            return range(args[0] - count, args[0])
        return range(*args)

    interpreter.range = tail_range
    try:
        yield
    finally:
        del interpreter.range


def tail(t: torch.Tensor) -> torch.Tensor:
    """The last TAIL pixels of t (..., H, W), one of H and W being 1: (..., TAIL)."""
    return t.detach().cpu().flatten(-2)[..., -TAIL:].clone()


def tails(out) -> tuple[torch.Tensor, ...]:
    return tuple(tail(o) for o in (out if isinstance(out, tuple) else (out,)))


def on_device(value, device: str):
    """A tensor, or a tuple of them (fb_validity's pair of masks), moved to device."""
    if isinstance(value, torch.Tensor):
        return value.to(device)
    if isinstance(value, tuple):
        return tuple(on_device(v, device) for v in value)
    return value


def kernel_tails(backend: str, device: str, fn, *args, **kwargs) -> tuple[torch.Tensor, ...]:
    """tails(fn(*args, **kwargs)) with the backend selected and every input on device."""
    args = [on_device(a, device) for a in args]
    kwargs = {k: on_device(v, device) for k, v in kwargs.items()}
    context = last_programs(TAIL) if interpreted(backend, device) else contextlib.nullcontext()
    with fi.use_backend(backend), context:
        return tails(fn(*args, **kwargs))


def assert_same(actual, expected, name: str) -> None:
    """actual and expected, tuples of tails, equal."""
    for a, e in zip(actual, expected, strict=True):
        assert a.dtype == e.dtype and a.shape == e.shape, f"{name}: {a.dtype} {a.shape}"
        assert torch.equal(a, e), f"{name}: last pixels {a.tolist()}, reference {e.tolist()}"


def frame_shape(side: int, axis: str) -> tuple[int, int]:
    return (1, side) if axis == "W" else (side, 1)


def edge_flow(side: int, axis: str, n: int = 1) -> torch.Tensor:
    """(n, 2, H, W) float32 flow in halves along the long side (the last pixels take each
    step of STEPS in turn, across the frame's end), 0 or +-0.5 across the short one."""
    h, w = frame_shape(side, axis)
    along = STEPS[torch.randint(0, len(STEPS), (n, side))]
    along[:, -TAIL:] = STEPS[:TAIL]
    across = torch.tensor([-0.5, 0.0, 0.5])[torch.randint(0, 3, (n, side))]
    dx, dy = (along, across) if axis == "W" else (across, along)
    return torch.stack([dx, dy], dim=1).view(n, 2, h, w)


def small_ints(*shape: int, dtype=torch.float32) -> torch.Tensor:
    return torch.randint(0, 8, shape).to(dtype)


def assert_backends_match(
    device, backends, expected, fn, *args, name="", last_frame=False, **kwargs
):  # fmt: skip
    """Each backend's tails of fn(*args, **kwargs) equal ``expected`` (the reference's).
    ``last_frame``: outputs (N, T, ...), of whose frames the interpreter's last programs
    write the last one only."""
    for backend in backends:
        actual = kernel_tails(backend, device, fn, *args, **kwargs)
        wanted = expected
        if last_frame and interpreted(backend, device):
            actual, wanted = (a[:, -1] for a in actual), (e[:, -1] for e in expected)
        assert_same(tuple(actual), tuple(wanted), f"{name} on {backend}-{device}")


def warp_modes(side: int) -> list:
    """(mode, padding_mode, align_corners) tried at a boundary ``side``: each mode and
    padding with both alignments at 2^24 + 4 (the first side past float32's exact
    integers), with one, by turns, at the others (the reference takes seconds a call)."""
    return WARP_MODES if side == 2**24 + 4 else WARP_MODES_BY_TURNS


@pytest.mark.long
@pytest.mark.parametrize("side,axis", BOUNDARY_SIZES)
@pytest.mark.parametrize("device,backends", device_backends("flow_warp"))
def test_flow_warp_at_boundary_sizes(device, backends, side, axis):
    """Each mode and padding (``warp_modes``)."""
    h, w = frame_shape(side, axis)
    x, flow = small_ints(1, 1, h, w), edge_flow(side, axis)
    for mode, padding_mode, align_corners in warp_modes(side):
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        expected = tails(reference.flow_warp(x, flow, **kw))
        assert_backends_match(
            device, backends, expected, fi.flow_warp, x, flow, name=f"flow_warp {kw}", **kw
        )


def warp_grads(x, flow, kw):
    """(grad_x, grad_flow) of flow_warp(x, flow, **kw).sum()."""
    x, flow = x.clone().requires_grad_(), flow.clone().requires_grad_()
    return torch.autograd.grad(fi.flow_warp(x, flow, **kw).sum(), (x, flow))


@pytest.mark.long
@pytest.mark.parametrize("device,backends", device_backends("flow_warp"))
def test_flow_warp_backward_at_a_boundary_size(device, backends):
    """Each mode and padding, by turns with each alignment: the scatter of the feature
    gradient and the flow gradient at the last pixels (whose feature gradient sums taps of
    pixels at most two to their left, in the programs the interpreter runs)."""
    side, axis = 2**24 + 4, "W"
    h, w = frame_shape(side, axis)
    x, flow = small_ints(1, 1, h, w), edge_flow(side, axis)
    for mode, padding_mode, align_corners in WARP_MODES_BY_TURNS:
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        with fi.use_backend("torch"):
            expected = tails(warp_grads(x, flow, kw))
        assert_backends_match(device, backends, expected, warp_grads, x, flow, kw, name=str(kw))


@pytest.mark.long
@pytest.mark.parametrize("side,axis", BOUNDARY_SIZES)
@pytest.mark.parametrize("device,backends", device_backends("fb_validity"))
def test_fb_validity_at_boundary_sizes(device, backends, side, axis):
    h, w = frame_shape(side, axis)
    flow_fw, flow_bw = edge_flow(side, axis), edge_flow(side, axis)
    holes = (torch.rand(1, 1, h, w) < 0.3, torch.rand(1, 1, h, w) < 0.3)
    kw = dict(both=True, source_mask=holes, dtype=torch.uint8)
    expected = tails(reference.fb_validity(flow_fw, flow_bw, **kw))
    assert_backends_match(
        device, backends, expected, fi.fb_validity, flow_fw, flow_bw, name="fb_validity", **kw
    )


def state(side: int, axis: str, frames: tuple[int, ...]):
    """A propagation state on a (1, 1, H, W) frame: sources drawn from ``frames``, positions
    in halves around each pixel, the last pixels' positions past the frame's end."""
    h, w = frame_shape(side, axis)
    src_frame = torch.tensor(frames, dtype=torch.int32)[torch.randint(0, len(frames), (side,))]
    pixel = torch.arange(side, dtype=torch.float32)
    flow = edge_flow(side, axis).view(2, side)
    along, across = (0, 1) if axis == "W" else (1, 0)
    pos = torch.empty(2, side)
    pos[along] = pixel + flow[along]
    pos[across] = flow[across]
    return src_frame.view(1, 1, h, w), pos.view(1, 2, h, w)


@pytest.mark.long
@pytest.mark.parametrize("side,axis", BOUNDARY_SIZES)
@pytest.mark.parametrize("device,backends", device_backends("flow_propagate"))
def test_flow_propagate_at_boundary_sizes(device, backends, side, axis):
    h, w = frame_shape(side, axis)
    hole = (torch.rand(1, 1, h, w) < 0.7).to(torch.uint8)
    hole.view(-1)[-TAIL:] = 1
    flow_to, flow_from = edge_flow(side, axis), torch.zeros(1, 2, h, w)
    src_frame, src_pos = state(side, axis, (-1, 1, 2, 9))
    args = (hole, flow_to, flow_from, src_frame, src_pos)
    expected = tails(reference.flow_propagate(*args, t=3, max_age=1))
    assert_backends_match(
        device, backends, expected, fi.flow_propagate, *args, t=3, max_age=1, name="propagate"
    )


@pytest.mark.long
@pytest.mark.parametrize("side,axis", BOUNDARY_SIZES)
@pytest.mark.parametrize("device,backends", device_backends("propagation_gather"))
def test_propagation_gather_at_boundary_sizes(device, backends, side, axis):
    h, w = frame_shape(side, axis)
    t0 = 5
    frames = small_ints(1, 2, 1, h, w)
    holes = (torch.rand(1, 2, 1, h, w) < 0.2).to(torch.uint8)
    src_frame, src_pos = state(side, axis, (-1, t0, t0 + 1, t0 + 2))
    args = (frames, holes, src_frame, src_pos)
    expected = tails(reference.propagation_gather(*args, t0=t0))
    assert_backends_match(
        device, backends, expected, fi.propagation_gather, *args, t0=t0, name="gather"
    )


@pytest.mark.long
@pytest.mark.parametrize("side,axis", BOUNDARY_SIZES)
@pytest.mark.parametrize("device,backends", device_backends("temporal_shift_align"))
def test_temporal_shift_align_at_boundary_sizes(device, backends, side, axis):
    h, w = frame_shape(side, axis)
    x = small_ints(1, 2, 2, h, w)
    flow_fw, flow_bw = edge_flow(side, axis).unsqueeze(1), edge_flow(side, axis).unsqueeze(1)
    valid = (torch.rand(1, 1, 1, h, w) < 0.8).float()
    args = (x, flow_fw, flow_bw, valid, None)
    expected = tails(reference.temporal_shift_align(*args, fold_div=2))
    assert_backends_match(
        device, backends, expected, fi.temporal_shift_align, *args, fold_div=2, name="tsa",
        last_frame=True,
    )  # fmt: skip


def align_and_grads(x, flow_fw, flow_bw, grad_out):
    """(out, grad_x, grad_flow_fw, grad_flow_bw) of temporal_shift_align(fold_div=2)."""
    x, flow_fw, flow_bw = (t.clone().requires_grad_() for t in (x, flow_fw, flow_bw))
    out = fi.temporal_shift_align(x, flow_fw, flow_bw, fold_div=2)
    return (out.detach(), *torch.autograd.grad(out, (x, flow_fw, flow_bw), grad_out))


@pytest.mark.long
@pytest.mark.parametrize("axis", ["W", "H"])
@pytest.mark.parametrize("device,backends", device_backends("temporal_shift_align"))
def test_temporal_shift_align_scales_a_flow_past_2p24(device, backends, axis):
    """A flow 2^24 + 1 pixels long over features 4 long: its vectors scale by
    4 / (2^24 + 1), the exact ratio rounded once, as in the reference, not by a ratio of
    float32 sizes (2^24 + 1 rounds to 2^24). The four flow pixels read take vectors that
    land just inside or outside the frame, or a hair off a pixel, with one scale and not
    the other; forward and backward, every pixel compared (the output exactly, gradients
    within float32 rounding: the derivative of taps weighing a hair off 1 and 0 rounds in
    another order than the reference's)."""
    long, (h, w) = 2**24 + 1, frame_shape(4, axis)
    hf, wf = frame_shape(long, axis)
    along = 0 if axis == "W" else 1
    flow = torch.zeros(1, 1, 2, hf, wf)
    reads = torch.arange(4) * long // 4  # the flow pixels of feature pixels 0 .. 3
    flow[0, 0, along].view(-1)[reads] = torch.tensor(
        [3 * 2.0**22 + 1, 2.0**22, -(2.0**22), -(3 * 2.0**22 + 1)]
    )
    x = torch.randperm(16).float().view(1, 2, 2, h, w) + 1
    grad_out = torch.randperm(16).float().view(1, 2, 2, h, w) + 1
    args = (x, flow, -flow, grad_out)
    with fi.use_backend("torch"):
        expected = align_and_grads(*args)
    for backend in backends:
        with fi.use_backend(backend):
            actual = align_and_grads(*(on_device(a, device) for a in args))
        assert torch.equal(actual[0].cpu(), expected[0]), f"out on {backend}"
        grads = zip(("grad_x", "grad_fw", "grad_bw"), actual[1:], expected[1:], strict=True)
        for name, a, e in grads:
            torch.testing.assert_close(a.cpu(), e, msg=f"{name} on {backend}")


@pytest.mark.long
@pytest.mark.parametrize("device,backends", device_backends("temporal_shift_align"))
def test_temporal_shift_align_scales_features_past_2p24(device, backends):
    """Features 2^24 + 1 pixels long over a flow 5 long: the scale (2^24 + 1) / 5, rounded
    once, moves the last pixels by a quarter pixel more than 2^24 / 5 would."""
    side = 2**24 + 1
    x = small_ints(1, 2, 2, 1, side)
    flow = torch.zeros(1, 1, 2, 1, 5)
    flow[:, :, 0] = torch.tensor([-1.0, -0.5, 0.5, -1.0, -1.0])
    args = (x, flow, flow.flip(-1))
    expected = tails(reference.temporal_shift_align(*args, fold_div=2))
    assert_backends_match(
        device, backends, expected, fi.temporal_shift_align, *args, fold_div=2, name="tsa",
        last_frame=True,
    )  # fmt: skip


def pixelwise_reference(fn, *args, **kwargs) -> tuple[torch.Tensor, ...]:
    """tails(fn(*args, **kwargs)) of an op that maps each pixel on its own (no coordinates,
    no neighbours): fn run in float64 on the last TAIL pixels of each tensor argument alone,
    its results rounded to float32."""
    args = [a.flatten(-2)[..., -TAIL:].unsqueeze(-2).double() for a in args]
    return tuple(t.float() for t in tails(fn(*args, **kwargs)))


def shift_and_grad(x, grad_out):
    """(out, grad_x) of temporal_shift(x, fold_div=2), grad_out flowing back."""
    x = x.clone().requires_grad_()
    out = fi.temporal_shift(x, fold_div=2)
    return out.detach(), *torch.autograd.grad(out, x, grad_out)


@pytest.mark.long
@pytest.mark.parametrize("side,axis", BOUNDARY_SIZES)
@pytest.mark.parametrize("device,backends", device_backends("temporal_shift"))
def test_temporal_shift_at_boundary_sizes(device, backends, side, axis):
    """Forward and backward (the shift the other way): plain strided indexing, every value
    copied, so exactly the reference's autograd in float64."""
    h, w = frame_shape(side, axis)
    x, grad_out = small_ints(1, 2, 2, h, w), small_ints(1, 2, 2, h, w) - 4
    with fi.use_backend("torch"):
        expected = pixelwise_reference(shift_and_grad, x, grad_out)
    assert_backends_match(
        device, backends, expected, shift_and_grad, x, grad_out, name="temporal_shift",
        last_frame=True,
    )  # fmt: skip


def cell_and_grads(gates, c, grad_h, grad_c_new):
    """(h_new, c_new, grad_gates, grad_c) of convlstm_cell(gates, c), grad_h and
    grad_c_new flowing back."""
    gates, c = gates.clone().requires_grad_(), c.clone().requires_grad_()
    h_new, c_new = fi.convlstm_cell(gates, c)
    grads = torch.autograd.grad((h_new, c_new), (gates, c), (grad_h, grad_c_new))
    return h_new.detach(), c_new.detach(), *grads


@pytest.mark.long
@pytest.mark.parametrize("side,axis", BOUNDARY_SIZES)
@pytest.mark.parametrize("device,backends", device_backends("convlstm_cell"))
def test_convlstm_cell_at_boundary_sizes(device, backends, side, axis):
    """Forward and backward against the reference's autograd in float64: transcendentals,
    the kernels' own exp, within float32 rounding of it."""
    h, w = frame_shape(side, axis)
    gates, c = small_ints(1, 4, h, w) - 4, small_ints(1, 1, h, w)
    grad_h, grad_c_new = small_ints(1, 1, h, w) - 4, small_ints(1, 1, h, w) - 4
    args = (gates, c, grad_h, grad_c_new)
    with fi.use_backend("torch"):
        expected = pixelwise_reference(cell_and_grads, *args)
    names = ("h_new", "c_new", "grad_gates", "grad_c")
    for backend in backends:
        actual = kernel_tails(backend, device, cell_and_grads, *args)
        for a, e, name in zip(actual, expected, names, strict=True):
            torch.testing.assert_close(a, e, rtol=4e-6, atol=4e-6, msg=f"{name} on {backend}")


# Each op's public call on inputs of the given sizes, and which sizes may be 0.
def call_flow_warp(n, c, h, w):
    x = torch.randn(n, c, h, w, requires_grad=True)
    flow = torch.randn(n, 2, h, w, requires_grad=True)
    out = fi.flow_warp(x, flow)
    return (out, *torch.autograd.grad(out.sum(), (x, flow)))


def call_fb_validity(n, c, h, w):
    flow = torch.randn(n, 2, h, w)
    mask = torch.rand(n, 1, h, w) < 0.5
    return fi.fb_validity(flow, -flow, both=True, source_mask=(mask, mask))


def call_flow_propagate(n, c, h, w):
    flow = torch.randn(n, 2, h, w)
    hole = torch.ones(n, 1, h, w, dtype=torch.uint8)
    src_frame = torch.zeros(n, 1, h, w, dtype=torch.int32)
    return fi.flow_propagate(hole, flow, -flow, src_frame, torch.zeros(n, 2, h, w), t=1)


def call_propagation_gather(n, c, h, w, t=2):
    frames = torch.randn(n, t, c, h, w)
    holes = torch.zeros(n, t, 1, h, w, dtype=torch.uint8)
    src_frame = torch.ones(n, 1, h, w, dtype=torch.int32)
    src_pos = torch.rand(n, 2, h, w) * max(h, w)
    return fi.propagation_gather(frames, holes, src_frame, src_pos, t0=0)


def call_temporal_shift(n, c, h, w, t=3):
    x = torch.randn(n, t, c, h, w, requires_grad=True)
    out = fi.temporal_shift(x, fold_div=2)
    return out, *torch.autograd.grad(out.sum(), x)


def call_temporal_shift_align(n, c, h, w, t=3, hf=None, wf=None):
    hf, wf = max(h, 1) if hf is None else hf, max(w, 1) if wf is None else wf
    x = torch.randn(n, t, c, h, w, requires_grad=True)
    flow_fw = torch.randn(n, t - 1, 2, hf, wf, requires_grad=True)
    flow_bw = torch.randn(n, t - 1, 2, hf, wf, requires_grad=True)
    out = fi.temporal_shift_align(x, flow_fw, flow_bw, fold_div=2)
    return out, *torch.autograd.grad(out.sum(), (x, flow_fw, flow_bw), allow_unused=True)


def call_convlstm_cell(n, c, h, w):
    gates = torch.randn(n, 4 * c, h, w, requires_grad=True)
    cell = torch.randn(n, c, h, w, requires_grad=True)
    out = fi.convlstm_cell(gates, cell)
    return (*out, *torch.autograd.grad(sum(o.sum() for o in out), (gates, cell)))


EMPTY_CALLS = {
    "flow_warp": call_flow_warp,
    "fb_validity": call_fb_validity,
    "flow_propagate": call_flow_propagate,
    "propagation_gather": call_propagation_gather,
    "temporal_shift": call_temporal_shift,
    "temporal_shift_align": call_temporal_shift_align,
    "convlstm_cell": call_convlstm_cell,
}
EMPTY_SIZES = [(0, 3, 4, 5), (2, 0, 4, 5), (2, 3, 0, 5), (2, 3, 4, 0), (0, 0, 0, 0)]
# The other zero sizes, of the ops that have them: T (frames), and the flow's Hf and Wf
# where no feature pixel reads the flow (N, T-1, H or W zero). Without frames,
# propagation_gather's sources all lie outside the chunk: image 0, valid false.
EMPTY_OTHER_SIZES = {
    "temporal_shift": [((2, 3, 4, 5), dict(t=0))],
    "propagation_gather": [((2, 3, 4, 5), dict(t=0)), ((0, 3, 4, 5), dict(t=0))],
    "temporal_shift_align": [
        ((2, 3, 4, 5), dict(t=1, hf=0, wf=3)),
        ((2, 3, 4, 5), dict(t=1, hf=2, wf=0)),
        ((0, 3, 4, 5), dict(hf=0, wf=0)),
        ((2, 3, 0, 5), dict(hf=0, wf=3)),
        ((2, 3, 4, 0), dict(hf=2, wf=0)),
    ],
}


def backends_of(op: str) -> list:
    """Every backend that runs on the CPU, and CUDA ones in the GPU tier."""
    return [pytest.param("torch", "cpu", id="torch-cpu"), *kernel_backends(op)]


@pytest.mark.parametrize(
    "op,backend,device",
    [pytest.param(op, *p.values, id=f"{op}-{p.id}", marks=p.marks)
     for op in EMPTY_CALLS for p in backends_of(op)],
)  # fmt: skip
def test_empty_dimensions_give_empty_outputs(op, backend, device):
    """Any zero size: outputs of the reference's shapes (and values, where a zero size
    leaves any), no data pointer touched (the sanitizers would abort on a reference formed
    into a null one)."""
    cases = [(sizes, {}) for sizes in EMPTY_SIZES] + EMPTY_OTHER_SIZES.get(op, [])
    for sizes, kw in cases:
        with torch.device(device):
            torch.manual_seed(0)
            with fi.use_backend("torch"):
                expected = EMPTY_CALLS[op](*sizes, **kw)
            torch.manual_seed(0)  # the same inputs
            with fi.use_backend(backend):
                actual = EMPTY_CALLS[op](*sizes, **kw)
        name = f"{op} {sizes} {kw}"
        for a, e in zip(actual, expected, strict=False):
            if e is None:
                continue
            assert a.shape == e.shape and a.dtype == e.dtype, f"{name}: {a.shape}"
            torch.testing.assert_close(a.cpu(), e.cpu(), equal_nan=True, msg=name)


@pytest.mark.parametrize("backend", ["torch", "cpu", "triton"])
def test_propagation_gather_without_frames_finds_no_source(backend):
    """T = 0: every source lies outside the chunk, on the public and the direct route."""
    if _backend._unavailable_reason(backend, "propagation_gather", "cpu"):
        pytest.skip(_backend._unavailable_reason(backend, "propagation_gather", "cpu"))
    n, c, h, w = 2, 3, 4, 5
    frames = torch.randn(n, 0, c, h, w).contiguous(memory_format=torch.channels_last_3d)
    holes = torch.zeros(n, 0, 1, h, w, dtype=torch.uint8)
    src_frame = torch.randint(-1, 3, (n, 1, h, w), dtype=torch.int32)
    src_pos = torch.rand(n, 2, h, w) * 4
    with fi.use_backend(backend):
        results = [fi.propagation_gather(frames, holes, src_frame, src_pos, t0=1)]
    if backend != "torch":
        results.append(GATHER_OPS[backend](frames, holes, src_frame, src_pos, 1))
    for image, valid in results:
        assert torch.equal(image, torch.zeros(n, c, h, w)) and image.is_contiguous()
        assert torch.equal(valid, torch.zeros(n, 1, h, w, dtype=torch.bool))


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_temporal_shift_align_refuses_sizes_without_a_result(backend):
    """T = 0 (the flows' T-1 frames have no shape), and a flow without pixels where feature
    pixels read it: one line naming the argument, on the public and the direct route."""
    if _backend._unavailable_reason(backend, "temporal_shift_align", "cpu"):
        pytest.skip(_backend._unavailable_reason(backend, "temporal_shift_align", "cpu"))
    op = ALIGN_OPS[backend]
    x, flow = torch.randn(2, 0, 4, 3, 5), torch.randn(2, 0, 2, 3, 5)
    with pytest.raises(ValueError, match="x must have at least one frame"):
        fi.temporal_shift_align(x, flow, flow, fold_div=4)
    with pytest.raises(RuntimeError, match="x must have at least one frame"):
        op(x, flow, flow, None, None, 1, False)
    x = torch.randn(2, 3, 4, 3, 5)
    for hf, wf in ((0, 5), (3, 0)):
        flow = torch.randn(2, 2, 2, hf, wf)
        with pytest.raises(ValueError, match="flow_bw must be at least 1x1 pixels where x has"):
            fi.temporal_shift_align(x, flow, flow, fold_div=4)
        with pytest.raises(RuntimeError, match="flow_fw must be at least 1x1 pixels where x has"):
            op(x, flow, flow, None, None, 1, False)


def test_temporal_shift_align_single_frame_has_empty_flows():
    """T = 1: the flows (N, 0, 2, Hf, Wf) hold nothing, and nothing reads them."""
    x = torch.randn(2, 1, 4, 3, 5)
    flow = torch.randn(2, 0, 2, 3, 5)
    for backend in ("cpu", "triton"):
        with fi.use_backend(backend):
            out = fi.temporal_shift_align(x, flow, flow, fold_div=4)
        torch.testing.assert_close(out, reference.temporal_shift_align(x, flow, flow, fold_div=4))


NONFINITE = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 3e38, -3e38])


def poisoned(t: torch.Tensor, fraction: float = 0.3) -> torch.Tensor:
    """t with a fraction of its elements NaN, infinite or huge."""
    t = t.clone()
    bad = torch.rand(t.shape) < fraction
    t[bad] = NONFINITE[torch.randint(0, len(NONFINITE), (int(bad.sum()),))].to(t.dtype)
    return t


def stride0(t: torch.Tensor) -> torch.Tensor:
    """The values of t's first element along every dimension but the last two, stored once
    (stride 0), then t's values broadcast: a stride-0 view of t's shape."""
    return t[(slice(0, 1),) * (t.dim() - 2)].expand(t.shape)


LAYOUTS = {
    "stride0": stride0,
    "channels_last": lambda t: (
        t.contiguous(memory_format=torch.channels_last)
        if t.dim() == 4
        else t.contiguous(memory_format=torch.channels_last_3d)
    ),
    "poisoned": poisoned,
}


def adversarial_calls(layout):
    """(name, fn, reference fn) of each op on inputs in ``layout`` (a tensor transform of
    the floating inputs; integer ones keep theirs)."""
    f = LAYOUTS[layout]
    n, h, w = 2, 5, 7
    flow, back = f(torch.randn(n, 2, h, w) * 3), f(torch.randn(n, 2, h, w) * 3)
    x = f(torch.randn(n, 3, h, w)) if layout != "poisoned" else torch.randn(n, 3, h, w)
    hole = (torch.rand(n, 1, h, w) < 0.5).to(torch.uint8)
    src_frame = torch.randint(-1, 4, (n, 1, h, w), dtype=torch.int32)
    src_pos = f(torch.rand(n, 2, h, w) * 8 - 1)
    frames = f(torch.randn(n, 3, 2, h, w)) if layout != "poisoned" else torch.randn(n, 3, 2, h, w)
    holes = (torch.rand(n, 3, 1, h, w) < 0.3).to(torch.uint8)
    video = f(torch.randn(n, 3, 4, h, w)) if layout != "poisoned" else torch.randn(n, 3, 4, h, w)
    flows = f(torch.randn(n, 2, 2, h, w) * 3)
    gates, cell = f(torch.randn(n, 8, h, w)), f(torch.randn(n, 2, h, w))
    calls = []
    for mode, padding_mode, align_corners in WARP_MODES:
        kw = dict(mode=mode, padding_mode=padding_mode, align_corners=align_corners)
        calls.append((f"flow_warp {kw}", lambda kw=kw: fi.flow_warp(x, flow, **kw)))
    calls += [
        ("fb_validity", lambda: fi.fb_validity(flow, back, both=True, source_mask=(hole, hole))),
        ("fb_validity unbounded", lambda: fi.fb_validity(flow, back, check_bounds=False)),
        ("flow_propagate", lambda: fi.flow_propagate(hole, flow, back, src_frame, src_pos, t=2)),
        ("propagation_gather", lambda: fi.propagation_gather(frames, holes, src_frame, src_pos)),
        ("temporal_shift", lambda: fi.temporal_shift(video, fold_div=4)),
        ("temporal_shift_align", lambda: fi.temporal_shift_align(video, flows, flows, fold_div=4)),
        ("convlstm_cell", lambda: fi.convlstm_cell(gates, cell)),
    ]
    return calls


@pytest.mark.parametrize("layout", list(LAYOUTS))
@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_adversarial_inputs_match_reference(backend, layout):
    """Stride-0 and channels_last inputs, and NaN, infinite and huge flows and positions:
    each kernel gives the reference's result."""
    if _backend._unavailable_reason(backend, "flow_warp", "cpu"):
        pytest.skip(_backend._unavailable_reason(backend, "flow_warp", "cpu"))
    for name, call in adversarial_calls(layout):
        with fi.use_backend("torch"):
            expected = call()
        with fi.use_backend(backend):
            actual = call()
        pairs = (
            zip(actual, expected, strict=False)
            if isinstance(expected, tuple)
            else [(actual, expected)]
        )
        for a, e in pairs:
            # Poisoned values make transcendentals and blends of inf NaN alike everywhere.
            torch.testing.assert_close(a, e, equal_nan=True, msg=f"{name} ({layout})")


INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_int32_extremes_of_frame_indices(backend):
    """Sources at INT32_MIN and INT32_MAX, t and t0 at the largest frame index, max_age 0 and
    the largest int64: every backend takes or drops each source as the reference does."""
    if _backend._unavailable_reason(backend, "flow_propagate", "cpu"):
        pytest.skip(_backend._unavailable_reason(backend, "flow_propagate", "cpu"))
    n, h, w = 1, 4, 6
    extremes = torch.tensor([INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX])
    src_frame = extremes[torch.randint(0, len(extremes), (n, 1, h, w))].to(torch.int32)
    src_pos = torch.rand(n, 2, h, w) * 5
    hole = torch.ones(n, 1, h, w, dtype=torch.uint8)
    flow = torch.zeros(n, 2, h, w)
    frames = torch.randn(n, 2, 3, h, w)
    holes = torch.zeros(n, 2, 1, h, w, dtype=torch.uint8)
    for t, max_age in itertools.product((0, 1, INT32_MAX), (None, 0, 1, 2**63 - 1)):
        args = (hole, flow, flow, src_frame, src_pos)
        with fi.use_backend(backend):
            actual = fi.flow_propagate(*args, t=t, max_age=max_age)
        expected = reference.flow_propagate(*args, t=t, max_age=max_age)
        for a, e in zip(actual, expected, strict=False):
            assert torch.equal(a, e), f"flow_propagate t={t} max_age={max_age}"
    for t0 in (0, 1, INT32_MAX - 1, INT32_MAX):
        with fi.use_backend(backend):
            actual = fi.propagation_gather(frames, holes, src_frame, src_pos, t0=t0)
        expected = reference.propagation_gather(frames, holes, src_frame, src_pos, t0=t0)
        for a, e in zip(actual, expected, strict=False):
            torch.testing.assert_close(a, e, msg=f"propagation_gather t0={t0}")


def direct_ops(backend: str) -> dict:
    return {
        "flow_propagate": PROPAGATE_OPS[backend],
        "propagation_gather": GATHER_OPS[backend],
        "temporal_shift": SHIFT_OPS[backend],
        "temporal_shift_align": ALIGN_OPS[backend],
    }


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_integer_arguments_have_one_range_on_every_route(backend):
    """t, t0 in [0, 2^31), max_age >= 0, fold >= 0: the public functions and direct callers
    of the registered ops (C++ or Triton) refuse the same values, naming the argument."""
    if _backend._unavailable_reason(backend, "flow_propagate", "cpu"):
        pytest.skip(_backend._unavailable_reason(backend, "flow_propagate", "cpu"))
    ops = direct_ops(backend)
    h, w = 3, 4
    hole = torch.ones(1, 1, h, w, dtype=torch.uint8)
    flow = torch.zeros(1, 2, h, w)
    src_frame, src_pos = torch.zeros(1, 1, h, w, dtype=torch.int32), torch.zeros(1, 2, h, w)
    frames, holes = torch.randn(1, 2, 3, h, w), torch.zeros(1, 2, 1, h, w, dtype=torch.uint8)
    state = (hole, flow, flow, src_frame, src_pos)
    for t in (-1, 2**31, 2**62):
        with pytest.raises(ValueError, match="t must be a frame index"):
            fi.flow_propagate(*state, t=t)
        with pytest.raises(RuntimeError, match="t must be a frame index"):
            ops["flow_propagate"](*state, t, 0.01, 0.5, None)
    for t0 in (-1, 2**31, 2**63 - 1):
        with pytest.raises(ValueError, match="t0 must be a frame index"):
            fi.propagation_gather(frames, holes, src_frame, src_pos, t0=t0)
        with pytest.raises(RuntimeError, match="t0 must be a frame index"):
            ops["propagation_gather"](frames, holes, src_frame, src_pos, t0)
    with pytest.raises(ValueError, match="max_age must be >= 0"):
        fi.flow_propagate(*state, t=1, max_age=-1)
    with pytest.raises(RuntimeError, match="max_age must be >= 0"):
        ops["flow_propagate"](*state, 1, 0.01, 0.5, -1)
    with pytest.raises(ValueError, match=r"max_age must be >= 0 and < 2\*\*63, got 9223372036"):
        fi.flow_propagate(*state, t=1, max_age=2**63)
    # The largest int64 is no limit at all, on every route.
    expected = reference.flow_propagate(*state, t=1, max_age=None)
    for a, e in zip(ops["flow_propagate"](*state, 1, 0.01, 0.5, 2**63 - 1), expected, strict=False):
        assert torch.equal(a, e)
    video = torch.randn(1, 3, 4, h, w)
    flows = torch.zeros(1, 2, 2, h, w)
    with pytest.raises(RuntimeError, match="fold must be >= 0"):
        ops["temporal_shift"](video, -1, False)
    with pytest.raises(RuntimeError, match="fold must be >= 0"):
        ops["temporal_shift_align"](video, flows, flows, None, None, -1, False)
    with pytest.raises(RuntimeError, match="fold must be >= 0"):  # even with nothing to shift
        ops["temporal_shift_align"](video[:0], flows[:0], flows[:0], None, None, -1, False)
    for fold in (4, 2**62):  # a fold past C shifts every channel it can, as fold = C does
        expected = ops["temporal_shift"](video, 4, False)
        assert torch.equal(ops["temporal_shift"](video, fold, False), expected)


@pytest.mark.parametrize("backend", ["cpu", "triton"])
def test_failed_allocation_names_the_output_and_its_size(backend):
    """2^46 elements (2^48 bytes, past any address space): the error says which output, in
    the same words on the C++ and the Triton route."""
    if _backend._unavailable_reason(backend, "flow_warp", "cpu"):
        pytest.skip(_backend._unavailable_reason(backend, "flow_warp", "cpu"))
    side = 2**23
    size = r"281474976710656 bytes \(70368744177664 elements of 4 bytes\)"
    x = torch.zeros(1, 1, 1, 1).expand(1, 1, side, side)
    flow = torch.zeros(1, 2, 1, 1).expand(1, 2, side, side)
    gates = torch.zeros(1, 4, 1, 1).expand(1, 4, side, side)
    frames = torch.zeros(1, 1, 1, 1, 1).expand(1, 1, 1, side, side)
    holes = torch.zeros(1, 1, 1, 1, 1, dtype=torch.uint8).expand(1, 1, 1, side, side)
    src_frame = torch.zeros(1, 1, 1, 1, dtype=torch.int32).expand(1, 1, side, side)
    src_pos = torch.zeros(1, 2, 1, 1).expand(1, 2, side, side)
    no_flow = torch.zeros(1, 0, 2, 1, 1)  # one frame: no flow
    calls = [
        ("flow_warp's output", lambda: fi.flow_warp(x, flow)),
        ("h_new", lambda: fi.convlstm_cell(gates)),
        ("fb_validity's output", lambda: fi.fb_validity(flow, flow)),
        (
            "src_frame_t",
            lambda: fi.flow_propagate(holes[:, 0], flow, flow, src_frame, src_pos, t=1),
        ),
        ("image", lambda: fi.propagation_gather(frames, holes, src_frame, src_pos)),
        ("temporal_shift's output", lambda: fi.temporal_shift(frames, fold_div=1)),
        (
            "temporal_shift_align's output",
            lambda: fi.temporal_shift_align(frames, no_flow, no_flow),
        ),
    ]
    for name, call in calls:
        with fi.use_backend(backend), pytest.raises(RuntimeError) as error:
            call()
        assert re.search(f"could not allocate {re.escape(name)}: {size}", str(error.value)), (
            f"{backend}: {error.value}"
        )


def valid_direct_calls() -> dict[str, tuple]:
    """Arguments every registered op (forward and backward) takes, on the CPU."""
    n, t, c, h, w = 2, 3, 3, 5, 6
    x, flow = torch.randn(n, c, h, w), torch.randn(n, 2, h, w)
    mask, src_frame = torch.zeros(n, 1, h, w, dtype=torch.uint8), torch.zeros(n, 1, h, w).int()
    x5, flow5 = torch.randn(n, t, 8, 4, 5), torch.randn(n, t - 1, 2, 4, 5)
    gates, cell = torch.randn(n, 12, h, w), torch.randn(n, 3, h, w)
    return {
        "flow_warp": (x, flow, 0, 0, True),
        "flow_warp_backward": (x, x, flow, 0, 0, True),
        "fb_validity": (flow, flow, mask, mask, 0.01, 0.5, True, True, None),
        "flow_propagate": (mask, flow, flow, src_frame, flow.abs(), 1, 0.01, 0.5, 3),
        "propagation_gather": (torch.randn(n, t, c, h, w), mask[:, None].expand(n, t, 1, h, w),
                               src_frame, flow.abs(), 0),
        "temporal_shift": (x5, 1, False),
        "temporal_shift_align": (x5, flow5, flow5, None, None, 1, False),
        "temporal_shift_align_backward": (x5, x5, flow5, flow5, None, None, 1, False, True),
        "convlstm_cell": (gates, cell),
        "convlstm_cell_backward": (cell, cell, gates, cell),
    }  # fmt: skip


@pytest.mark.parametrize("family", ["", "_triton"], ids=["kernels", "triton"])
def test_a_meta_tensor_among_cpu_ones_is_refused_by_name(family):
    """A meta tensor among the arguments sends a call to the op's meta kernel, which must
    refuse it as the kernels would, naming the argument, rather than give tensors of
    uninitialised memory; on meta tensors alone it gives the outputs' shapes."""
    for name, args in valid_direct_calls().items():
        op_name = name + family
        op = getattr(torch.ops.fused_inpaint, op_name).default
        names = [argument.name for argument in op._schema.arguments]
        tensors = [i for i, a in enumerate(args) if isinstance(a, torch.Tensor)]
        for i in tensors[1:]:
            moved = [a.to("meta") if k == i else a for k, a in enumerate(args)]
            message = f"{names[i]} must be on the same device as {names[tensors[0]]}"
            with pytest.raises(RuntimeError, match=message):
                op(*moved)
        on_meta = [a.to("meta") if isinstance(a, torch.Tensor) else a for a in args]
        outputs = op(*on_meta)
        for output in outputs if isinstance(outputs, tuple) else (outputs,):
            assert output.device.type == "meta", op_name
