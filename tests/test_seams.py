"""The gradient-domain blend of propagated pixels (``Inpainter(seams=True)``)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_pipeline import ExactFlow, inpainter, translating

from fused_inpaint.pipeline.seams import from_neighbours

MODES = [dict(mode="offline", chunk=12, overlap=4), dict(mode="stream", lookahead=6),
         dict(mode="online")]  # fmt: skip


def static_hole(length: int, h: int, w: int) -> np.ndarray:
    masks = np.zeros((length, h, w), dtype=bool)
    masks[:, 3:11, 15:27] = True  # a pixel 12 columns deep is seen 6 frames away
    return masks


def exposed(frames: np.ndarray, gains: np.ndarray) -> np.ndarray:
    scaled = frames.astype(np.float64) * gains[:, None, None, None]
    return np.clip(scaled, 0, 255).round().astype(np.uint8)


@pytest.mark.parametrize("options", MODES, ids=lambda o: o["mode"])
def test_an_exact_propagation_is_left_as_it_is(options):
    """Under constant light the known pixels next to the hole read from the sources what
    the frame shows: the blend changes nothing."""
    length, h, w, dx = 12, 14, 40, 2
    frames, forward, backward = translating(length, h, w, dx)
    masks = static_hole(length, h, w)
    plain = inpainter(flow=ExactFlow(forward, backward), max_age=6, **options)
    blended = inpainter(flow=ExactFlow(forward, backward), max_age=6, seams=True, **options)
    assert np.array_equal(blended(frames, masks), plain(frames, masks))


@pytest.mark.parametrize("options", MODES, ids=lambda o: o["mode"])
def test_a_change_of_exposure_is_carried_over_the_seam(options):
    """Frames whose gain rises from 0.6 to 1: the propagated pixels, read from frames
    under other gains, take the frame's own light; known pixels stay exact. Measured from
    frame 6, the first that online mode fills whole."""
    length, h, w, dx = 12, 14, 40, 2
    frames, forward, backward = translating(length, h, w, dx)
    gains = np.linspace(0.6, 1.0, length)  # no pixel clipped at white
    truth = exposed(frames, gains)
    masks = static_hole(length, h, w)
    outputs = {}
    for seams in (False, True):
        model = inpainter(flow=ExactFlow(forward, backward), max_age=6, seams=seams, **options)
        outputs[seams] = model(truth, masks)
        assert np.array_equal(outputs[seams][~masks], truth[~masks])
    errors = {s: np.abs(o[6:].astype(float) - truth[6:])[masks[6:]].mean()
              for s, o in outputs.items()}  # fmt: skip
    assert errors[False] > 4  # the light changed by 3 to 6% a frame: a visible seam
    assert errors[True] < 0.25 * errors[False]


def test_from_neighbours_moves_the_position_by_the_offset():
    carried = torch.zeros(1, 1, 3, 4, dtype=torch.bool)
    carried[..., 1, 1] = True
    frame = torch.full((1, 1, 3, 4), -1, dtype=torch.int32)
    frame[..., 1, 1] = 5
    pos = torch.zeros(1, 2, 3, 4)
    pos[:, :, 1, 1] = torch.tensor([10.5, 20.25])
    source, moved = from_neighbours(frame, pos, carried)
    for y, x in [(0, 0), (0, 2), (2, 1), (1, 2)]:  # every 8-neighbour of (1, 1)
        assert source[0, 0, y, x] == 5
        assert moved[0, :, y, x].tolist() == [10.5 + x - 1, 20.25 + y - 1]
