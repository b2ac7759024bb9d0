"""propagation_gather (SPEC 3.5c) on every backend against the reference."""

from __future__ import annotations

import pytest
import torch
from support import (
    DTYPE_CASES,
    MAIN_CASE,
    ONE_DTYPE_CASES,
    assert_matches_reference,
    backend_params,
    dtype_cases,
    own_process_on_cuda,
    sanitized_params,
    with_layout,
)
from test_fb_validity import MAX_NEAR_THRESHOLD
from test_flow_propagate import make_state

import fused_inpaint as fi
from fused_inpaint import reference
from fused_inpaint.ops.propagation_gather import OPS

BACKENDS = backend_params("propagation_gather")
KERNEL_BACKENDS = backend_params("propagation_gather", backends=("cpu", "cuda", "triton"))

# name: (frames shape (N, T, C, H, W), layout, t0)
CASES = {
    "odd": ((2, 3, 3, 5, 7), "contiguous", 0),
    "row": ((2, 2, 3, 1, 9), "contiguous", 2),
    "column": ((1, 3, 4, 8, 1), "contiguous", 0),
    "pixel": ((1, 1, 2, 1, 1), "contiguous", 0),
    "channels": ((1, 2, 9, 4, 5), "contiguous", 5),  # channel loops past one chunk or tile
    "channels_last": ((1, 3, 5, 6, 7), "channels_last", 1),  # so is frames[:, 0]
    "channels_inner": ((2, 3, 5, 6, 7), "channels_last", 0),  # frames[:, 0] is not
    "strided": ((2, 3, 3, 5, 7), "strided", 3),
}
# The CUDA kernel's extreme inputs, besides a 1x1 frame and the NaN, inf and 1e30
# positions of every case: no channels.
EXTREMES = {"no_channels": ((2, 3, 0, 4, 5), "contiguous", 1)}
# A hole mask may come in any dtype; each case uses one.
HOLE_DTYPES = {"odd": torch.bool, "row": torch.uint8, "column": torch.float32}
EPS32 = torch.finfo(torch.float32).eps


def with_layout5(t: torch.Tensor, layout: str) -> torch.Tensor:
    """``with_layout`` of each (N, C, H, W) frame of t (N, T, C, H, W)."""
    return with_layout(t.flatten(0, 1), layout).unflatten(0, t.shape[:2])


def make_positions(n: int, h: int, w: int) -> torch.Tensor:
    """(N, 2, H, W) float32 positions: in and around the frame, a third of them on pixel
    centres, a few absurd (NaN, inf, 1e30)."""
    pos = torch.rand(n, 2, h, w) * torch.tensor([w + 2.0, h + 2.0]).view(1, 2, 1, 1) - 1.5
    centred = torch.rand(n, 1, h, w) < 0.3
    pos = torch.where(centred, pos.round(), pos)
    bad = torch.rand(n, 2, h, w) < 0.05
    pos[bad] = torch.tensor([float("nan"), float("inf"), 1e30])[
        torch.randint(0, 3, (int(bad.sum()),))
    ]
    return pos


def make_inputs(case: str, dtype_case: str, device):
    """(frames, holes, src_frame, src_pos), t0: sources in, before and after the chunk and
    none; 30% holes, whose pixels hold NaN (a tap there must never be read)."""
    shape, layout, t0 = (CASES | EXTREMES)[case]
    n, length, _, h, w = shape
    frames = torch.randn(shape, dtype=torch.float64).to(DTYPE_CASES[dtype_case][0])
    holes = torch.rand(n, length, 1, h, w) < 0.3
    frames[holes.expand_as(frames)] = float("nan")
    src_frame = torch.randint(t0 - 2, t0 + length + 2, (n, 1, h, w), dtype=torch.int32)
    src_frame[torch.rand(n, 1, h, w) < 0.1] = -1
    holes = holes.to(HOLE_DTYPES.get(case, torch.uint8))
    inputs = (
        with_layout5(frames.to(device), layout),
        with_layout5(holes.to(device), layout),
        with_layout(src_frame.to(device), layout),
        with_layout(make_positions(n, h, w).to(device), layout),
    )
    return inputs, t0


