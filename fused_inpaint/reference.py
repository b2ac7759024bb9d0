"""Pure-PyTorch reference of every op: the oracle of the tests and the ``torch`` backend.

Written for clarity, not speed: each op follows its formula in SPEC section 3 step by
step, differentiable through autograd, on any device and dtype. Arithmetic runs in
float64 for float64 inputs and in float32 otherwise (the kernels' accumulation type);
outputs take the input's dtype.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch

__all__ = [
    "convlstm_cell",
    "fb_validity",
    "flow_propagate",
    "flow_warp",
    "propagation_gather",
    "temporal_shift",
    "temporal_shift_align",
]


def compute_dtype(*tensors: torch.Tensor) -> torch.dtype:
    """float64 if any input is float64, else float32."""
    return torch.float64 if any(t.dtype == torch.float64 for t in tensors) else torch.float32


class AxisTaps(NamedTuple):
    """The two taps along one axis: index of the first, in-frame flags, weight of the second."""

    i0: torch.Tensor
    in0: torch.Tensor
    in1: torch.Tensor
    w1: torch.Tensor


# Tap indices are decided in integers: a float32 coordinate can not tell size - 1 from size
# once size > 2^24 (float(size - 1) rounds up). Floors are clamped to +-2^62 (exact in every
# float dtype, past any tensor's size) before they become int64.
INDEX_LIMIT = 2**62


def tap_index(integral: torch.Tensor) -> torch.Tensor:
    """int64 of a floored (or rounded) coordinate, clamped to +-2^62; NaN must be masked first."""
    return integral.clamp(-INDEX_LIMIT, INDEX_LIMIT).long()


def in_frame(q: torch.Tensor, size: int) -> torch.Tensor:
    """Whether the sample coordinates ``q`` lie in [0, size - 1] (finite ones only)."""
    finite = torch.isfinite(q)
    ceil = tap_index(torch.where(finite, q, torch.zeros_like(q)).ceil())
    return finite & (q >= 0) & (ceil <= size - 1)


def axis_scale(size: int, dtype: torch.dtype) -> torch.Tensor:
    """mmagic's scale for align_corners=False, size / max(size - 1, 1), rounded once in
    ``dtype`` as the kernels round it."""
    return torch.tensor(size, dtype=dtype) / torch.tensor(max(size - 1, 1), dtype=dtype)


def axis_taps(
    p_plus_f: torch.Tensor, size: int, *, align_corners: bool, mode: str, padding_mode: str
) -> AxisTaps:
    """Taps of the sample coordinates ``p + f`` (any shape) along an axis of ``size`` pixels."""
    if align_corners:
        q = p_plus_f
    else:  # mmagic: normalise by size-1, un-normalise with align_corners=False
        q = p_plus_f * axis_scale(size, p_plus_f.dtype).to(p_plus_f.device) - 0.5
    finite = torch.isfinite(q)
    q = torch.where(finite, q, torch.zeros_like(q))
    last = size - 1
    if mode == "nearest":
        r = tap_index(torch.round(q.detach()))  # half to even
        if padding_mode == "border":  # rounding commutes with the clamp to [0, last]
            r = r.clamp(0, last)
        in0 = finite & (r >= 0) & (r <= last)
        i0 = torch.where(in0, r, torch.zeros_like(r))
        # q * 0 keeps the output connected to the flow (a zero gradient, not a missing one).
        return AxisTaps(i0, in0, torch.zeros_like(in0), q * 0)
    f0 = torch.floor(q.detach())
    i0 = tap_index(f0)
    w1 = q - f0
    if padding_mode == "border":
        # q clamped to [0, last] (q >= last exactly where floor(q) >= last); clamped
        # coordinates carry no gradient, the border itself included (grid_sample).
        low, high = q.detach() <= 0, i0 >= last
        i0 = torch.where(low, 0, torch.where(high, last, i0))
        w1 = torch.where(low | high, torch.zeros_like(w1), w1)
    ok = finite & (i0 >= -1) & (i0 <= last)
    i0 = torch.where(ok, i0, torch.zeros_like(i0))
    w1 = torch.where(ok, w1, torch.zeros_like(w1))
    return AxisTaps(i0, ok & (i0 >= 0), ok & (i0 < last), w1)


def sample(img: torch.Tensor, tx: AxisTaps, ty: AxisTaps) -> torch.Tensor:
    """Bilinear blend of ``img`` at the taps; out-of-frame taps read zero.

    img: (N, C, Hs, Ws); tap tensors: (N, H, W). Returns (N, C, H, W) in img's dtype.
    """
    n, c, hs, ws = img.shape
    flat = img.reshape(n, c, hs * ws)
    out_shape = (n, c) + tuple(tx.i0.shape[1:])
    pixels = math.prod(out_shape[2:])

    def tap(dx: int, dy: int) -> torch.Tensor:
        inside = (tx.in1 if dx else tx.in0) & (ty.in1 if dy else ty.in0)
        col = torch.where(inside, tx.i0 + dx, 0)
        row = torch.where(inside, ty.i0 + dy, 0)
        index = (row * ws + col).reshape(n, 1, pixels).expand(n, c, pixels)
        value = torch.gather(flat, 2, index).reshape(out_shape)
        return torch.where(inside.unsqueeze(1), value, torch.zeros_like(value))

    wx1, wy1 = tx.w1.unsqueeze(1), ty.w1.unsqueeze(1)
    top = tap(0, 0) * (1 - wx1) + tap(1, 0) * wx1
    bottom = tap(0, 1) * (1 - wx1) + tap(1, 1) * wx1
    return top * (1 - wy1) + bottom * wy1


def like_layout(out: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``out`` in ``like``'s dtype and memory format (channels_last stays channels_last)."""
    out = out.to(like.dtype)
    if like.dim() == 4 and like.is_contiguous(memory_format=torch.channels_last):
        return out.contiguous(memory_format=torch.channels_last)
    return out


