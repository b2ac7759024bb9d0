"""``fused-inpaint track`` and ``run --box``, end to end on a small clip of moving squares."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from support import one_error_line
from test_tracking import iou, squares_clip

from fused_inpaint import io
from fused_inpaint.cli import main

LENGTH = 8
BOX = "18,38,28,28"  # around the square at (20, 40), 24 pixels


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("track")
    frames, masks = squares_clip(LENGTH, [lambda t: (20 + 3 * t, 40)])
    folder = root / "frames"
    folder.mkdir()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{t}.png")
    video = root / "clip.mp4"
    with io.VideoWriter(video, 10) as writer:
        for frame in frames:
            writer.write(frame)
    seed = root / "seed.png"
    Image.fromarray(masks[0, 0].view(np.uint8) * 255).save(seed)
    return {"frames": frames, "mask": masks[0], "folder": folder, "video": video, "seed": seed}


def test_track_writes_masks_that_run_reads(clip, tmp_path, capsys):
    out = tmp_path / "masks"
    assert main(["track", str(clip["folder"]), "--box", BOX, "--dilate", "0", "-o", str(out)]) == 0
    said = capsys.readouterr().out
    assert f"wrote {LENGTH} masks" in said and "no mask" not in said
    masks = np.stack(list(io.Masks(out).per_frame()))
    assert masks.shape == clip["mask"].shape
    assert iou(masks, clip["mask"]) > 0.85
    video = tmp_path / "masks.mp4"
    assert main(["track", str(clip["video"]), "--seed", str(clip["seed"]), "-o", str(video)]) == 0
    from_video = np.stack(list(io.Masks(video).per_frame()))
    assert len(from_video) == LENGTH and (from_video >= clip["mask"]).mean() > 0.99


def test_run_box_tracks_then_inpaints(clip, tmp_path):
    out = tmp_path / "out"
    assert main(["run", str(clip["folder"]), "--box", BOX, "-o", str(out)]) == 0
    names = sorted(p.name for p in out.iterdir())
    assert names == [f"{t:05d}.png" for t in range(LENGTH)]
    result = np.stack([np.asarray(Image.open(out / name)) for name in names])
    far = np.ones(clip["mask"].shape, bool)
    far[:, 20:80, :] = False  # the rows the square and its grown mask can reach
    assert (result[far] == clip["frames"][far]).all()  # outside the mask: exact
    assert (result[clip["mask"]] != clip["frames"][clip["mask"]]).any()  # the square filled


@pytest.mark.parametrize("command", ["track", "run"])
def test_the_frames_left_without_a_mask_are_named(command, tmp_path, capsys):
    # The square goes out over the right edge: the last of it is on frame 7 of 12.
    frames, masks = squares_clip(12, [lambda t: (100 + 8 * t, 40)])
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{t}.png")
    assert masks[0, 7].any() and not masks[0, 8:].any()
    assert main([command, str(folder), "--box", "98,38,28,28", "-o", str(tmp_path / "out")]) == 0
    assert "no mask on frames 8-11: the object went out of the frame" in capsys.readouterr().out


@pytest.mark.parametrize("command", ["track", "run"])
def test_an_object_marked_again_where_it_comes_back_is_tracked_there(command, tmp_path, capsys):
    """The square goes out over the right edge (its last pixels on frame 7) and comes back
    on frame 13: marked on frame 0 and again on frame 15 (--box X,Y,W,H@15), every frame
    it is on gets its mask, from the nearer keyframe."""

    def x(t: int) -> int:
        return 100 + 8 * t if t < 12 else 160 - 6 * (t - 12)

    frames, masks = squares_clip(20, [lambda t: (x(t), 40)])
    folder = tmp_path / "frames"
    folder.mkdir()
    for t, frame in enumerate(frames):
        Image.fromarray(frame).save(folder / f"{t}.png")
    assert not masks[0, 8:13].any() and masks[0, 13:].any(axis=(1, 2)).all()
    out = tmp_path / "out"
    again = f"{x(15) - 2},38,28,28@15"
    args = [command, str(folder), "--box", "98,38,28,28", "--box", again, "-o", str(out)]
    assert main([*args, "--dilate", "0"] if command == "track" else args) == 0
    said = capsys.readouterr().out
    assert "no mask on frames 8-12: the object went out of the frame" in said
    assert "--box X,Y,W,H@K" in said
    if command == "track":
        tracked = np.stack(list(io.Masks(out).per_frame()))
        assert iou(tracked[13:], masks[0, 13:]) > 0.85
        assert iou(tracked[:8], masks[0, :8]) > 0.85


@pytest.mark.parametrize(
    "args, message",
    [
        (["--box", f"{BOX}@{LENGTH}"], f"--box {BOX}@{LENGTH}: frame {LENGTH} is past the end"),
        (["--box", "10,10,0,5"], "is empty"),
        (["--box", "900,10,10,10"], "lies outside the frame"),
        (["--box", "10,10,10"], "give X,Y,W,H as four integers"),
        (["--box", BOX, "--frame", str(LENGTH)], f"--frame {LENGTH} is past the end"),
        (["--seed", "missing.png"], "no such image file"),
    ],
)
@pytest.mark.parametrize("command", ["track", "run"])
def test_bad_boxes_are_one_line_errors_and_leave_nothing(
    clip, tmp_path, capsys, command, args, message
):
    if command == "run" and args[0] == "--seed":
        pytest.skip("run takes boxes only")
    out = tmp_path / "out"
    assert main([command, str(clip["video"]), *args, "-o", str(out)]) == 1
    assert message in one_error_line(capsys.readouterr().err)
    assert list(tmp_path.iterdir()) == []


def test_box_and_mask_are_exclusive(clip, tmp_path, capsys):
    mask = tmp_path / "mask.png"
    Image.fromarray(clip["mask"][0].view(np.uint8) * 255).save(mask)
    args = ["run", str(clip["folder"]), "--box", BOX, "--mask", str(mask), "-o", "x"]
    assert main(args) == 2
    assert "not allowed with argument" in capsys.readouterr().err


def test_eval_object_removal_writes_its_report(tmp_path, capsys):
    pytest.importorskip("skimage")
    report = tmp_path / "object_removal.md"
    args = ["eval", "--object-removal", "--seeds", "0", "--frames", "4", "--dilate", "0", "2"]
    assert main([*args, "-o", str(report)]) == 0
    text = report.read_text()
    assert "# Object removal from a box" in text
    assert "| 0 | mean |" in text and "| 2 | mean |" in text
    assert f"wrote {report}" in capsys.readouterr().out
    limbed = tmp_path / "limbed.md"
    assert main([*args[:-1], "--shape", "limbed", "-o", str(limbed)]) == 0
    assert "objects of shape limbed" in limbed.read_text()
    laid = tmp_path / "footage.md"
    footage = ["--footage", "--clips", "carphone_pristine", "-o", str(laid)]
    assert main([*args[:-1], *footage]) == 0
    text = laid.read_text()
    assert "laid on each of carphone_pristine (176x144, 4 frames)" in text
    assert "| 0 | carphone_pristine 0 |" in text
