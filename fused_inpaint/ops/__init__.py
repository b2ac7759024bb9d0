"""The ops: each module defines its schemas, then fused_inpaint._C registers its kernels."""

from fused_inpaint import _extension
from fused_inpaint.ops.fb_validity import fb_validity
from fused_inpaint.ops.flow_warp import flow_warp

__all__ = ["fb_validity", "flow_warp"]

_extension.load(["fb_validity", "flow_warp"])