def pixel_grid(h: int, w: int, dtype: torch.dtype, device: torch.device):
    """Column and row indices, (1, 1, W) and (1, H, 1)."""
    xs = torch.arange(w, dtype=dtype, device=device).view(1, 1, w)
    ys = torch.arange(h, dtype=dtype, device=device).view(1, h, 1)
    return xs, ys


def flow_warp(
    x: torch.Tensor,
    flow: torch.Tensor,
    *,
    mode: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = True,
) -> torch.Tensor:
    """Backward warp: ``out[n, c, p] = x[n, c](p + flow[n, :, p])``.

    x: (N, C, H, W), flow: (N, 2, H, W) in pixels (dx, dy). Returns (N, C, H, W).
    """
    _, _, h, w = x.shape
    cdt = compute_dtype(x, flow)
    f = flow.to(cdt)
    xs, ys = pixel_grid(h, w, cdt, x.device)
    kw = dict(align_corners=align_corners, mode=mode, padding_mode=padding_mode)
    tx = axis_taps(xs + f[:, 0], w, **kw)
    ty = axis_taps(ys + f[:, 1], h, **kw)
    return like_layout(sample(x.to(cdt), tx, ty), x)


class FbTestValues(NamedTuple):
    """The quantities fb_validity thresholds, each (N, 1, H, W)."""

    lhs: torch.Tensor  # |F(p) + b|^2
    rhs: torch.Tensor  # alpha (|F(p)|^2 + |b|^2) + beta
    finite: torch.Tensor  # q finite
    in_frame: torch.Tensor  # q finite and inside the frame
    hole: torch.Tensor | None  # the hole indicator sampled at q (None without a mask)


def fb_test_values(
    flow: torch.Tensor, other: torch.Tensor, alpha: float, beta: float, source_mask=None
) -> FbTestValues:
    """For every pixel p of ``flow``'s frame: q = p + flow(p), b = other sampled at q."""
    _, _, h, w = flow.shape
    cdt = compute_dtype(flow, other)
    f, g = flow.to(cdt), other.to(cdt)
    xs, ys = pixel_grid(h, w, cdt, f.device)
    qx, qy = xs + f[:, 0], ys + f[:, 1]
    kw = dict(align_corners=True, mode="bilinear", padding_mode="zeros")
    tx, ty = axis_taps(qx, w, **kw), axis_taps(qy, h, **kw)
    b = sample(g, tx, ty)
    # ProPainter's length_sq order: sum of squares over the two flow channels.
    lhs = torch.sum(torch.square(f + b), dim=1, keepdim=True)
    magnitude = torch.sum(torch.square(f), dim=1, keepdim=True) + torch.sum(
        torch.square(b), dim=1, keepdim=True
    )
    finite = torch.isfinite(qx) & torch.isfinite(qy)
    inside = in_frame(qx, w) & in_frame(qy, h)
    hole = None if source_mask is None else sample((source_mask != 0).to(cdt), tx, ty)
    return FbTestValues(
        lhs, alpha * magnitude + beta, finite.unsqueeze(1), inside.unsqueeze(1), hole
    )


