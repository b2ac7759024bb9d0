"""Training: losses, the clip objective, a few steps, checkpoints and resume, the config."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from support import one_error_line

from fused_inpaint import cli
from fused_inpaint.data import ClipConfig, make_clip
from fused_inpaint.models import SlimInpaintNet, load_network
from fused_inpaint.train import ClipObjective, Stage, TrainConfig, config_from_dict, train
from fused_inpaint.train.losses import masked_l1, reconstruction_losses, warping_loss
from fused_inpaint.train.trainer import (
    CHECKPOINT,
    LOG,
    WEIGHTS,
    StepBatches,
    _clip_loader,
    _load_matching,
)

TINY = TrainConfig(
    stages=(
        Stage("single", steps=3, clip_length=4, batch=2, height=24, width=32),
        Stage("recurrent", steps=2, clip_length=5, batch=1, height=24, width=32, recurrent=True),
    ),
    log_every=1,
    checkpoint_every=2,
)


def batch_of(indices, config: ClipConfig) -> dict[str, torch.Tensor]:
    clips = [make_clip(i, config) for i in indices]
    return {k: torch.stack([c[k] for c in clips]) for k in clips[0]}


def test_masked_l1_counts_only_weighted_pixels():
    prediction = torch.zeros(1, 3, 2, 2)
    target = torch.tensor([1.0, 2.0, 3.0, 4.0]).reshape(1, 1, 2, 2).expand(1, 3, 2, 2)
    weight = torch.tensor([1.0, 0.0, 0.0, 1.0]).reshape(1, 1, 2, 2)
    assert masked_l1(prediction, target, weight).item() == pytest.approx(2.5)
    hole, valid = reconstruction_losses(prediction, target, weight)
    assert (hole.item(), valid.item()) == pytest.approx((2.5, 2.5))
    assert masked_l1(prediction, target, torch.zeros_like(weight)).item() == 0


def test_warping_loss_is_zero_for_consistent_motion():
    generator = torch.Generator().manual_seed(0)
    previous = torch.rand(1, 3, 9, 12, generator=generator)
    current = torch.roll(previous, shifts=2, dims=3)  # moved 2 pixels right
    backward = torch.zeros(1, 2, 9, 12)
    backward[:, 0] = -2
    valid = torch.ones(1, 1, 9, 12)
    valid[..., :2] = 0  # came from outside the frame
    assert warping_loss(current, previous, backward, valid).item() < 1e-6
    flicker = current + 0.1 * torch.rand(current.shape, generator=generator)
    assert warping_loss(flicker, previous, backward, valid).item() > 0.02


@pytest.mark.parametrize("recurrent", [False, True])
def test_objective_losses_and_gradients(recurrent):
    torch.manual_seed(0)
    net = SlimInpaintNet(width=8)
    # As after a training step: the decoder's last layer starts at zero, stopping every gradient.
    torch.nn.init.normal_(net.to_residual.weight, std=0.1)
    objective = ClipObjective(net)
    losses = objective(batch_of([0, 1], ClipConfig(length=5, height=16, width=24)), recurrent)
    assert set(losses) == {"hole", "valid", "flow", "loss"} | ({"warp"} if recurrent else set())
    assert all(torch.isfinite(v) for v in losses.values())
    losses["loss"].backward()
    missing = [n for n, p in objective.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing


def test_a_few_steps_reduce_the_loss():
    torch.manual_seed(0)
    objective = ClipObjective(SlimInpaintNet(width=8))
    optimizer = torch.optim.Adam(objective.parameters(), lr=2e-3)
    batch = batch_of([0, 1], ClipConfig(length=4, height=16, width=16))
    history = []
    for _ in range(25):
        loss = objective(batch, recurrent=False)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        history.append(loss.item())
    assert min(history[-5:]) < 0.7 * history[0]


def test_step_batches_split_clips_between_ranks():
    ranks = [list(StepBatches(1, 3, batch=2, rank=r, world=2)) for r in range(2)]
    assert ranks == [[[4, 5], [8, 9]], [[6, 7], [10, 11]]]  # disjoint, covering 4..11


def test_training_writes_weights_log_and_checkpoint(tmp_path):
    weights = train(TINY, tmp_path / "run")
    records = [json.loads(line) for line in (tmp_path / "run" / LOG).read_text().splitlines()]
    assert [r["step"] for r in records] == list(range(1, 6))
    assert records[-1]["stage"] == "recurrent" and "warp" in records[-1]
    network = load_network(weights)
    assert network.config == SlimInpaintNet().config
    state = torch.load(tmp_path / "run" / CHECKPOINT, weights_only=True)
    assert state["step"] == 5
    torch.testing.assert_close(state["network"], network.state_dict(), rtol=0, atol=0)


def test_resume_continues_exactly(tmp_path):
    """Stopping after step 2 and resuming gives the weights of an uninterrupted run."""
    whole = load_network(train(TINY, tmp_path / "whole")).state_dict()
    assert train(TINY, tmp_path / "split", stop_at=2) is None
    assert torch.load(tmp_path / "split" / CHECKPOINT, weights_only=True)["step"] == 2
    resumed = load_network(train(TINY, tmp_path / "split", resume=True)).state_dict()
    torch.testing.assert_close(resumed, whole, rtol=0, atol=1e-6)


def test_bf16_autocast_step(tmp_path):
    config = TrainConfig(stages=(Stage("single", 1, 4, batch=1, height=16, width=16),), bf16=True)
    assert load_network(train(config, tmp_path)) is not None


def test_config_round_trip_and_unknown_keys():
    values = json.loads(TINY.to_json())
    assert config_from_dict(values) == TINY
    with pytest.raises(ValueError, match="'learning_rate'"):
        config_from_dict({"learning_rate": 1})
    with pytest.raises(ValueError, match="stages"):
        config_from_dict({"stages": [{"name": "a", "steps": 1, "clip_length": 4, "lr0": 1}]})


def test_cli_trains_stops_and_resumes(tmp_path, capsys):
    config = tmp_path / "tiny.json"
    config.write_text(TINY.to_json())
    run = tmp_path / "run"
    args = ["train", "--config", str(config), "-o", str(run), "--device", "cpu"]
    assert cli.main([*args, "--stop-at", "3"]) == 0
    assert "stopped at step 3" in capsys.readouterr().out
    assert not (run / WEIGHTS).exists()
    assert cli.main([*args, "--resume"]) == 0
    assert f"wrote {run / WEIGHTS}" in capsys.readouterr().out
    assert torch.load(run / CHECKPOINT, weights_only=True)["step"] == TINY.total_steps


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, "config file not found"),
        ('{"stages": [{"name": "a"}]}', "missing"),
        ('{"steps": 3}', "unknown training config key 'steps'"),
        ("{not json", "Expecting property name"),
    ],
)
def test_cli_train_errors_are_one_line(tmp_path, capsys, content, message):
    config = tmp_path / "config.json"
    if content is not None:
        config.write_text(content)
    assert cli.main(["train", "--config", str(config), "-o", str(tmp_path / "run")]) == 1
    assert message in one_error_line(capsys.readouterr().err)


def test_stage_motion_scales_the_data_speeds():
    config = TrainConfig(stages=(Stage("fast", steps=1, clip_length=4, motion=2.0),))
    clips = _clip_loader(config, 0, 0, rank=0, world=1).dataset.config
    assert clips.camera_speed == 2 * config.data.camera_speed
    assert clips.object_speed == 2 * config.data.object_speed


def test_torchrun_trains_with_two_processes(tmp_path):
    """DistributedDataParallel over two CPU processes (gloo), launched as the README says."""
    config = tmp_path / "tiny.json"
    config.write_text(TINY.to_json())
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
               "--nproc-per-node", "2", "-m", "fused_inpaint.cli", "train",
               "--config", str(config), "-o", str(tmp_path / "run"), "--device", "cpu"]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    with safe_open(str(tmp_path / "run" / WEIGHTS), framework="pt") as f:
        metadata = f.metadata()
    assert (metadata["world_size"], metadata["steps"]) == ("2", str(TINY.total_steps))


def test_flow_only_stage_trains_the_flow_branch_alone(tmp_path):
    stage = Stage("flow", 2, clip_length=3, batch=2, height=24, width=32, flow_only=True)
    config = TrainConfig(stages=(stage,), log_every=1)
    torch.manual_seed(config.seed)
    start = SlimInpaintNet(**dataclasses.asdict(config.network)).state_dict()
    trained = load_network(train(config, tmp_path)).state_dict()
    changed = {name for name in start if not torch.equal(start[name], trained[name])}
    flow_branch = {name for name in start if name.startswith(("flow_features.", "flow_head."))}
    assert changed == flow_branch
    record = json.loads((tmp_path / LOG).read_text().splitlines()[-1])
    assert record["stage"] == "flow" and set(record) >= {"flow", "loss"} and "hole" not in record


def test_init_loads_the_tensors_that_match(tmp_path):
    torch.manual_seed(6)
    source = SlimInpaintNet().state_dict()
    kept = {k: v for k, v in source.items() if not k.startswith("flow_head.")}
    path = tmp_path / "old.safetensors"
    save_file({**kept, "flow_head.old.weight": torch.zeros(3)}, str(path))
    fresh = SlimInpaintNet()
    before = {k: v.clone() for k, v in fresh.state_dict().items()}
    _load_matching(fresh, path)
    for name, value in fresh.state_dict().items():
        assert torch.equal(value, kept[name] if name in kept else before[name]), name

    with pytest.raises(ValueError, match="init: no weights file"):
        _load_matching(fresh, tmp_path / "absent.safetensors")
    save_file({"other": torch.zeros(2)}, str(path))
    with pytest.raises(ValueError, match="init: .* has no tensor of this network"):
        _load_matching(fresh, path)
