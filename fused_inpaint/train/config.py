"""Training configuration: a JSON file of these fields (every one optional)."""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass

from fused_inpaint.train.losses import LossWeights


@dataclass(frozen=True)
class Stage:
    """A stretch of training on clips of one shape. ``recurrent``: carry the ConvLSTM memory
    and the warped previous output across the clip's steps (else every step starts empty).
    ``motion``: a factor on the data's camera and object speeds. ``flow_only``: train the
    flow branch alone on the flow loss."""

    name: str
    steps: int
    clip_length: int
    batch: int = 4
    height: int = 64
    width: int = 64
    lr: float = 3e-4
    recurrent: bool = False
    motion: float = 1.0
    flow_only: bool = False


@dataclass(frozen=True)
class NetworkConfig:
    past: int = 2
    future: int = 1
    width: int = 32


@dataclass(frozen=True)
class DataConfig:
    """See ``fused_inpaint.data.ClipConfig``."""

    max_foreground: int = 3
    camera_speed: float = 0.06
    object_speed: float = 0.08
    object_removal: float = 0.3
    static_hole: float = 0.2


@dataclass(frozen=True)
class TrainConfig:
    network: NetworkConfig = NetworkConfig()
    data: DataConfig = DataConfig()
    losses: LossWeights = LossWeights()
    # First single windows without recurrence and memory, then longer recurrent clips.
    stages: tuple[Stage, ...] = (
        Stage("single", steps=3000, clip_length=4),
        Stage("recurrent", steps=600, clip_length=8, recurrent=True, lr=1e-4),
        # Larger frames and faster motion, nearer real footage.
        Stage("large", steps=450, clip_length=6, batch=2, height=96, width=96, lr=5e-5,
              recurrent=True, motion=2.0),
    )  # fmt: skip
    seed: int = 0
    # A weights file to start from; its tensors that the network lacks, or lacks in that
    # shape, are left out (a changed part starts fresh).
    init: str | None = None
    bf16: bool | None = None  # None: on CUDA only
    workers: int = 0  # data-loading processes per rank
    grad_clip: float = 1.0
    log_every: int = 25
    checkpoint_every: int = 200

    @property
    def total_steps(self) -> int:
        return sum(stage.steps for stage in self.stages)

    def stage_at(self, step: int) -> tuple[int, Stage, int]:
        """(index, stage, first step of the stage) for global ``step`` < total_steps."""
        first = 0
        for index, stage in enumerate(self.stages):
            if step < first + stage.steps:
                return index, stage, first
            first += stage.steps
        raise ValueError(f"step {step} is past the last stage ({self.total_steps} steps)")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2)


def config_from_dict(values: dict) -> TrainConfig:
    """A TrainConfig from plain values; unknown keys raise naming the key."""
    nested = {"network": NetworkConfig, "data": DataConfig, "losses": LossWeights}
    known = {f.name for f in dataclasses.fields(TrainConfig)}
    kwargs = {}
    for key, value in values.items():
        if key not in known:
            raise ValueError(f"unknown training config key {key!r}")
        if key in nested:
            kwargs[key] = _build(nested[key], value, key)
        elif key == "stages":
            kwargs[key] = tuple(_build(Stage, stage, "stages[]") for stage in value)
        else:
            kwargs[key] = value
    return TrainConfig(**kwargs)


def _build(cls, values: dict, where: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = set(values) - known
    if unknown:
        raise ValueError(f"unknown key(s) in training config {where}: {sorted(unknown)}")
    try:
        return cls(**values)
    except TypeError as error:  # a missing field
        raise ValueError(f"training config {where}: {error}") from None


def load_config(path: str | os.PathLike | None) -> TrainConfig:
    """The config in the JSON file at ``path``, or the default one."""
    if path is None:
        return TrainConfig()
    with open(path) as f:
        return config_from_dict(json.load(f))
