"""The CUDA kernels' entry points without a GPU: each checks every argument before it enters
code that nvcc compiled (csrc/cuda/register.cpp).

tools/check_cuda_compile.py links the CUDA sources against a CPU-only torch into a library
of their own and runs this file with FUSED_INPAINT_CUDA_ENTRIES naming it; without it, the
file is skipped. Each kernel is called through the dispatcher's CUDA key with CPU tensors:
a bad argument must raise RuntimeError naming it, and good arguments must stop at the
device check, so no device code runs. On a GPU, test_registered_op_rejects_bad_arguments
calls them with CUDA tensors.
"""

from __future__ import annotations

import ctypes
import os

import pytest
import torch

import fused_inpaint
from fused_inpaint import _extension

LIBRARY = os.environ.get("FUSED_INPAINT_CUDA_ENTRIES")
pytestmark = pytest.mark.skipif(
    not LIBRARY, reason="FUSED_INPAINT_CUDA_ENTRIES: set by tools/check_cuda_compile.py"
)


@pytest.fixture(scope="module")
def cuda_key():
    """The dispatch key set of the CUDA kernels, once the library has registered them."""
    if any(device == "cuda" for _, device in _extension.KERNELS):
        pytest.skip("the installed extension registers CUDA kernels of its own")
    # Lazily bound: a CPU-only torch lacks the CUDA stream call, which no check reaches.
    ctypes.CDLL(LIBRARY, mode=os.RTLD_LAZY)
    return torch._C.DispatchKeySet(torch._C.DispatchKey.CUDA)


