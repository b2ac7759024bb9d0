"""``fused-inpaint batch`` on an embedded Ray limited to 2 CPUs: outputs equal ``run``'s,
a long clip in segments equals one run frame for frame, a killed worker's row is run
again, bad rows fail alone, a second run skips everything."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from fused_inpaint import demo, io
from fused_inpaint.cli import main

ray = pytest.importorskip("ray")
pytestmark = pytest.mark.ray

SHORT, LONG, WIDTH = 10, 100, 64


@pytest.fixture(scope="module", autouse=True)
def ray_instance():
    """One Ray for the module: starting it takes seconds."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def write_clip(root: Path, name: str, count: int, seed: int, kind: str = "video") -> np.ndarray:
    """A generated clip as name.mp4 or a frame folder ``name``, its moving masks as a
    folder name_masks, a video name_masks.mp4 and an image name_mask.png (frame 0's)."""
    frames = np.ascontiguousarray(demo.generated_clip(count, WIDTH, seed=seed).frames)
    holes = demo.moving_mask(count, frames.shape[1:3])
    if kind == "video":
        with io.VideoWriter(root / f"{name}.mp4", 25) as writer:
            for frame in frames:
                writer.write(frame)
    else:
        (root / name).mkdir()
        for t, frame in enumerate(frames):
            Image.fromarray(frame).save(root / name / f"{t:03d}.png")
    (root / f"{name}_masks").mkdir()
    for t, hole in enumerate(holes):
        Image.fromarray(hole.astype(np.uint8) * 255).save(root / f"{name}_masks" / f"{t:03d}.png")
    with io.VideoWriter(root / f"{name}_masks.mp4", 25) as writer:
        for hole in holes:
            writer.write(np.repeat(hole[..., None] * np.uint8(255), 3, axis=2))
    Image.fromarray(holes[0].astype(np.uint8) * 255).save(root / f"{name}_mask.png")
    return frames


