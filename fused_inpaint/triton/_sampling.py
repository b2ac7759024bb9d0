"""Sampling on pixel centres for Triton kernels: the math of csrc/common/sampling.h.

Per-axis taps of a sample coordinate, then a 4-tap gather, blend, scatter (the blend's
adjoint) and the blend's derivative. Coordinates and values are in the caller's COORD
dtype (float32, or float64 for float64 data). Everything here also runs under
TRITON_INTERPRET=1: no libdevice, no half-precision arithmetic, no half-precision atomics.
"""

import triton
import triton.language as tl

from fused_inpaint.triton._math import divide

BILINEAR: tl.constexpr = tl.constexpr(0)
NEAREST: tl.constexpr = tl.constexpr(1)
ZEROS: tl.constexpr = tl.constexpr(0)
BORDER: tl.constexpr = tl.constexpr(1)
INF: tl.constexpr = tl.constexpr(float("inf"))
# Floors past +-2^62 (exact in every float dtype, past any tensor's size) are clamped
# before they become int64.
INDEX_LIMIT: tl.constexpr = tl.constexpr(float(2**62))


@triton.jit
def isfinite(q):
    """Elementwise: neither NaN nor infinite."""
    return (q == q) & (tl.abs(q) < INF)


@triton.jit
def round_half_even(q):
    """Rounds to the nearest integer, ties to even (grid_sample's nearest mode)."""
    f = tl.floor(q)
    d = q - f  # exact: the fraction of a float is representable
    f_is_odd = (f - 2.0 * tl.floor(0.5 * f)) == 1.0
    return f + ((d > 0.5) | ((d == 0.5) & f_is_odd)).to(q.dtype)


@triton.jit
def tap_index(integral):
    """int64 of a finite floored (or rounded) coordinate, clamped to +-2^62 first.

    Whether a tap is in frame is decided on this integer, never by comparing a coordinate
    with ``size - 1`` as a float: in float32 that rounds up to ``size`` once size > 2^24.
    """
    return tl.minimum(tl.maximum(integral, -INDEX_LIMIT), INDEX_LIMIT).to(tl.int64)


@triton.jit
def in_frame(q, size):
    """Elementwise: the sample coordinate q lies in [0, size - 1] (false where non-finite)."""
    finite = isfinite(q)
    ceil = tap_index(tl.where(finite, tl.ceil(q), 0.0))
    return finite & (q >= 0.0) & (ceil <= size - 1)


@triton.jit
def axis_scale_shift(size, ALIGN_CORNERS: tl.constexpr, COORD: tl.constexpr):
    """(scale, shift) mapping ``p + f`` to the sample coordinate ``(p + f) * scale - shift``.

    align_corners=False is mmagic's: normalised by size-1, un-normalised by size.
    Computed in COORD from the integer size: a float kernel argument would be float32.
    The scale is rounded as on the CPU, so that a sample exactly between two pixels picks
    the same one in nearest mode.
    """
    if ALIGN_CORNERS:
        scale = tl.full([], 1.0, COORD)
        shift = tl.full([], 0.0, COORD)
    else:
        scale = divide(size.to(COORD), tl.maximum(size - 1, 1).to(COORD))
        shift = tl.full([], 0.5, COORD)
    return scale, shift