def kept_weight(holes, src_frame, src_pos, t0: int) -> torch.Tensor:
    """The weight (N, 1, H, W) float64 of each pixel's taps in frame, in the chunk and out of
    its source frame's hole."""
    n, length, _, h, w = holes.shape
    pos = src_pos.double().cpu()
    kw = dict(align_corners=True, mode="bilinear", padding_mode="zeros")
    tx, ty = reference.axis_taps(pos[:, 0], w, **kw), reference.axis_taps(pos[:, 1], h, **kw)
    source = src_frame[:, 0].long().cpu()
    in_chunk = (source >= t0) & (source < t0 + length)
    k = torch.where(in_chunk, source - t0, 0)
    known = holes.cpu()[:, :, 0] == 0
    batch = torch.arange(n).view(n, 1, 1)
    weight = torch.zeros(n, h, w, dtype=torch.float64)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        inside = in_chunk & (tx.in1 if dx else tx.in0) & (ty.in1 if dy else ty.in0)
        col, row = torch.where(inside, tx.i0 + dx, 0), torch.where(inside, ty.i0 + dy, 0)
        tap_w = (tx.w1 if dx else 1 - tx.w1) * (ty.w1 if dy else 1 - ty.w1)
        weight += torch.where(inside & known[batch, k, row, col], tap_w, 0.0)
    return weight.unsqueeze(1)


def check_gather(actual, inputs, t0: int, name: str) -> int:
    """``actual`` is the reference's (image, valid): valid bit for bit in the frames' own
    precision, and image too where that is the accumulation's; against the float64
    reference, valid agrees except within rounding of the weight threshold and image
    within the error budget of ``assert_matches_reference``. Returns the count of those."""
    image, valid = (a.cpu() for a in actual)
    frames, holes, src_frame, src_pos = inputs
    n, _, c, h, w = frames.shape
    assert image.shape == (n, c, h, w) and image.dtype == frames.dtype, name
    assert valid.shape == (n, 1, h, w) and valid.dtype == torch.bool, name
    channels_last = frames[:, 0].is_contiguous(memory_format=torch.channels_last)
    memory_format = torch.channels_last if channels_last else torch.contiguous_format
    assert image.is_contiguous(memory_format=memory_format), f"{name}: {image.stride()}"
    same_image, same_valid = (e.cpu() for e in reference.propagation_gather(*inputs, t0=t0))
    assert torch.equal(valid, same_valid), f"{name}: valid differs from the reference"
    if frames.dtype in (torch.float32, torch.float64):
        assert torch.equal(image, same_image), f"{name}: image differs from the reference"
    assert not image[~valid.expand_as(image)].any(), f"{name}: image not 0 where invalid"

    image64, valid64 = reference.propagation_gather(frames.double(), *inputs[1:], t0=t0)
    near = (kept_weight(holes, src_frame, src_pos, t0) - 1e-3).abs() <= 4 * EPS32
    disagree = valid != valid64.cpu()
    far = disagree & ~near
    assert not far.any(), f"{name}: {int(far.sum())} pixels differ away from the threshold"
    count = int(disagree.sum())
    assert count <= MAX_NEAR_THRESHOLD * valid.numel() + 1, f"{name}: {count} near-threshold"
    both = (valid & valid64.cpu()).expand_as(image)
    assert_matches_reference(
        torch.where(both, image, 0),
        torch.where(both, image64.cpu(), 0),
        torch.where(both, same_image, 0),
        f"image {name}",
    )
    return count


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_matches_reference(backend, device, case):
    for dtype_case in dtype_cases(backend, device, every_dtype=case == MAIN_CASE[device]):
        if dtype_case.endswith("flow32"):
            continue  # no flow: the dtype is the frames'
        inputs, t0 = make_inputs(case, dtype_case, device)
        with fi.use_backend(backend):
            actual = fi.propagation_gather(*inputs, t0=t0)
        check_gather(actual, inputs, t0, f"{dtype_case} {case}")