def _fb_valid_one(flow, other, alpha, beta, check_bounds, source_mask) -> torch.Tensor:
    v = fb_test_values(flow, other, alpha, beta, source_mask)
    valid = (v.lhs < v.rhs) & v.finite
    if check_bounds:
        valid &= v.in_frame
    if v.hole is not None:
        valid &= ~(v.hole > 0.1)
    return valid


def fb_validity(
    flow_fw: torch.Tensor,
    flow_bw: torch.Tensor,
    *,
    alpha: float = 0.01,
    beta: float = 0.5,
    check_bounds: bool = True,
    source_mask=None,
    both: bool = False,
    dtype: torch.dtype | None = None,
):
    """Forward-backward flow consistency: 1 where ``flow_fw`` is trustworthy.

    flow_fw, flow_bw: (N, 2, H, W). Returns (N, 1, H, W) of exactly 0/1 in ``dtype``
    (default: the flow's), or the pair (valid_fw, valid_bw) when ``both``. ``source_mask``:
    (N, 1, H, W) holes of frame t+1, or with ``both`` the pair (mask_t, mask_t1).
    """
    pair = isinstance(source_mask, (tuple, list))
    mask_t, mask_t1 = source_mask if pair else (None, None if both else source_mask)
    out_dtype = dtype or flow_fw.dtype
    valid_fw = _fb_valid_one(flow_fw, flow_bw, alpha, beta, check_bounds, mask_t1).to(out_dtype)
    if not both:
        return valid_fw
    valid_bw = _fb_valid_one(flow_bw, flow_fw, alpha, beta, check_bounds, mask_t).to(out_dtype)
    return valid_fw, valid_bw


def shift_groups(channels: int, fold_div: int) -> tuple[int, int]:
    """(fold, end of the second group): channels [0, fold) look ahead, [fold, end) back."""
    fold = channels // fold_div
    return fold, min(2 * fold, channels)


def temporal_shift(x: torch.Tensor, *, fold_div: int = 8) -> torch.Tensor:
    """TSM: x (N, T, C, H, W); channels [0, fold) from frame t+1, [fold, 2 fold) from t-1."""
    fold, end = shift_groups(x.shape[2], fold_div)
    out = torch.zeros_like(x)
    out[:, :-1, :fold] = x[:, 1:, :fold]
    out[:, 1:, fold:end] = x[:, :-1, fold:end]
    out[:, :, end:] = x[:, :, end:]
    return out


