"""The ops: each module defines its schemas, then fused_inpaint._C registers its kernels."""

from fused_inpaint import _extension
from fused_inpaint.ops.convlstm_cell import convlstm_cell
from fused_inpaint.ops.fb_validity import fb_validity
from fused_inpaint.ops.flow_propagate import flow_propagate
from fused_inpaint.ops.flow_warp import flow_warp
from fused_inpaint.ops.propagation_gather import propagation_gather
from fused_inpaint.ops.temporal_shift import temporal_shift
from fused_inpaint.ops.temporal_shift_align import temporal_shift_align

__all__ = [
    "convlstm_cell",
    "fb_validity",
    "flow_propagate",
    "flow_warp",
    "propagation_gather",
    "temporal_shift",
    "temporal_shift_align",
]

_extension.load(__all__)
