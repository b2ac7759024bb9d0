"""Training on synthetic clips with exact flow (``fused-inpaint train``)."""

from fused_inpaint.train.config import Stage, TrainConfig, config_from_dict, load_config
from fused_inpaint.train.losses import LossWeights
from fused_inpaint.train.objective import ClipObjective
from fused_inpaint.train.trainer import train

__all__ = [
    "ClipObjective",
    "LossWeights",
    "Stage",
    "TrainConfig",
    "config_from_dict",
    "load_config",
    "train",
]
