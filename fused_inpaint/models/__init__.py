"""The slim real-time inpainting network."""

from fused_inpaint.models.network import (
    SIZE_MULTIPLE,
    FrameFeatures,
    PairFlows,
    RecurrentState,
    SlimInpaintNet,
)
from fused_inpaint.models.weights import DEFAULT_WEIGHTS, load_network, save_network

__all__ = [
    "DEFAULT_WEIGHTS",
    "FrameFeatures",
    "PairFlows",
    "RecurrentState",
    "SIZE_MULTIPLE",
    "SlimInpaintNet",
    "load_network",
    "save_network",
]