def resize_nearest(t: torch.Tensor, h: int, w: int) -> torch.Tensor:
    """``interpolate(mode="nearest")`` of (..., Hf, Wf) to (..., h, w), with exact integer
    source indices min(floor(y * Hf / h), Hf - 1)."""
    hf, wf = t.shape[-2:]
    if hf == 0 or wf == 0:  # no pixels to read, where nothing reads them: zeros, in the graph
        return t.sum((-2, -1), keepdim=True).expand(*t.shape[:-2], h, w)
    rows = torch.clamp(torch.arange(h, device=t.device) * hf // h, max=hf - 1)
    cols = torch.clamp(torch.arange(w, device=t.device) * wf // w, max=wf - 1)
    return t[..., rows[:, None], cols[None, :]]


def flow_scale(size: int, flow_size: int) -> float:
    """size / flow_size, the scale of flow vectors to feature pixels along one axis: the
    quotient of the exact sizes in float64, which every backend then rounds to its coordinate
    dtype (never the quotient of sizes rounded to float32 first: they are not exact past
    2^24); 0 for a flow without pixels, which nothing reads."""
    return size / flow_size if flow_size > 0 else 0.0


def _align(x: torch.Tensor, own: torch.Tensor, flow: torch.Tensor, valid) -> torch.Tensor:
    """Frames ``x`` (M, G, H, W) sampled along ``flow`` (M, 2, Hf, Wf), blended with ``own``
    by the trust ``valid * inframe(q)`` (valid: (M, 1, Hf, Wf) or None)."""
    _, _, h, w = x.shape
    hf, wf = flow.shape[-2:]
    f = resize_nearest(flow, h, w)
    fx, fy = f[:, 0] * flow_scale(w, wf), f[:, 1] * flow_scale(h, hf)
    xs, ys = pixel_grid(h, w, x.dtype, x.device)
    qx, qy = xs + fx, ys + fy
    kw = dict(align_corners=True, mode="bilinear", padding_mode="zeros")
    sampled = sample(x, axis_taps(qx, w, **kw), axis_taps(qy, h, **kw))
    inframe = in_frame(qx.detach(), w) & in_frame(qy.detach(), h)
    weight = inframe.unsqueeze(1).to(x.dtype)
    if valid is not None:
        weight = weight * resize_nearest(valid.detach().to(x.dtype), h, w)
    # A weight of 0 keeps the frame's own value and a weight of 1 takes the sample whole:
    # the other side is not read, even when it is not finite.
    blend = weight * sampled + (1 - weight) * own
    return torch.where(weight == 0, own, torch.where(weight == 1, sampled, blend))


def temporal_shift_align(
    x: torch.Tensor,
    flow_fw: torch.Tensor | None,
    flow_bw: torch.Tensor,
    valid_fw: torch.Tensor | None = None,
    valid_bw: torch.Tensor | None = None,
    *,
    fold_div: int = 8,
    causal: bool = False,
) -> torch.Tensor:
    """TSAM: temporal shift whose shifted channels are aligned by flow and trusted by masks.

    x: (N, T, C, H, W); flow_fw, flow_bw: (N, T-1, 2, Hf, Wf); valid_*: (N, T-1, 1, Hf, Wf).
    """
    n, t, c, h, w = x.shape
    fold, end = shift_groups(c, fold_div)
    cdt = compute_dtype(x, flow_bw)
    xc = x.to(cdt)

    def shifted(group: torch.Tensor, flow, valid, ahead: bool) -> torch.Tensor:
        if t == 1:
            return torch.zeros_like(group)
        source, own = (group[:, 1:], group[:, :-1]) if ahead else (group[:, :-1], group[:, 1:])
        g = group.shape[2]
        m = n * (t - 1)
        aligned = _align(
            source.reshape(m, g, h, w),
            own.reshape(m, g, h, w),
            flow.to(cdt).reshape(m, 2, *flow.shape[-2:]),
            None if valid is None else valid.reshape(m, 1, *valid.shape[-2:]),
        ).reshape(n, t - 1, g, h, w)
        pad = torch.zeros_like(group[:, :1])
        return torch.cat([aligned, pad] if ahead else [pad, aligned], dim=1)

    ahead = xc[:, :, :fold] if causal else shifted(xc[:, :, :fold], flow_fw, valid_fw, True)
    behind = shifted(xc[:, :, fold:end], flow_bw, valid_bw, False)
    return torch.cat([ahead, behind, xc[:, :, end:]], dim=2).to(x.dtype)


def convlstm_cell(
    gates: torch.Tensor, c: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """ConvLSTM gate math: gates (N, 4*Ch, H, W) in chunks (i, f, o, g), c (N, Ch, H, W) or
    None (zeros). Returns (h_new in gates' dtype, c_new in c's dtype, else gates')."""
    cdt = compute_dtype(gates) if c is None else compute_dtype(gates, c)
    i, f, o, g = gates.to(cdt).unflatten(1, (4, gates.shape[1] // 4)).unbind(1)
    c_new = torch.sigmoid(i) * torch.tanh(g)
    if c is not None:
        c_new = torch.sigmoid(f) * c.to(cdt) + c_new
    h_new = torch.sigmoid(o) * torch.tanh(c_new)
    return like_layout(h_new, gates), like_layout(c_new, gates if c is None else c)


def flow_propagate(
    hole: torch.Tensor,
    flow_to: torch.Tensor,
    flow_from: torch.Tensor,
    src_frame: torch.Tensor,
    src_pos: torch.Tensor,
    *,
    t: int,
    alpha: float = 0.01,
    beta: float = 0.5,
    max_age: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """One step of a propagation sweep: where frame t's pixels can read a real value.

    hole: (N, 1, H, W), nonzero = hole in frame t; flow_to: (N, 2, H, W) from t to the
    neighbour n on t's grid; flow_from: (N, 2, H, W) from n to t on n's grid; src_frame:
    (N, 1, H, W) int32 and src_pos: (N, 2, H, W) float32 (x, y), the neighbour's state.
    Returns frame t's state: (t, p) at known pixels; at hole pixels the neighbour's source
    at r = round(q), q = p + flow_to(p), moved by q - r, where q is in frame, the flows
    pass fb_validity's test at p and r holds a source no more than ``max_age`` frames
    from t; else -1 (and position 0).
    """
    n, _, h, w = hole.shape
    cdt = compute_dtype(flow_to, flow_from)
    # fb_validity's test, bounds included: the same code decides both.
    consistent = _fb_valid_one(flow_to, flow_from, alpha, beta, True, None)[:, 0]
    f = flow_to.to(cdt)
    xs, ys = pixel_grid(h, w, cdt, f.device)
    qx, qy = xs + f[:, 0], ys + f[:, 1]
    # Half to even; only in-frame (hence finite) points are rounded to an index.
    rx = torch.where(consistent, torch.round(qx), torch.zeros_like(qx))
    ry = torch.where(consistent, torch.round(qy), torch.zeros_like(qy))
    index = (tap_index(ry) * w + tap_index(rx)).reshape(n, 1, h * w)
    neighbour_frame = torch.gather(src_frame.reshape(n, 1, h * w), 2, index).reshape(n, h, w)
    neighbour_pos = torch.gather(src_pos.reshape(n, 2, h * w), 2, index.expand(n, 2, h * w))
    neighbour_pos = neighbour_pos.reshape(n, 2, h, w).to(cdt)
    take = consistent & (neighbour_frame >= 0)
    if max_age is not None:
        take &= (neighbour_frame.long() - t).abs() <= max_age
    carried = neighbour_pos + torch.stack([qx - rx, qy - ry], dim=1)
    in_hole = hole[:, 0] != 0
    grid = torch.stack([xs.expand(n, h, w), ys.expand(n, h, w)], dim=1)
    frame_t = torch.where(in_hole, torch.where(take, neighbour_frame, -1), t)
    pos_t = torch.where(
        in_hole.unsqueeze(1),
        torch.where(take.unsqueeze(1), carried, torch.zeros_like(carried)),
        grid,
    )
    return frame_t.unsqueeze(1).to(torch.int32), pos_t.to(torch.float32)


def propagation_gather(
    frames: torch.Tensor,
    holes: torch.Tensor,
    src_frame: torch.Tensor,
    src_pos: torch.Tensor,
    *,
    t0: int = 0,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Reads the colours a propagation state points at.

    frames: (N, T, C, H, W), frames t0 .. t0+T-1; holes: (N, T, 1, H, W), nonzero = hole;
    src_frame: (N, 1, H, W) int32 (absolute frame index, -1 = none); src_pos: (N, 2, H, W)
    float32 (x, y). Returns image (N, C, H, W) in frames' dtype: the bilinear sample of the
    source frame at the position over its taps in frame and outside that frame's hole,
    renormalised; and valid (N, 1, H, W) bool where the kept weight is > 1e-3 and the
    source lies in the chunk (image 0 elsewhere). Without frames (T = 0) no source does.
    """
    n, length, c, h, w = frames.shape
    if length == 0:
        image = frames.new_zeros((n, c, h, w))
        return image, torch.zeros((n, 1, h, w), dtype=torch.bool, device=frames.device)
    cdt = compute_dtype(frames)
    index = src_frame[:, 0].long() - t0
    in_chunk = (src_frame[:, 0] >= 0) & (index >= 0) & (index < length)
    index = torch.where(in_chunk, index, torch.zeros_like(index))
    pos = src_pos.to(cdt)
    kw = dict(align_corners=True, mode="bilinear", padding_mode="zeros")
    tx, ty = axis_taps(pos[:, 0], w, **kw), axis_taps(pos[:, 1], h, **kw)
    values = frames.to(cdt).permute(0, 2, 1, 3, 4).reshape(n, c, length * h * w)
    known = (holes == 0).to(cdt).reshape(n, length * h * w)
    total = torch.zeros(n, c, h, w, dtype=cdt, device=frames.device)
    weight = torch.zeros(n, h, w, dtype=cdt, device=frames.device)
    for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
        inside = in_chunk & (tx.in1 if dx else tx.in0) & (ty.in1 if dy else ty.in0)
        col = torch.where(inside, tx.i0 + dx, 0)
        row = torch.where(inside, ty.i0 + dy, 0)
        flat = (index * (h * w) + row * w + col).reshape(n, h * w)
        tap_w = (tx.w1 if dx else 1 - tx.w1) * (ty.w1 if dy else 1 - ty.w1)
        tap_w = torch.where(inside, tap_w, torch.zeros_like(tap_w))
        tap_w = tap_w * torch.gather(known, 1, flat).reshape(n, h, w)
        tap_v = torch.gather(values, 2, flat.unsqueeze(1).expand(n, c, h * w))
        # A tap of weight 0 adds nothing, whatever its pixel holds (a hole may hold NaN).
        kept = tap_w.unsqueeze(1) > 0
        total += torch.where(kept, tap_w.unsqueeze(1) * tap_v.reshape(n, c, h, w), 0.0)
        weight += tap_w
    valid = in_chunk & (weight > 1e-3)
    image = torch.where(valid.unsqueeze(1), total / weight.clamp_min(1e-3).unsqueeze(1), 0.0)
    return like_layout(image, frames[:, 0]), valid.unsqueeze(1)
