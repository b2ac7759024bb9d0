"""Float math for Triton kernels, rounded like the CPU kernels'.

On a GPU Triton's float32 ``/`` is an approximate division and ``tl.exp`` an approximate
base-2 exponential of ``v * log2(e)``: results a few ulps (tens, for exp of large
arguments) from the CPU's. Where a test asserts exact or few-ulp agreement (the taps of a
nearest-mode tie, the convlstm gradients) the kernels use these instead. Float64 goes
through ``/`` and ``tl.exp``, which are precise for it. Everything here also runs under
TRITON_INTERPRET=1.
"""

import triton
import triton.language as tl

# exp_nonpositive's constants, those of csrc/common/convlstm_cell.h.
EXP_LOWEST: tl.constexpr = tl.constexpr(-87.0)  # exp(-87) ~ 1.6e-38: below, 0
EXP_ROUND: tl.constexpr = tl.constexpr(12582912.0)  # 1.5 * 2^23: adding it rounds to an int
EXP_ROUND_BITS: tl.constexpr = tl.constexpr(0x4B400000)  # EXP_ROUND's float32 bits
LOG2E: tl.constexpr = tl.constexpr(1.44269504088896341)
LN2_HIGH: tl.constexpr = tl.constexpr(0.693359375)  # ln2 in 9 bits: n * LN2_HIGH is exact
LN2_LOW: tl.constexpr = tl.constexpr(-2.12194440054690583e-4)  # ln2 - LN2_HIGH


@triton.jit
def divide(a, b):
    """a / b, rounded to nearest."""
    if b.dtype == tl.float32:
        return tl.math.div_rn(a, b)
    else:
        return a / b


@triton.jit
def exp_nonpositive(v):
    """exp(v) for v <= 0, within two ulps, by the CPU kernel's float32 algorithm:
    v = n ln2 + r with |r| <= ln2 / 2, exp(r) by its Taylor series to degree 7, 2^n written
    into the exponent bits. Below EXP_LOWEST it is 0; NaN passes through."""
    if v.dtype == tl.float64:
        return tl.exp(v)
    else:
        underflow = v < EXP_LOWEST
        v = tl.where(underflow, EXP_LOWEST, v)
        shifted = v * LOG2E + EXP_ROUND
        n = shifted - EXP_ROUND
        r = (v - n * LN2_HIGH) - n * LN2_LOW
        p = r * (1.0 / 5040.0) + 1.0 / 720.0
        p = p * r + 1.0 / 120.0
        p = p * r + 1.0 / 24.0
        p = p * r + 1.0 / 6.0
        p = p * r + 0.5
        p = p * r + 1.0
        p = p * r + 1.0
        # n + 127 lies in [1, 127], so the shift stays within int32.
        exponent = shifted.to(tl.int32, bitcast=True) - EXP_ROUND_BITS + 127
        scale = (exponent << 23).to(tl.float32, bitcast=True)  # 2^n
        return tl.where(underflow, 0.0, p * scale)
