"""Tensors of more than 2^31 elements on each indexing path of the GPU kernels: the CUDA
per-pixel loop (flow_warp, temporal_shift), the CUDA per-element loop's 64-bit variant
(convlstm_cell) and the Triton kernels' pixel blocks, row segments and row tiles. Element
offsets past 2^31 must not wrap: the first and the last rows or channels, whose offsets
lie on either side of 2^31, are checked against the reference on slices.

Half precision keeps each tensor at 4 GiB (the gates: 16 GiB). The cases run on one xdist
worker (``--dist loadgroup``), one after the other, each releasing its memory before the
next: at most about 24 GiB are held at once (the gates and convlstm_cell's two outputs).
"""

from __future__ import annotations

import pytest
import torch
from support import HAS_GPU, assert_matches_reference

import fused_inpaint as fi
from fused_inpaint import reference

BACKENDS = ["cuda", "triton"]
NEEDED_GIB = 40


def enough_memory() -> bool:
    return HAS_GPU and torch.cuda.get_device_properties(0).total_memory >= NEEDED_GIB * 2**30


pytestmark = [
    pytest.mark.gpu,
    pytest.mark.long,
    pytest.mark.xdist_group("large"),
    pytest.mark.skipif(not HAS_GPU, reason="no CUDA device"),
    pytest.mark.skipif(not enough_memory(), reason=f"needs {NEEDED_GIB} GiB of GPU memory"),
]


def beyond_int32(t: torch.Tensor) -> None:
    assert t.numel() > 2**31, f"{tuple(t.shape)} has only {t.numel()} elements"


@pytest.fixture(autouse=True)
def release_memory():
    yield
    torch.cuda.empty_cache()


@pytest.mark.parametrize("backend", BACKENDS)
def test_temporal_shift(backend):
    x = torch.randn(2, 4, 16, 4096, 4097, device="cuda", dtype=torch.float16)
    beyond_int32(x)
    with fi.use_backend(backend):
        out = fi.temporal_shift(x, fold_div=4)
    # The last rows of the last channel of frame (1, 3) lie past 2^31.
    for rows in (slice(0, 2), slice(-2, None)):
        expected = reference.temporal_shift(x[..., rows, :], fold_div=4)
        assert torch.equal(out[..., rows, :], expected), rows


@pytest.mark.parametrize("backend", BACKENDS)
def test_flow_warp_forward(backend):
    x = torch.randn(2, 256, 2048, 2049, device="cuda", dtype=torch.float16)
    beyond_int32(x)
    flow = torch.randn(2, 2, 2048, 2049, device="cuda") * 3
    with fi.use_backend(backend):
        out = fi.flow_warp(x, flow)
    # Channels are independent: the first of image 0, and the last of image 1, which
    # reaches past 2^31.
    for n, channels in ((0, slice(0, 2)), (1, slice(-2, None))):
        xs, fs = x[n : n + 1, channels], flow[n : n + 1]
        expected64 = reference.flow_warp(xs.double(), fs.double())
        expected_lowp = reference.flow_warp(xs, fs)
        name = f"{backend} image {n} channels {channels}"
        assert_matches_reference(out[n : n + 1, channels], expected64, expected_lowp, name)


@pytest.mark.parametrize("backend", BACKENDS)
def test_convlstm_cell_forward(backend):
    gates = torch.randn(1, 4 * 128, 4096, 4097, device="cuda", dtype=torch.float16)
    with fi.use_backend(backend):
        h_new, c_new = fi.convlstm_cell(gates)
    beyond_int32(h_new)
    # The last rows of the last channel lie past 2^31 (of the gates, far past).
    for rows in (slice(0, 2), slice(-2, None)):
        g = gates[..., rows, :]
        expected64 = reference.convlstm_cell(g.double())
        expected_lowp = reference.convlstm_cell(g)
        for name, actual, e64, elp in zip(
            ("h_new", "c_new"), (h_new, c_new), expected64, expected_lowp, strict=True
        ):
            assert_matches_reference(actual[..., rows, :], e64, elp, f"{backend} {name} {rows}")
