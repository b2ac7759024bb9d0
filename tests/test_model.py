"""The slim inpainting network and the Inpainter API (SPEC 5), on CPU."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from torch._dynamo.utils import counters

import fused_inpaint as fi
from fused_inpaint.models import DEFAULT_WEIGHTS, SlimInpaintNet, load_network, save_network
from fused_inpaint.models import weights as weights_module
from fused_inpaint.models.network import FrameFeatures, PairFlows, RecurrentState, smooth_fill
from fused_inpaint.ops import fb_validity
from fused_inpaint.pipeline import Inpainter


def make_clip(t: int, h: int, w: int, seed: int = 0):
    """Frames (T, H, W, 3) uint8 and masks (T, H, W) bool with a moving hole."""
    rng = np.random.default_rng(seed)
    frames = rng.integers(0, 256, (t, h, w, 3), dtype=np.uint8)
    masks = np.zeros((t, h, w), dtype=bool)
    for i in range(t):
        top, left = 2 + i % max(1, h - 8), 3 + (2 * i) % max(1, w - 10)
        masks[i, top : top + 5, left : left + 7] = True
    return frames, masks


@pytest.fixture(scope="module")
def inpainter():
    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return Inpainter(device="cpu")


def test_parameter_budget():
    assert sum(p.numel() for p in SlimInpaintNet().parameters()) <= 4_000_000


@pytest.mark.parametrize("size", [(17, 23), (24, 32), (9, 41)])
def test_any_size_and_exact_known_pixels(inpainter, size):
    frames, masks = make_clip(4, *size)
    out = inpainter(frames, masks)
    assert out.shape == frames.shape and out.dtype == np.uint8
    assert np.array_equal(out[~masks], frames[~masks])
    assert not np.array_equal(out[masks], frames[masks])  # the holes were filled


def test_streaming_equals_whole_clip_and_static_mask(inpainter):
    frames, masks = make_clip(6, 16, 24)
    whole = inpainter(frames, masks)
    streamed = np.stack(list(inpainter.stream(iter(frames), iter(masks))))
    assert np.array_equal(whole, streamed)
    static = inpainter(frames, masks[0])
    assert np.array_equal(static, inpainter(frames, np.broadcast_to(masks[0], masks.shape)))
    torch_frames = inpainter(torch.from_numpy(frames), torch.from_numpy(masks))
    assert np.array_equal(torch_frames, whole)


def test_streaming_latency_is_the_future_window(inpainter):
    frames, masks = make_clip(7, 16, 16)
    read = []

    def source():
        for i, frame in enumerate(frames):
            read.append(i)
            yield frame

    for index, _ in enumerate(inpainter.stream(source(), masks)):
        future = inpainter.window[1]
        assert len(read) <= index + future + 1  # bounded latency, bounded memory
    assert index == len(frames) - 1


def test_read_only_and_flipped_frames(inpainter):
    frames, masks = make_clip(3, 16, 24)
    expected = inpainter(frames, masks)
    read_only = np.frombuffer(frames.tobytes(), dtype=np.uint8).reshape(frames.shape)
    flipped = frames[..., ::-1].copy()[..., ::-1]  # the same values, negative strides
    with warnings.catch_warnings():
        warnings.filterwarnings("error", message=".*not writable")
        assert np.array_equal(inpainter(read_only, masks), expected)
    assert np.array_equal(inpainter(flipped, masks), expected)


def compiled_copy(inpainter: Inpainter) -> Inpainter:
    """An Inpainter with ``compile=True`` and the same device, dtype, window and weights."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        compiled = Inpainter(
            device=inpainter.device, dtype=inpainter.dtype, window=inpainter.window, compile=True
        )
    compiled.network.load_state_dict(inpainter.network.state_dict())
    return compiled


def test_compiled_matches_eager(inpainter):
    """The per-frame work through torch.compile: inductor alone on CPU (no CUDA graphs)."""
    torch.compiler.reset()
    compiled = compiled_copy(inpainter)
    frames, masks = make_clip(3, 24, 32)
    graphs = counters["stats"]["unique_graphs"]
    whole = compiled(frames, masks)
    streamed = np.stack(list(compiled.stream(iter(frames), iter(masks))))
    # The encoder, the flows, the first step (no memory yet) and every later step; the
    # second clip compiles nothing more.
    assert counters["stats"]["unique_graphs"] - graphs == 4
    assert np.array_equal(whole, streamed)
    assert np.abs(whole.astype(int) - inpainter(frames, masks)).max() <= 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_graphs_match_eager():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # float32: inductor's fused kernels round float16 differently from eager's
        eager = Inpainter(device="cuda", dtype=torch.float32)
    graphed = compiled_copy(eager)
    frames, masks = make_clip(6, 48, 64)
    expected = eager(frames, masks).astype(int)
    skips = counters["inductor"]["cudagraph_skips"]
    for _ in range(3):  # warm-up, recording, then replays of the recorded graphs
        out = graphed(frames, masks)
        assert np.array_equal(out[~masks], frames[~masks])
        assert np.abs(out - expected).max() <= 2
    assert counters["inductor"]["cudagraph_skips"] == skips  # every graph ran as a CUDA graph


@pytest.mark.parametrize("window", [(0, 0), (0, 1), (1, 0), (3, 2)])
def test_windows(window):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inpainter = Inpainter(device="cpu", window=window)
    frames, masks = make_clip(3, 16, 16)
    out = inpainter(frames, masks)
    assert out.shape == frames.shape and np.array_equal(out[~masks], frames[~masks])


def test_backends_agree():
    frames, masks = make_clip(3, 16, 24)
    torch.manual_seed(1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        inpainter = Inpainter(device="cpu")
    outputs = {}
    backends = [b for b, s in fi.available_backends().items() if s.available and b != "cuda"]
    for backend in backends:
        with fi.use_backend(backend):
            outputs[backend] = inpainter(frames, masks).astype(int)
    for backend, out in outputs.items():
        # uint8 outputs of float32 networks: at most one level apart.
        assert np.abs(out - outputs["torch"]).max() <= 1, backend


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
    assert network.config == shipped.config
    for (name, a), (_, b) in zip(
        network.state_dict().items(), shipped.state_dict().items(), strict=True
    ):
        assert torch.equal(a, b), name


def test_bad_inputs_are_named(inpainter):
    frames, masks = make_clip(3, 16, 16)
    with pytest.raises(ValueError, match="frame 0 must be uint8"):
        inpainter(frames.astype(np.float32), masks)
    with pytest.raises(ValueError, match="mask 0 must have the frames' size"):
        inpainter(frames, masks[:, :8])
    with pytest.raises(ValueError, match="fewer masks than frames"):
        inpainter(frames, masks[:2])
    with pytest.raises(ValueError, match="more masks than frames"):
        inpainter(frames[:2], masks)
    with pytest.raises(ValueError, match="frame 1 has size"):
        inpainter([frames[0], frames[1, :8]], masks[0])
    with pytest.raises(ValueError, match="dtype must be"):
        Inpainter(device="cpu", dtype=torch.float64)


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
