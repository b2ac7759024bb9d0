"""Video inpainting: flow sources, propagation, the network's fill, and ``Inpainter``.

Stages, each in its module: ``flow`` (optical flow between adjacent frames, completed in
the hole), ``propagation`` (the sweeps that carry real pixels across the clip),
``filler`` (the network on what no frame shows), ``inpainter`` (modes and I/O).
"""

from fused_inpaint.pipeline.flow import SOURCES, FlowSource, FrameInput, resolved
from fused_inpaint.pipeline.inpainter import MODES, Inpainter

__all__ = ["MODES", "SOURCES", "FlowSource", "FrameInput", "Inpainter", "resolved"]
