"""How programs map to pixels, shared by the Triton kernels."""

import triton
import triton.language as tl


@triton.jit
def row_segment(H, W, BLOCK_W: tl.constexpr):
    """This program's pixels: (n, row, col, in_row), col and in_row [BLOCK_W]; program_id(0)
    enumerates the segments of BLOCK_W columns of the N * H rows (N may fold in frames).

    A segment lies in one row, so no pixel index is ever divided and per-pixel accesses
    are contiguous along the row.
    """
    segments = tl.cdiv(W, BLOCK_W)
    image_row = tl.program_id(0) // segments
    col = (tl.program_id(0) % segments) * BLOCK_W + tl.arange(0, BLOCK_W)
    n = (image_row // H).to(tl.int64)
    row = (image_row % H).to(tl.int64)
    return n, row, col.to(tl.int64), col < W