@pytest.mark.parametrize("dtype_case", sanitized_params("propagation_gather", ONE_DTYPE_CASES))
def test_cuda_kernel_on_extreme_inputs(dtype_case):
    """A 1x1 frame, channels past one chunk, no channels, with the reference on the CPU:
    under compute-sanitizer, little but the kernel runs on the GPU."""
    for case in ("pixel", "channels", *EXTREMES):
        inputs, t0 = make_inputs(case, dtype_case, "cpu")
        with fi.use_backend("cuda"):
            actual = fi.propagation_gather(*(t.cuda() for t in inputs), t0=t0)
        check_gather(actual, inputs, t0, f"{dtype_case} {case}")


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_taps_in_the_hole_are_renormalised_away(backend, device):
    """Taps out of frame or in the source frame's hole weigh 0, the rest renormalised; a
    kept weight of 1e-3 or less, or a source out of the chunk, reads nothing."""
    frames = torch.randn(1, 2, 2, 3, 4)  # frames 4 and 5 of a clip
    holes = torch.zeros(1, 2, 1, 3, 4, dtype=torch.bool)
    holes[0, 1, 0, 1, 2] = True
    frames[0, 1, :, 1, 2] = float("nan")  # never read
    f4, f5 = frames[0, 0].double(), frames[0, 1].double()
    mixed = (0.5625 * f5[:, 0, 1] + 0.1875 * f5[:, 0, 2] + 0.1875 * f5[:, 1, 1]) / 0.9375
    # (source frame, (x, y), expected colour or None where invalid)
    states = [
        (5, (1.5, 1.0), f5[:, 1, 1]),  # half its weight in the hole
        (5, (1.25, 0.25), mixed),  # the lower right tap in the hole
        (5, (2.0, 1.0), None),  # all its weight in the hole
        (5, (1.9995, 1.0), None),  # kept weight 5e-4
        (4, (2.0, 1.0), f4[:, 1, 2]),  # frame 4 has no hole
        (3, (0.0, 0.0), None),  # before the chunk
        (6, (0.0, 0.0), None),  # after the chunk
        (-1, (0.0, 0.0), None),
        (4, (-0.5, 0.0), f4[:, 0, 0]),  # half its weight out of frame
        (4, (3.0, 2.0), f4[:, 2, 3]),
        (4, (float("nan"), 0.0), None),
        (4, (3.5, 0.0), f4[:, 0, 3]),
    ]
    src_frame = torch.tensor([s for s, _, _ in states], dtype=torch.int32).view(1, 1, 3, 4)
    src_pos = torch.tensor([p for _, p, _ in states]).T.reshape(1, 2, 3, 4)
    args = (frames, holes, src_frame, src_pos)
    with fi.use_backend(backend):
        image, valid = fi.propagation_gather(*(a.to(device) for a in args), t0=4)
    image, valid = image.cpu()[0].flatten(1), valid.cpu().flatten()
    for i, (_, _, expected) in enumerate(states):
        assert bool(valid[i]) == (expected is not None), i
        if expected is None:
            assert not image[:, i].any(), i
        else:
            torch.testing.assert_close(image[:, i].double(), expected, rtol=4 * EPS32, atol=0)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_outputs_need_no_grad(backend, device):
    (frames, *rest), t0 = make_inputs("odd", "fp32", device)
    frames.requires_grad_()
    with fi.use_backend(backend):
        image, valid = fi.propagation_gather(frames, *rest, t0=t0)
    assert not image.requires_grad and not valid.requires_grad


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
def test_opcheck(backend, device):
    op = OPS[backend]
    for case in ("channels_last", "strided"):
        (frames, holes, src_frame, src_pos), t0 = make_inputs(case, "fp32", device)
        torch.library.opcheck(op, (frames, holes.view(torch.uint8), src_frame, src_pos, t0))


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_torch_compile_fullgraph(backend, device):
    torch._dynamo.reset()
    (frames, holes, src_frame, src_pos), t0 = make_inputs("odd", "fp32", device)
    flow = torch.zeros(frames.shape[0], 2, *frames.shape[3:], device=device)

    def fill(frames, holes, flow, src_frame, src_pos):
        state = fi.flow_propagate(holes[:, 1], flow, flow, src_frame, src_pos, t=1)
        image, valid = fi.propagation_gather(frames, holes, *state)
        return torch.where(valid, image, -1.0), valid

    args = (frames, holes, flow, src_frame, src_pos)
    with fi.use_backend(backend):
        compiled = torch.compile(fill, fullgraph=True)(*args)
        eager = fill(*args)
    for c, e in zip(compiled, eager, strict=True):
        assert torch.equal(c, e)