def calls():
    """(op, args, what the error names): bad arguments of every registered CUDA kernel, then
    good ones, which only the device check refuses."""
    x, flow = torch.randn(2, 3, 5, 6), torch.randn(2, 2, 5, 6)
    hole = torch.zeros(2, 1, 5, 6, dtype=torch.uint8)
    src_frame, src_pos = torch.zeros(2, 1, 5, 6, dtype=torch.int32), torch.zeros(2, 2, 5, 6)
    frames, holes = torch.randn(2, 3, 3, 5, 6), torch.zeros(2, 3, 1, 5, 6, dtype=torch.uint8)
    x5, flow5 = torch.randn(2, 3, 8, 4, 5), torch.randn(2, 2, 2, 8, 10)
    gates, c, grad = torch.randn(2, 12, 5, 6), torch.randn(2, 3, 5, 6), torch.randn(2, 3, 5, 6)
    fb = (0.01, 0.5, True, False)
    propagate = (flow, flow, src_frame, src_pos)
    return [
        ("flow_warp", (x[0], flow, 0, 0, True), "x must have shape"),
        ("flow_warp", (x, flow[..., :4], 0, 0, True), "flow must have shape"),
        ("flow_warp", (x, flow, 7, 0, True), "mode must be"),
        ("flow_warp", (x.long(), flow.long(), 0, 0, True), "x: unsupported dtype"),
        ("flow_warp", (x, flow, 0, 0, True), "x must be a CUDA tensor"),
        ("flow_warp_backward", (x[:, :2], x, flow, 0, 0, True), "grad_out must have shape"),
        ("flow_warp_backward", (x, x, flow, 0, 9, True), "padding_mode must be"),
        ("flow_warp_backward", (x, x, flow, 0, 0, True), "x must be a CUDA tensor"),
        ("fb_validity", (flow[0], flow, None, None, *fb, None), "flow_fw must have shape"),
        ("fb_validity", (flow, flow, hole.float(), None, *fb, None), "source_mask must be uint8"),
        ("fb_validity", (flow, flow.double(), None, None, *fb, None), "flow_bw must have the"),
        ("fb_validity", (flow, flow, None, None, *fb, torch.int32), "dtype must be"),
        ("fb_validity", (flow, flow, None, None, float("nan"), 0.5, True, False, None),
         "alpha must be finite and >= 0"),
        ("fb_validity", (flow, flow, None, None, 0.01, -0.5, True, False, None),
         "beta must be finite and >= 0"),
        ("fb_validity", (flow, flow, hole, None, *fb, None), "flow_fw must be a CUDA tensor"),
        ("flow_propagate", (hole.float(), *propagate, 1, 0.01, 0.5, None), "hole must be uint8"),
        ("flow_propagate", (hole, *propagate, -1, 0.01, 0.5, None), "t must be a frame index"),
        ("flow_propagate", (hole, *propagate, 1, float("nan"), 0.5, None), "alpha must be"),
        ("flow_propagate", (hole, *propagate, 1, 0.01, 0.5, -2), "max_age must be"),
        ("flow_propagate", (hole, *propagate, 1, 0.01, 0.5, None), "flow_to must be a CUDA"),
        ("propagation_gather", (frames[:, 0], holes, src_frame, src_pos, 0), "frames must have"),
        ("propagation_gather", (frames[:, :0], holes[:, :0], src_frame, src_pos, 0),
         "frames must be a CUDA"),  # no frames: a defined result, up to the device check
        ("propagation_gather", (frames, holes[:, :1], src_frame, src_pos, 0), "holes must have"),
        ("propagation_gather", (frames, holes, src_frame, src_pos, -1), "t0 must be"),
        ("propagation_gather", (frames, holes, src_frame, src_pos, 0), "frames must be a CUDA"),
        ("temporal_shift", (x5[0], 1, False), "x must have shape"),
        ("temporal_shift", (x5, -1, False), "fold must be >= 0"),
        ("temporal_shift", (x5, 1, False), "x must be a CUDA tensor"),
        ("temporal_shift_align", (x5, flow5[:, :1], flow5, None, None, 1, False), "flow_fw must"),
        ("temporal_shift_align", (x5, flow5, flow5, None, None, -1, False), "fold must be"),
        ("temporal_shift_align", (x5[:, :0], flow5[:, :0], flow5[:, :0], None, None, 1, False),
         "x must have at least one frame"),
        ("temporal_shift_align", (x5, flow5[..., :0], flow5[..., :0], None, None, 1, False),
         "flow_fw must be at least 1x1 pixels"),
        ("temporal_shift_align", (x5[:, :1], flow5[:, :0, :, :0], flow5[:, :0, :, :0], None, None,
                                  1, False), "x must be a CUDA"),  # a flow nothing reads
        ("temporal_shift_align", (x5, flow5, flow5, None, None, 1, False), "x must be a CUDA"),
        ("temporal_shift_align_backward", (x5[:, :1], x5, flow5, flow5, None, None, 1, False, True),
         "grad_out must have shape"),
        ("temporal_shift_align_backward", (x5, x5, flow5, flow5, None, None, 1, False, True),
         "x must be a CUDA tensor"),
        ("convlstm_cell", (gates[:, :10], None), "not a multiple of 4"),
        ("convlstm_cell", (gates, c.double()), "c must have the dtype"),
        ("convlstm_cell", (gates, c), "gates must be a CUDA tensor"),
        ("convlstm_cell_backward", (grad, grad[..., :5], gates, c), "grad_c_new must have shape"),
        ("convlstm_cell_backward", (grad, grad, gates, c), "gates must be a CUDA tensor"),
    ]  # fmt: skip


def cuda_kernels() -> set[str]:
    """The ops (forward and backward) the library registered a CUDA kernel for."""
    names = {f"{op}{suffix}" for op in fused_inpaint.ops.__all__ for suffix in ("", "_backward")}
    names = {name for name in names if hasattr(torch.ops.fused_inpaint, name)}
    return {
        name for name in names
        if torch._C._dispatch_has_kernel_for_dispatch_key(f"fused_inpaint::{name}", "CUDA")
    }  # fmt: skip


def test_every_argument_is_checked_before_device_code(cuda_key):
    for name, args, message in calls():
        op = getattr(torch.ops.fused_inpaint, name).default
        with pytest.raises(RuntimeError, match=message):
            op.redispatch(cuda_key, *args)
    assert {name for name, _, _ in calls()} == cuda_kernels()