@triton.jit
def axis_taps(p_plus_f, size, scale, shift, MODE: tl.constexpr, PADDING: tl.constexpr):
    """The two taps along one axis of ``size`` pixels around ``(p + f) * scale - shift``.

    Returns (i0, in0, in1, w1, dq): int64 index of the first tap (the second is i0 + 1),
    whether each tap is in the frame, the weight of the second tap, and d(coordinate)/df
    (0 where the border clamps or the coordinate is non-finite; always 0 for nearest).
    A non-finite coordinate has no tap in the frame, and the taps are decided on their
    integer indices (tap_index), so any flow yields a safe index at any size.
    """
    q = p_plus_f * scale - shift
    finite = isfinite(q)
    q = tl.where(finite, q, 0.0)
    last = size - 1
    if MODE == NEAREST:
        r = tap_index(round_half_even(q))
        if PADDING == BORDER:  # rounding commutes with the clamp to [0, last]
            r = tl.minimum(tl.maximum(r, 0), last)
        in0 = finite & (r >= 0) & (r <= last)
        i0 = tl.where(in0, r, 0)
        in1 = tl.zeros_like(in0)  # nearest has one tap
        w1 = tl.zeros_like(q)
        dq = tl.zeros_like(q)
    else:
        f0 = tl.floor(q)
        i0 = tap_index(f0)
        w1 = q - f0
        dq = tl.where(finite, scale, 0.0)
        if PADDING == BORDER:
            # q clamped to [0, last] (q >= last exactly where floor(q) >= last); like
            # grid_sample, the border itself counts as clamped for the gradient.
            low = q <= 0.0
            high = i0 >= last
            i0 = tl.where(low, 0, tl.where(high, last, i0))
            w1 = tl.where(low | high, 0.0, w1)
            dq = tl.where(low | high, 0.0, dq)
        ok = finite & (i0 >= -1) & (i0 <= last)
        i0 = tl.where(ok, i0, 0)
        in0 = ok & (i0 >= 0)
        in1 = ok & (i0 < last)
        w1 = tl.where(ok, w1, 0.0)
        dq = tl.where(ok, dq, 0.0)
    return i0, in0, in1, w1, dq


@triton.jit
def gather4(ptr00, stride_h, stride_w, mask, in_x0, in_x1, in_y0, in_y1, COORD: tl.constexpr):
    """The taps (v00, v01, v10, v11: v<row><col>) at ``ptr00`` and its right, lower and
    lower-right neighbours, as COORD; zero where out of frame or masked."""
    v00 = tl.load(ptr00, mask=mask & in_y0 & in_x0, other=0.0).to(COORD)
    v01 = tl.load(ptr00 + stride_w, mask=mask & in_y0 & in_x1, other=0.0).to(COORD)
    v10 = tl.load(ptr00 + stride_h, mask=mask & in_y1 & in_x0, other=0.0).to(COORD)
    v11 = tl.load(ptr00 + stride_h + stride_w, mask=mask & in_y1 & in_x1, other=0.0).to(COORD)
    return v00, v01, v10, v11


@triton.jit
def blend4(v00, v01, v10, v11, wx1, wy1):
    """Bilinear blend of the taps.

    A weighted sum rather than a lerp: a zero weight must not turn an infinite tap into
    NaN (nearest mode copies values exactly).
    """
    wx0 = 1.0 - wx1
    top = v00 * wx0 + v01 * wx1
    bottom = v10 * wx0 + v11 * wx1
    return top * (1.0 - wy1) + bottom * wy1


@triton.jit
def blend4_grad(v00, v01, v10, v11, wx1, wy1):
    """(d blend / d wx1, d blend / d wy1): times dq, the blend's derivative w.r.t. the flow."""
    d_wx1 = (v01 - v00) * (1.0 - wy1) + (v11 - v10) * wy1
    d_wy1 = (v10 - v00) * (1.0 - wx1) + (v11 - v01) * wx1
    return d_wx1, d_wy1


@triton.jit
def scatter4(ptr00, stride_h, stride_w, mask, in_x0, in_x1, in_y0, in_y1, g, wx1, wy1):
    """Atomically adds ``g`` times each tap's weight at the taps in frame: blend4's adjoint.

    The pointee is float32 or float64: half-precision atomics lose low bits, and the
    interpreter has none.
    """
    g_y0 = g * (1.0 - wy1)
    g_y1 = g * wy1
    wx0 = 1.0 - wx1
    tl.atomic_add(ptr00, g_y0 * wx0, mask=mask & in_y0 & in_x0, sem="relaxed")
    tl.atomic_add(ptr00 + stride_w, g_y0 * wx1, mask=mask & in_y0 & in_x1, sem="relaxed")
    tl.atomic_add(ptr00 + stride_h, g_y1 * wx0, mask=mask & in_y1 & in_x0, sem="relaxed")
    tl.atomic_add(ptr00 + stride_h + stride_w, g_y1 * wx1, mask=mask & in_y1 & in_x1, sem="relaxed")