def bool_dtype_views_compiled(fn, *args) -> list[str]:
    """The dtype views of bool tensors (aten.view.dtype) in the ATen graph that
    torch.compile hands its backend for fn(*args)."""
    from torch._dynamo.backends.common import aot_autograd

    found = []

    def capture(gm, example_inputs):
        for node in gm.graph.nodes:
            if node.target is torch.ops.aten.view.dtype:
                if node.args[0].meta["val"].dtype == torch.bool:
                    found.append(node.format_node())
        return gm

    torch._dynamo.reset()
    torch.compile(fn, fullgraph=True, backend=aot_autograd(fw_compiler=capture))(*args)
    return found


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_compiled_ops_convert_bool_holes(backend, device):
    """Inductor lowers a bool -> uint8 view to a bitcast, which Triton refuses (int1 to
    uint8): torch.compile failed on the GPU for every op given a bool hole mask. Under
    torch.compile the ops convert the mask instead."""
    (frames, holes, src_frame, src_pos), _ = make_inputs("odd", "fp32", device)
    assert holes.dtype == torch.bool
    flow = torch.zeros(frames.shape[0], 2, *frames.shape[3:], device=device)

    def fill(frames, holes, flow, src_frame, src_pos):
        valid = fi.fb_validity(flow, flow, source_mask=holes[:, 0])
        state = fi.flow_propagate(holes[:, 1], flow, flow, src_frame, src_pos, t=1)
        return valid, *fi.propagation_gather(frames, holes, *state)

    with fi.use_backend(backend):
        assert bool_dtype_views_compiled(fill, frames, holes, flow, src_frame, src_pos) == []


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_empty_inputs(backend, device):
    """Zero sizes; without frames (T = 0) no source lies in the chunk: image 0, valid 0."""
    for n, t, c, h, w in [(0, 2, 3, 4, 5), (2, 2, 0, 4, 5), (2, 2, 3, 0, 5), (2, 2, 3, 4, 0),
                          (2, 0, 3, 4, 5)]:  # fmt: skip
        frames = torch.zeros(n, t, c, h, w, device=device)
        holes = torch.zeros(n, t, 1, h, w, device=device)
        with fi.use_backend(backend):
            image, valid = fi.propagation_gather(frames, holes, *make_state(n, h, w, device))
        assert image.shape == (n, c, h, w) and valid.shape == (n, 1, h, w)
        if t == 0:
            assert not image.any() and not valid.any()


def test_bad_arguments_name_the_argument():
    (frames, holes, src_frame, src_pos), _ = make_inputs("odd", "fp32", "cpu")
    good = dict(frames=frames, holes=holes, src_frame=src_frame, src_pos=src_pos)
    cases = [
        (dict(frames=frames[:, 0]), {}, ValueError, "frames must have shape"),
        (dict(frames=frames.long()), {}, TypeError, "frames must be a floating-point tensor"),
        (dict(holes=holes[:, :1]), {}, ValueError, "holes must have shape"),
        (dict(holes=holes[:, 0]), {}, ValueError, "holes must have shape"),
        (dict(holes=holes.to("meta")), {}, ValueError, "holes must be on the same device"),
        (dict(src_frame=src_frame.long()), {}, TypeError, "src_frame must be torch.int32"),
        (dict(src_frame=src_frame[..., :3]), {}, ValueError, "src_frame must have shape"),
        (dict(src_pos=src_pos.half()), {}, TypeError, "src_pos must be torch.float32"),
        (dict(src_pos=src_pos[:, :, :2]), {}, ValueError, "src_pos must have shape"),
        ({}, dict(t0=-1), ValueError, "t0 must be a frame index"),
        ({}, dict(t0=2.0), TypeError, "t0 must be an int"),
    ]
    for tensors, kw, error, message in cases:
        with pytest.raises(error, match=message):
            fi.propagation_gather(*{**good, **tensors}.values(), **kw)


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
@own_process_on_cuda
def test_registered_op_rejects_bad_arguments(backend, device):
    (frames, holes, src_frame, src_pos), _ = make_inputs("odd", "fp32", device)
    holes = holes.view(torch.uint8)
    op = OPS[backend]
    for args in [
        (frames[:, 0], holes, src_frame, src_pos, 0),
        (frames, holes.float(), src_frame, src_pos, 0),
        (frames, holes[:, :1], src_frame, src_pos, 0),
        (frames, holes, src_frame.long(), src_pos, 0),
        (frames, holes, src_frame, src_pos[..., :3], 0),
        (frames, holes, src_frame, src_pos, -1),
    ]:
        with pytest.raises(RuntimeError):
            op(*args)
