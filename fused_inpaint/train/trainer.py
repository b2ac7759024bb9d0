"""The training loop: stages, checkpoints and resume, bf16 autocast, logging, and
DistributedDataParallel when launched by ``torchrun``."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import time
from contextlib import nullcontext
from pathlib import Path

import torch
import torch.distributed as dist
from safetensors.torch import load_file
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from fused_inpaint.data import ClipConfig, SyntheticClips
from fused_inpaint.models import SlimInpaintNet, save_network
from fused_inpaint.train.config import TrainConfig
from fused_inpaint.train.objective import ClipObjective

CHECKPOINT = "checkpoint.pt"
WEIGHTS = "weights.safetensors"
LOG = "log.jsonl"


class StepBatches:
    """Clip indices of each training step for one rank: step s of a stage reads clips
    ((s * world + rank) * batch + i), so a resumed run sees exactly the same data."""

    def __init__(self, first: int, last: int, batch: int, rank: int, world: int):
        self.first, self.last, self.batch, self.rank, self.world = first, last, batch, rank, world

    def __iter__(self):
        for step in range(self.first, self.last):
            start = (step * self.world + self.rank) * self.batch
            yield list(range(start, start + self.batch))

    def __len__(self) -> int:
        return self.last - self.first


def _distributed() -> tuple[int, int, int]:
    """(rank, local rank, world size) from torchrun's environment, (0, 0, 1) without it."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world == 1:
        return 0, 0, 1
    return int(os.environ["RANK"]), int(os.environ["LOCAL_RANK"]), world


def learning_rate(base: float, progress: float) -> float:
    """Cosine decay from ``base`` to base / 10 over a stage (progress in [0, 1])."""
    return base * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def _save_atomic(payload, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    torch.save(payload, tmp)
    os.replace(tmp, path)


def _clip_loader(config: TrainConfig, index: int, first: int, rank: int, world: int):
    stage, data = config.stages[index], config.data
    data = dataclasses.replace(
        data, camera_speed=data.camera_speed * stage.motion,
        object_speed=data.object_speed * stage.motion,
    )  # fmt: skip
    clips = ClipConfig(
        length=stage.clip_length, height=stage.height, width=stage.width,
        seed=config.seed * 1000 + index, **dataclasses.asdict(data),
    )  # fmt: skip
    batches = StepBatches(first, stage.steps, stage.batch, rank, world)
    return torch.utils.data.DataLoader(
        SyntheticClips(clips), batch_sampler=batches, num_workers=config.workers
    )


def _load_matching(net: SlimInpaintNet, path: str | os.PathLike) -> None:
    """Loads the tensors of the weights file at ``path`` that ``net`` has in that shape."""
    if not Path(path).is_file():
        raise ValueError(f"init: no weights file at {path}")
    own = net.state_dict()
    tensors = load_file(str(path))
    matching = {k: v for k, v in tensors.items() if k in own and own[k].shape == v.shape}
    if not matching:
        raise ValueError(f"init: {path} has no tensor of this network")
    net.load_state_dict(matching, strict=False)


def _setup(device) -> tuple[torch.device, int, int]:
    """(device, rank, world size); joins torchrun's process group when there is one."""
    rank, local_rank, world = _distributed()
    if device is None:
        device = f"cuda:{local_rank}" if torch.cuda.is_available() else "cpu"
    device = torch.device(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    if world > 1:
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return device, rank, world


def _log(output: Path, step: int, stage, lr: float, losses: dict, seconds: float) -> dict:
    record = {"step": step, "stage": stage.name, "lr": lr}
    record |= {k: round(v.item(), 5) for k, v in losses.items()}
    record["seconds_per_step"] = round(seconds, 4)
    with open(output / LOG, "a") as log:
        log.write(json.dumps(record) + "\n")
    return record


def train(
    config: TrainConfig,
    output: str | os.PathLike,
    device: str | torch.device | None = None,
    resume: bool = False,
    stop_at: int | None = None,
) -> Path | None:
    """Trains from scratch (or from ``output``'s checkpoint when ``resume``), writing the
    checkpoint, a JSON-lines log and finally the weights into ``output``; returns the
    weights' path. ``stop_at``: checkpoint and return None at that step (a run split over
    several sittings; resume to go on)."""
    device, rank, world = _setup(device)
    main = rank == 0
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    net = SlimInpaintNet(**dataclasses.asdict(config.network))
    objective = ClipObjective(net, config.losses).to(device)
    # A flow-only stage leaves the inpainting path without gradients.
    unused = any(stage.flow_only for stage in config.stages)
    model = (
        DistributedDataParallel(objective, find_unused_parameters=unused) if world > 1
        else objective
    )  # fmt: skip
    optimizer = torch.optim.AdamW(net.parameters(), lr=config.stages[0].lr, weight_decay=1e-4)
    step, wall = 0, 0.0
    checkpoint = output / CHECKPOINT
    if resume and checkpoint.exists():
        state = torch.load(checkpoint, map_location=device, weights_only=True)
        net.load_state_dict(state["network"])
        optimizer.load_state_dict(state["optimizer"])
        step, wall = state["step"], state["wall_seconds"]
    else:
        if config.init is not None:
            _load_matching(net, config.init)
        if main:
            (output / LOG).unlink(missing_ok=True)
    if main:
        (output / "config.json").write_text(config.to_json())

    bf16 = device.type == "cuda" if config.bf16 is None else config.bf16
    autocast = torch.autocast(device.type, torch.bfloat16) if bf16 else nullcontext()
    progress = tqdm(total=config.total_steps, initial=step, disable=not main, unit="step")
    last = config.total_steps if stop_at is None else min(stop_at, config.total_steps)
    while step < last:
        index, stage, first = config.stage_at(step)
        started, resumed_at = time.perf_counter(), step
        for batch in _clip_loader(config, index, step - first, rank, world):
            batch = {k: v.to(device, non_blocking=True) for k, v in batch.items()}
            lr = learning_rate(stage.lr, (step - first) / stage.steps)
            for group in optimizer.param_groups:
                group["lr"] = lr
            with autocast:
                losses = model(batch, stage.recurrent, stage.flow_only)
            optimizer.zero_grad(set_to_none=True)
            losses["loss"].backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            progress.update()
            elapsed = time.perf_counter() - started
            at_end = step in (first + stage.steps, last)
            if main and (step % config.log_every == 0 or at_end):
                record = _log(output, step, stage, lr, losses, elapsed / (step - resumed_at))
                progress.set_postfix(loss=record["loss"], stage=stage.name)
            if main and (step % config.checkpoint_every == 0 or at_end):
                _save_atomic(
                    {"network": net.state_dict(), "optimizer": optimizer.state_dict(),
                     "step": step, "wall_seconds": wall + elapsed, "config": config.to_json()},
                    checkpoint,
                )  # fmt: skip
            if step == last:
                break
        wall += time.perf_counter() - started
    progress.close()
    finished = step >= config.total_steps
    if finished and main:
        save_network(
            net, output / WEIGHTS, steps=str(step), wall_seconds=f"{wall:.0f}",
            device=str(device), world_size=str(world), train_config=config.to_json(),
        )  # fmt: skip
    if world > 1:
        dist.destroy_process_group()
    return output / WEIGHTS if finished else None
