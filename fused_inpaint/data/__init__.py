"""Synthetic training video with exact flow, made from real still images."""

from fused_inpaint.data.clips import (
    OBJECT_SHAPES,
    ClipConfig,
    ObjectRemovalClip,
    SyntheticClips,
    make_clip,
    object_removal_clip,
)
from fused_inpaint.data.layers import Layer, flow_between, render
from fused_inpaint.data.masks import dilate, moving_holes
from fused_inpaint.data.stills import default_stills
from fused_inpaint.data.walking import WalkingClip, walking_figure_clip

__all__ = [
    "OBJECT_SHAPES",
    "ClipConfig",
    "Layer",
    "ObjectRemovalClip",
    "SyntheticClips",
    "WalkingClip",
    "default_stills",
    "dilate",
    "flow_between",
    "make_clip",
    "moving_holes",
    "object_removal_clip",
    "render",
    "walking_figure_clip",
]
