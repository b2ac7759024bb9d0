"""The slim inpainting network (SPEC 5), its weights and its parts, on CPU."""

from __future__ import annotations

import warnings

import pytest
import torch
import torch.nn.functional as F

import fused_inpaint as fi
from fused_inpaint.models import DEFAULT_WEIGHTS, SlimInpaintNet, load_network, save_network
from fused_inpaint.models import weights as weights_module
from fused_inpaint.models.network import (
    FrameFeatures,
    PairFlows,
    RecurrentState,
    halved,
    smooth_fill,
)
from fused_inpaint.ops import fb_validity
from fused_inpaint.pipeline import Inpainter


def test_parameter_budget():
    assert sum(p.numel() for p in SlimInpaintNet().parameters()) <= 4_000_000


def test_weights_round_trip(tmp_path):
    torch.manual_seed(2)
    network = SlimInpaintNet(width=16)
    path = tmp_path / "weights.safetensors"
    save_network(network, path, note="test")
    loaded = load_network(path)
    assert loaded.config == network.config
    for (name, a), (_, b) in zip(
        network.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name
    with pytest.raises(FileNotFoundError, match="weights file not found"):
        load_network(tmp_path / "missing.safetensors")


def test_untrained_network_says_so(monkeypatch, tmp_path):
    monkeypatch.setattr(weights_module, "DEFAULT_WEIGHTS", tmp_path / "absent.safetensors")
    with pytest.warns(UserWarning, match="no trained weights"):
        Inpainter(device="cpu")


def test_shipped_weights_load_by_default():
    assert DEFAULT_WEIGHTS.is_file() and DEFAULT_WEIGHTS.stat().st_size <= 20 * 2**20
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        network = Inpainter(device="cpu").network
    shipped = load_network(DEFAULT_WEIGHTS)
    assert (network.width, network.fold_div) == (shipped.width, shipped.fold_div)
    for (name, a), (_, b) in zip(
        network.state_dict().items(), shipped.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_training_step_backpropagates():
    """Every parameter of the network gets a gradient through the fused ops."""
    torch.manual_seed(3)
    net = SlimInpaintNet(width=8)
    # As after a training step: the decoder's last layer starts at zero, stopping every gradient.
    torch.nn.init.normal_(net.to_residual.weight, std=0.1)
    frames = torch.rand(1, 4, 3, 16, 16) * 2 - 1
    holes = torch.zeros(1, 4, 1, 16, 16)
    holes[..., 4:9, 5:11] = 1
    features = [net.encode_frame(frames[:, i], holes[:, i]) for i in range(4)]
    pairs = [net.pair_flows(a, b) for a, b in zip(features, features[1:], strict=False)]
    state = fi.models.RecurrentState()
    loss = 0
    for _ in range(2):
        out, state = net.step(features, pairs, state)
        loss = loss + (out - frames[:, net.past]).abs().mean()
    loss.backward()
    missing = [n for n, p in net.named_parameters() if p.grad is None or not p.grad.any()]
    assert not missing, missing


def shifted_frames(dx: int, h: int = 12, w: int = 20):
    """Frames t-1, t, t+1 of a texture moving dx pixels right per frame, (1, 3, h, w) each,
    and its exact forward (t to t+1) and backward flows, (1, 2, h, w)."""
    torch.manual_seed(5)
    texture = torch.rand(1, 3, h, w + 4 * abs(dx)) * 2 - 1
    frames = [texture[..., 2 * abs(dx) - i * dx :][..., :w] for i in range(-1, 2)]
    forward = torch.zeros(1, 2, h, w)
    forward[:, 0] = dx
    return frames, forward, -forward


def test_propagation_copies_known_pixels_along_the_flow():
    net = SlimInpaintNet(past=1, future=1, width=8)
    images, forward, backward = shifted_frames(2)
    holes = [torch.zeros(1, 1, 12, 20) for _ in images]
    holes[1][..., 3:9, 5:11] = 1  # the current frame's hole
    holes[2][..., 3:9, 9:11] = 1  # the next frame hides where the hole's right part went
    frames = [
        FrameFeatures(image * (1 - hole), hole, None, None, None)
        for image, hole in zip(images, holes, strict=True)
    ]
    pairs = []
    for a, b in ((0, 1), (1, 2)):
        valid = fb_validity(forward, backward, source_mask=(holes[a], holes[b]), both=True)
        pairs.append(PairFlows(forward, backward, *valid))
    predicted = torch.full_like(images[1], 5.0)  # out of range: seen wherever it is used

    fill = net.propagate(frames, pairs, RecurrentState(), predicted)
    from_next = pairs[1].valid_forward.bool().expand_as(fill)
    assert from_next[..., 3:9, 5:7].all() and not from_next[..., 3:9, 7:9].any()
    torch.testing.assert_close(fill[from_next], images[1][from_next])
    assert (fill[~from_next] == 5).all()

    # The previous output (complete, so no holes restrict it) fills the rest: the part of
    # the hole the next frame hides, and the columns the texture has left at the right.
    fill = net.propagate(frames, pairs, RecurrentState(output=images[0]), predicted)
    torch.testing.assert_close(fill, images[1])


def test_propagation_needs_the_neighbour_to_agree_with_the_known_pixels():
    """A flow that is consistent but wrong (zero, on a moving texture) copies nothing."""
    net = SlimInpaintNet(past=1, future=1, width=8)
    images, _, _ = shifted_frames(2)
    hole = torch.zeros(1, 1, 12, 20)
    hole[..., 3:9, 5:11] = 1
    frames = [FrameFeatures(image * (1 - hole), hole, None, None, None) for image in images]
    still = torch.zeros(1, 2, 12, 20)
    ones = torch.ones(1, 1, 12, 20)
    pairs = [PairFlows(still, still, ones, ones) for _ in range(2)]
    predicted = torch.full_like(images[1], 5.0)
    fill = net.propagate(frames, pairs, RecurrentState(output=images[0]), predicted)
    assert (fill == 5).all()


def test_smooth_fill_keeps_known_pixels_and_blends_only_them():
    torch.manual_seed(4)
    image = torch.rand(2, 3, 19, 27) * 2 - 1
    hole = torch.zeros(2, 1, 19, 27)
    hole[0, :, 2:15, 3:20] = 1
    hole[1, :, :, 20:] = 1  # reaching the border
    fill = smooth_fill(image, hole)
    torch.testing.assert_close(smooth_fill(image, hole.bool()), fill, rtol=0, atol=1e-6)
    known = (hole == 0).expand_as(image)
    torch.testing.assert_close(fill[known], image[known], rtol=0, atol=1e-6)
    # Every filled pixel is a weighted mean of known ones.
    for n in range(2):
        lows = image[n][known[n]].view(3, -1).amin(1).view(3, 1, 1)
        highs = image[n][known[n]].view(3, -1).amax(1).view(3, 1, 1)
        assert (fill[n] >= lows - 1e-5).all() and (fill[n] <= highs + 1e-5).all()
    # A constant stays constant; a hole with nothing known around fills with zeros.
    flat = smooth_fill(torch.full_like(image, 0.3), hole)
    torch.testing.assert_close(flat, torch.full_like(image, 0.3))
    empty = smooth_fill(image, torch.ones_like(hole))
    assert (empty == 0).all()
    half = smooth_fill(image.half(), hole.half())
    assert half.dtype == torch.float16
    torch.testing.assert_close(half.float(), fill, rtol=0, atol=2e-3)


@pytest.mark.parametrize("size", [(1, 1), (1, 6), (5, 1), (2, 2), (7, 10), (19, 27)])
def test_halving_is_the_normalised_blur_then_the_2x2_mean(size):
    """Per axis in slices, what the pooling does: a 3x3 mean of the in-frame pixels, then
    means of 2x2 blocks (an odd last row or column alone)."""
    t = torch.rand(2, 3, *size, generator=torch.Generator().manual_seed(size[1]))
    pooled = F.avg_pool2d(F.avg_pool2d(t, 3, 1, 1, count_include_pad=False), 2, ceil_mode=True)
    torch.testing.assert_close(halved(halved(t, -2), -1), pooled, rtol=0, atol=1e-6)


def test_untrained_network_predicts_the_smooth_fill():
    """The decoder predicts a correction to smooth_fill, zero before training."""
    torch.manual_seed(6)
    net = SlimInpaintNet(past=1, future=1, width=8)
    images = torch.rand(3, 1, 3, 16, 24) * 2 - 1
    hole = torch.zeros(1, 1, 16, 24)
    hole[..., 4:11, 6:17] = 1
    frames = [net.encode_frame(image, hole) for image in images]
    pairs = [net.pair_flows(a, b) for a, b in zip(frames, frames[1:], strict=False)]
    predicted, _ = net.predict(frames, pairs, RecurrentState())
    torch.testing.assert_close(predicted, smooth_fill(frames[1].image, hole))