@pytest.fixture(scope="module")
def clips(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("clips")
    write_clip(root, "a", SHORT, 1)
    write_clip(root, "b", SHORT, 2, kind="folder")
    write_clip(root, "c", SHORT, 3)
    write_clip(root, "long", LONG, 4)
    return root


def frames_of(path: Path) -> np.ndarray:
    return np.stack(list(io.open_frames(path)))


def run_reference(clips: Path, tmp: Path, name: str, mask: str, *options) -> np.ndarray:
    """The frames ``fused-inpaint run`` writes for ``name`` (PNG: exactly); ``mask`` None:
    the ``options`` say what to remove (--box)."""
    out = tmp / f"run-{name}-{len(list(tmp.iterdir()))}"
    holes = ["--mask", str(clips / mask)] if mask else []
    assert main(["run", str(clips / name), *holes, "-o", str(out), *options]) == 0
    return frames_of(out)


def assert_encoded_from(video: Path, frames: np.ndarray) -> None:
    """``video`` is an encode of ``frames``: every frame, in order, each as close as one
    encode gets. (libx264 on several threads is not bit-reproducible from run to run, so
    two encodes of the same frames need not decode the same.)"""
    error = np.abs(frames_of(video).astype(int) - frames).mean(axis=(1, 2, 3))
    assert error.shape == (len(frames),) and error.max() < 4


def batch(*args) -> int:
    return main(["batch", *map(str, args)])


def summary_of(path: Path) -> dict:
    return json.loads(path.read_text())


def no_partials(folder: Path) -> bool:
    return not [p for p in folder.iterdir() if p.name.startswith(".")]


def test_manifest_rows_equal_run_and_a_second_run_skips_them(clips, tmp_path, capsys):
    out = tmp_path / "out"
    out.mkdir()
    manifest = tmp_path / "rows.csv"
    manifest.write_text(
        "input,mask,box,output,mode\n"
        f"{clips}/a.mp4,{clips}/a_masks,,out/a,\n"
        f"{clips}/b,{clips}/b_mask.png,,out/b,stream\n"
        f"{clips}/c.mp4,{clips}/c_masks.mp4,,out/c.mkv,\n"
        f'{clips}/a.mp4,,"20,12,16,12",out/a_box,online\n'
    )
    assert batch(manifest, "--workers", 2) == 0
    report = summary_of(tmp_path / "rows.csv.summary.json")
    assert (report["done"], report["skipped"], report["failed"]) == (4, 0, 0)
    assert [row["frames"] for row in report["rows"]] == [SHORT] * 4
    reference = tmp_path / "reference"
    reference.mkdir()
    np.testing.assert_array_equal(
        frames_of(out / "a"), run_reference(clips, reference, "a.mp4", "a_masks")
    )
    np.testing.assert_array_equal(
        frames_of(out / "b"), run_reference(clips, reference, "b", "b_mask.png", "--mode", "stream")
    )
    assert_encoded_from(out / "c.mkv", run_reference(clips, reference, "c.mp4", "c_masks.mp4"))
    np.testing.assert_array_equal(
        frames_of(out / "a_box"),
        run_reference(clips, reference, "a.mp4", None, "--box", "20,12,16,12", "--mode", "online"),
    )
    assert no_partials(out)

    stamps = {p: p.stat().st_mtime_ns for p in out.iterdir()}
    capsys.readouterr()
    assert batch(manifest) == 0
    assert "0 done, 4 skipped, 0 failed" in capsys.readouterr().out
    assert summary_of(tmp_path / "rows.csv.summary.json")["skipped"] == 4
    assert {p: p.stat().st_mtime_ns for p in out.iterdir()} == stamps


def test_long_clip_in_segments_equals_one_run(clips, tmp_path):
    manifest = tmp_path / "rows.jsonl"
    rows = [{"input": str(clips / "long.mp4"), "mask": str(clips / "long_masks.mp4"),
             "output": f"long{ext}"} for ext in ("", ".mp4")]  # fmt: skip
    manifest.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert batch(manifest, "--segment", 40, "--summary", tmp_path / "s.json") == 0
    report = summary_of(tmp_path / "s.json")
    assert [(row["status"], row["segments"]) for row in report["rows"]] == [("done", 3)] * 2
    expected = run_reference(clips, tmp_path, "long.mp4", "long_masks.mp4")
    np.testing.assert_array_equal(frames_of(tmp_path / "long"), expected)
    assert io.open_frames(tmp_path / "long.mp4").fps == 25
    assert_encoded_from(tmp_path / "long.mp4", expected)  # joined by copying packets
    assert no_partials(tmp_path)


def test_a_killed_worker_has_its_row_run_again(clips, tmp_path):
    from fused_inpaint.batch import Row, cluster, summary

    rows = [Row(clips / "long.mp4", tmp_path / "long", clips / "long_masks"),
            Row(clips / "a.mp4", tmp_path / "a", clips / "a_masks")]  # fmt: skip
    killed = []

    def kill_once(frames: dict, starts: dict) -> None:
        # Its first frame is reported at once; 99 are left to write (seconds of work).
        if not killed and frames.get("0", 0) >= 1:
            killed.append(starts["0"][-1])
            os.kill(starts["0"][-1], signal.SIGKILL)

    settings = dict(mode="offline", flow="dis", chunk=60, overlap=20, lookahead=8, max_age=30,
                    dis_preset="medium", dilate=0, fps=None, seams=False)  # fmt: skip
    run = cluster.Batch(rows, settings, workers=2, retries=1, progress_bar=False, watch=kill_once)
    outcomes = run.run()
    assert killed, "the worker was never seen writing"
    lines = summary(outcomes, 1.0)["rows"]
    assert [line["status"] for line in lines] == ["done", "done"]
    assert lines[0]["retries"] == 1 and "retries" not in lines[1]
    np.testing.assert_array_equal(
        frames_of(tmp_path / "long"), run_reference(clips, tmp_path, "long.mp4", "long_masks")
    )
    assert len(frames_of(tmp_path / "a")) == SHORT
    assert no_partials(tmp_path)


def test_a_corrupt_video_and_a_missing_mask_fail_their_rows_only(clips, tmp_path, capsys):
    videos, masks, out = tmp_path / "videos", tmp_path / "masks", tmp_path / "out"
    videos.mkdir()
    masks.mkdir()
    (videos / "good.mp4").write_bytes((clips / "a.mp4").read_bytes())
    (videos / "corrupt.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 8)
    (videos / "unmasked.mp4").write_bytes((clips / "c.mp4").read_bytes())
    for name in ("good", "corrupt"):
        (masks / f"{name}.png").write_bytes((clips / "a_mask.png").read_bytes())
    # Three workers of 1 CPU on 2 CPUs: the third never starts, and takes no row.
    assert batch("--videos", videos, "--masks", masks, "-o", out, "--workers", 3) == 1
    report = summary_of(out / "summary.json")
    status = {Path(row["input"]).name: row for row in report["rows"]}
    assert status["good.mp4"]["status"] == "done" and status["good.mp4"]["frames"] == SHORT
    assert status["corrupt.mp4"]["status"] == "failed"
    assert "corrupt.mp4" in status["corrupt.mp4"]["reason"]
    assert status["unmasked.mp4"]["status"] == "failed"
    assert status["unmasked.mp4"]["reason"] == f"no mask named unmasked in {masks}"
    assert sorted(p.name for p in out.iterdir()) == ["good.mp4", "summary.json"]
    assert "failed: " in capsys.readouterr().err


def test_an_interrupted_batch_keeps_finished_outputs_and_no_partial_ones(clips, tmp_path):
    from fused_inpaint.batch import Row, cluster

    rows = [Row(clips / "a.mp4", tmp_path / "a.mp4", clips / "a_masks"),
            Row(clips / "long.mp4", tmp_path / "long.mp4", clips / "long_masks.mp4")]  # fmt: skip
    interrupted = []

    def interrupt(frames: dict, starts: dict) -> None:  # Ctrl-C, in the second row
        if not interrupted and frames.get("1/0", 0) >= 2:
            interrupted.append(True)
            raise KeyboardInterrupt

    settings = dict(mode="offline", flow="dis", chunk=60, overlap=20, lookahead=8, max_age=30,
                    dis_preset="medium", dilate=0, fps=None, seams=False)  # fmt: skip
    run = cluster.Batch(rows, settings, workers=1, segment=40, progress_bar=False, watch=interrupt)
    with pytest.raises(KeyboardInterrupt):
        run.run()
    assert [(o.status, o.reason) for o in run.outcomes] == [
        ("done", None),
        ("failed", "interrupted"),
    ]
    assert len(frames_of(tmp_path / "a.mp4")) == SHORT
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp4"]
