"""The synthetic clip generator: exact flow, occlusion, holes, determinism."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from fused_inpaint.data import ClipConfig, Layer, flow_between, make_clip, moving_holes, render
from fused_inpaint.data.masks import blob
from fused_inpaint.data.motion import similarity, translation
from fused_inpaint.ops import flow_warp


def translating(image, alpha, start, velocity, length) -> Layer:
    paths = torch.stack([translation(*(np.add(start, np.multiply(velocity, t))))
                         for t in range(length)])  # fmt: skip
    return Layer(image, alpha, paths)


def smooth_stills(count: int, seed: int = 0) -> list[torch.Tensor]:
    """Low-frequency images, on which bilinear resampling twice barely differs from once."""
    generator = torch.Generator().manual_seed(seed)
    coarse = torch.rand(count, 3, 6, 6, generator=generator)
    return list(F.interpolate(coarse, size=(128, 128), mode="bicubic").clamp(0, 1))


def masked_mean(error: torch.Tensor, valid: torch.Tensor) -> float:
    return float((error * valid).sum() / (valid.sum() * error.shape[-3]))


def test_integer_motion_warps_back_exactly():
    """Integer translations keep every sample on a pixel, so the flow must reproduce the
    previous frame exactly wherever it is marked valid, and occlusions must be found."""
    length, height, width = 4, 24, 31
    generator = torch.Generator().manual_seed(1)
    background = translating(
        torch.rand(3, 40, 50, generator=generator), torch.ones(40, 50), (-10, -4), (2, -1), length
    )
    disc = blob(12, np.random.default_rng(0))
    foreground = translating(torch.rand(3, 12, 12, generator=generator), disc, (4, 6), (3, 2),
                             length)  # fmt: skip
    layers = [background, foreground]
    frames, owner = render(layers, height, width)
    assert set(owner.unique().tolist()) == {0, 1}
    for t in range(length - 1):
        forward, valid_forward = flow_between(layers, owner, t, t + 1)
        backward, valid_backward = flow_between(layers, owner, t + 1, t)
        assert torch.equal(forward.unique(), torch.tensor([-1.0, 2.0, 3.0]))
        for source, target, flow, valid in (
            (t, t + 1, forward, valid_forward),
            (t + 1, t, backward, valid_backward),
        ):
            warped = flow_warp(frames[target][None], flow[None])[0]
            error = (warped - frames[source]).abs().amax(0)
            assert 0.5 < valid.float().mean() < 1
            torch.testing.assert_close(
                error[valid], torch.zeros_like(error[valid]), atol=1e-6, rtol=0
            )
            # Pixels the foreground uncovers or covers: invalid, and mostly wrong if used.
            ys, xs = torch.meshgrid(torch.arange(height), torch.arange(width), indexing="ij")
            x, y = xs + flow[0], ys + flow[1]
            in_frame = (x >= 0) & (x <= width - 1) & (y >= 0) & (y <= height - 1)
            occluded = ~valid & in_frame
            assert occluded.any()
            assert (error[occluded] > 1e-3).float().mean() > 0.5


def test_homography_flow_matches_closed_form():
    """A layer rotating about a point: the forward flow is that rotation applied to x."""
    angle, centre = 0.1, (7.0, 5.0)
    paths = torch.stack([
        translation(*centre) @ similarity(angle * t, 1.0) @ translation(-centre[0], -centre[1])
        for t in range(2)
    ])  # fmt: skip
    layers = [Layer(torch.zeros(3, 16, 16), torch.ones(16, 16), paths)]
    _, owner = render(layers, 11, 14)
    flow, _ = flow_between(layers, owner, 0, 1)
    ys, xs = torch.meshgrid(torch.arange(11.0), torch.arange(14.0), indexing="ij")
    dx, dy = xs - centre[0], ys - centre[1]
    expected_x = centre[0] + math.cos(angle) * dx - math.sin(angle) * dy - xs
    expected_y = centre[1] + math.sin(angle) * dx + math.cos(angle) * dy - ys
    torch.testing.assert_close(flow, torch.stack([expected_x, expected_y]), atol=1e-5, rtol=0)


@pytest.mark.parametrize("index", range(4))
def test_random_clip_flow_is_exact(index):
    """On smooth stills, warping frame t+1 by the forward flow (t by the backward flow)
    reproduces frame t (t+1) where not occluded, far better than assuming no motion."""
    config = ClipConfig(length=4, height=40, width=56, camera_speed=0.1, object_speed=0.12)
    clip = make_clip(index, config, smooth_stills(6, seed=index))
    target = clip["target"]
    for name, source, destination in (("forward", target[:-1], target[1:]),
                                      ("backward", target[1:], target[:-1])):  # fmt: skip
        flow, valid = clip[f"flow_{name}"], clip[f"valid_{name}"]
        assert flow.abs().amax() > 0.5  # the clip does move
        warped = flow_warp(destination, flow)
        aligned = masked_mean((warped - source).abs(), valid)
        unaligned = masked_mean((destination - source).abs(), valid)
        assert aligned < 2e-3
        assert aligned < unaligned / 5


def test_clip_shapes_ranges_and_determinism():
    config = ClipConfig(length=5, height=33, width=47)
    clip = make_clip(3, config)
    shapes = {
        "frames": (5, 3, 33, 47), "target": (5, 3, 33, 47), "holes": (5, 1, 33, 47),
        "flow_forward": (4, 2, 33, 47), "flow_backward": (4, 2, 33, 47),
        "valid_forward": (4, 1, 33, 47), "valid_backward": (4, 1, 33, 47),
    }  # fmt: skip
    assert {k: tuple(v.shape) for k, v in clip.items()} == shapes
    for name in ("frames", "target", "holes", "valid_forward", "valid_backward"):
        assert clip[name].dtype == torch.float32
        assert 0 <= clip[name].min() and clip[name].max() <= 1
    assert torch.isfinite(clip["flow_forward"]).all()
    assert set(clip["holes"].unique().tolist()) == {0.0, 1.0}
    again = make_clip(3, config)
    assert all(torch.equal(clip[k], again[k]) for k in clip)
    other = make_clip(4, config)
    assert not torch.equal(clip["target"], other["target"])


@pytest.mark.parametrize("index", range(3))
def test_object_removal_hides_the_object_in_the_hole(index):
    """The filmed frames show an object the ground truth does not, only inside the hole."""
    config = ClipConfig(length=3, height=36, width=36, object_removal=1.0)
    clip = make_clip(index, config)
    outside = 1 - clip["holes"]
    assert torch.equal(clip["frames"] * outside, clip["target"] * outside)
    assert not torch.equal(clip["frames"], clip["target"])


def test_moving_and_static_holes():
    moving = moving_holes(6, 48, 64, seed=5)
    assert torch.equal(moving, moving_holes(6, 48, 64, seed=5))
    assert moving.dtype == torch.bool and moving.shape == (6, 48, 64)
    area = moving.float().mean(dim=(1, 2))
    assert (area > 0.01).all() and (area < 0.6).all()
    assert not torch.equal(moving[0], moving[-1])
    static = moving_holes(6, 48, 64, seed=5, moving=False)
    assert all(torch.equal(static[0], frame) for frame in static)


def test_limbed_objects_have_thin_limbs_and_a_shape_is_checked():
    from fused_inpaint.data import object_removal_clip
    from fused_inpaint.data.masks import limbed

    rng = np.random.default_rng(0)
    alpha = limbed(101, rng) > 0
    # The limbs reach out from a body half the canvas across, and are much narrower.
    assert alpha[:, :22].any() or alpha[:, -22:].any() or alpha[:22].any() or alpha[-22:].any()
    body = F.max_pool2d(-F.max_pool2d(-torch.tensor(alpha)[None, None].float(), 11, 1, 5), 11, 1, 5)
    assert 0 < (alpha & ~body[0, 0].bool().numpy()).sum() < 0.5 * alpha.sum()
    clip = object_removal_clip(0, 3, 64, 96, shape="limbed")
    assert clip.mask.any(axis=(1, 2)).all() and clip.frames.shape == (3, 64, 96, 3)
    with pytest.raises(ValueError, match="shape"):
        object_removal_clip(0, 3, 64, 96, shape="star")


def test_object_side_sets_the_objects_size_and_is_checked():
    from fused_inpaint.data import object_removal_clip

    default = object_removal_clip(3, 2, 64, 96)
    np.testing.assert_array_equal(
        default.frames, object_removal_clip(3, 2, 64, 96, object_side=(0.25, 0.6)).frames
    )
    areas = {
        side: np.mean([object_removal_clip(seed, 2, 64, 96, object_side=(side, side)).mask[0].sum()
                       for seed in range(4)])
        for side in (0.3, 0.9)
    }  # fmt: skip
    # The object fills about half of a canvas of side * 64 pixels a side.
    assert 0.25 * (0.3 * 64) ** 2 < areas[0.3] < (0.3 * 64) ** 2
    assert areas[0.9] > 6 * areas[0.3]
    for bad in [(0.0, 0.5), (0.6, 0.3), (-1, 1)]:
        with pytest.raises(ValueError, match="object_side"):
            object_removal_clip(0, 2, 64, 96, object_side=bad)


def test_an_object_laid_on_footage_is_its_mask_over_the_footage_and_footage_is_checked():
    from fused_inpaint.data import object_removal_clip

    rng = np.random.default_rng(0)
    footage = rng.integers(0, 256, (4, 50, 70, 3), dtype=np.uint8)
    clip = object_removal_clip(2, 60, 240, 432, footage=footage)  # length and size: footage's
    assert clip.frames.shape == footage.shape and clip.mask.shape == (4, 50, 70)
    np.testing.assert_array_equal(clip.background, footage)
    np.testing.assert_array_equal(clip.frames[~clip.mask], footage[~clip.mask])
    # The object is drawn from a photo over the noise: nearly all of its pixels differ.
    assert clip.mask.any(axis=(1, 2)).all()
    assert (clip.frames != footage).any(axis=3)[clip.mask].mean() > 0.9
    x, y, w, h = clip.box
    assert clip.mask[0, y : y + h, x : x + w].sum() == clip.mask[0].sum()
    np.testing.assert_array_equal(clip.mask, object_removal_clip(2, footage=footage).mask)
    for bad in [footage[0], footage.astype(np.float32), footage[..., :2]]:
        with pytest.raises(ValueError, match="footage"):
            object_removal_clip(0, footage=bad)


def test_a_walking_figure_plants_one_leg_while_the_other_swings():
    from fused_inpaint.data import walking_figure_clip

    clip = walking_figure_clip(3, 12, 120, 216)
    assert clip.frames.shape == (12, 120, 216, 3) and clip.frames.dtype == np.uint8
    np.testing.assert_array_equal(clip.frames[~clip.mask], clip.background[~clip.mask])
    assert (clip.legs <= clip.mask).all() and clip.legs[0].any()
    x, y, w, h = clip.box
    ys, xs = np.nonzero(clip.mask[0])
    assert (x, y, x + w - 1, y + h - 1) == (xs.min(), ys.min(), xs.max(), ys.max())
    # On frames 1-3 the back leg swings, twice as fast as the torso (0.007 of 216 pixels
    # a frame), past the front one, which stays where it was, as the background does.
    legs = [np.flatnonzero(leg.any(axis=0)) for leg in clip.legs]
    torso = [np.flatnonzero((clip.mask[t] & ~clip.legs[t]).any(axis=0)) for t in range(12)]
    assert torso[2][0] - torso[1][0] == torso[3][0] - torso[2][0] == 2
    assert legs[2][0] - legs[1][0] == 4 and legs[2][-1] == legs[1][-1]
    assert legs[3][-1] > legs[2][-1]  # past the planted leg, now in front
    np.testing.assert_array_equal(walking_figure_clip(3, 12, 120, 216).frames, clip.frames)
