"""fused_inpaint: fused CUDA and Triton kernels for flow-guided video inpainting.

Ops (SPEC 3): ``convlstm_cell``, ``flow_warp``, ``fb_validity``, ``temporal_shift``,
``temporal_shift_align``, ``flow_propagate``, ``propagation_gather``. Backends (SPEC 4):
``set_backend``, ``use_backend``, ``get_backend``, ``available_backends``. Modules:
``fused_inpaint.nn``; drop-in replacements of the peers' composites:
``fused_inpaint.compat``. The inpainting network and its runner: ``fused_inpaint.models``,
``fused_inpaint.Inpainter``; an object's mask through a clip from a box:
``fused_inpaint.track``, ``fused_inpaint.Tracker`` (all imported on first use, so that
importing the ops stays light).
"""

import importlib

from fused_inpaint import compat, nn, reference
from fused_inpaint._backend import (
    available_backends,
    get_backend,
    set_backend,
    use_backend,
)
from fused_inpaint.ops import (
    convlstm_cell,
    fb_validity,
    flow_propagate,
    flow_warp,
    propagation_gather,
    temporal_shift,
    temporal_shift_align,
)

__version__ = "0.1.0"


def __getattr__(name: str):
    if name == "Inpainter":
        return importlib.import_module("fused_inpaint.pipeline").Inpainter
    if name in ("track", "Tracker"):
        return getattr(importlib.import_module("fused_inpaint.tracking"), name)
    if name == "models":
        return importlib.import_module("fused_inpaint.models")
    raise AttributeError(f"module 'fused_inpaint' has no attribute {name!r}")


__all__ = [
    "Inpainter",
    "Tracker",
    "available_backends",
    "compat",
    "convlstm_cell",
    "fb_validity",
    "flow_propagate",
    "flow_warp",
    "get_backend",
    "models",
    "nn",
    "propagation_gather",
    "reference",
    "set_backend",
    "temporal_shift",
    "temporal_shift_align",
    "track",
    "use_backend",
]
