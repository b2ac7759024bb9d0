"""The batch command's parts that need no Ray: manifests, segment plans, segments equal to
one run frame for frame, seeking into a video, joining parts."""

from __future__ import annotations

import sys
import threading
from itertools import pairwise
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image

from fused_inpaint import demo, io
from fused_inpaint.batch import ManifestError, Row, join, read_manifest, rows_from_folders
from fused_inpaint.batch.segments import Span, frames_from, plan, video_timestamps
from fused_inpaint.batch.worker import Task, Worker
from fused_inpaint.cli import main
from fused_inpaint.pipeline import inpainter as inpainting
from fused_inpaint.pipeline import steady

WIDTH = 48
SETTINGS = dict(mode="offline", flow="dis", chunk=12, overlap=4, lookahead=3, max_age=5,
                dis_preset="ultrafast", dilate=0, fps=None, seams=False)  # fmt: skip


def generated(count: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    frames = np.ascontiguousarray(demo.generated_clip(count, WIDTH, seed=seed).frames)
    return frames, demo.moving_mask(count, frames.shape[1:3])


def write_video(path: Path, frames: np.ndarray, fps: int = 25) -> Path:
    with io.VideoWriter(path, fps) as writer:
        for frame in frames:
            writer.write(frame)
    return path


def write_pngs(folder: Path, images) -> Path:
    folder.mkdir()
    for t, image in enumerate(images):
        Image.fromarray(image).save(folder / f"{t:03d}.png")
    return folder


def keyframes(path: Path) -> list[int]:
    """The indices, in decoding order, of a video's keyframe packets."""
    with av.open(str(path)) as container:
        packets = [p for p in container.demux(container.streams.video[0]) if p.size]
    return [i for i, packet in enumerate(packets) if packet.is_keyframe]


def frames_of(path: Path) -> np.ndarray:
    return np.stack(list(io.open_frames(path)))


@pytest.mark.parametrize(
    "mode, count, length",
    [("offline", 130, 40), ("offline", 130, 50), ("stream", 30, 7), ("online", 21, 5),
     ("offline", 20, 40)],
)  # fmt: skip
def test_plan_covers_the_clip_on_block_boundaries_with_context(mode, count, length):
    schedule = inpainting.schedule(mode, 60, 20, 8, 30)
    spans = plan(count, length, schedule)
    assert spans[0].start == 0 and spans[-1].stop == count
    for before, after in pairwise(spans):
        assert before.stop == after.start
    for span in spans:
        assert span.start % schedule.block == 0 and span.first % schedule.block == 0
        # The context: as far as a value is carried and as many frames as the fill averages.
        assert span.first <= max(span.start - schedule.max_age - steady.FRAMES + 1, 0)
        assert span.end == min(span.stop + schedule.lookahead, count)
    if count <= length:
        assert spans == [Span(0, count, 0, count)]


@pytest.fixture(scope="module")
def long_clip(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("long")
    frames, holes = generated(44, seed=3)
    paths = {"frames": frames, "video": write_video(root / "clip.mp4", frames)}
    paths["masks"] = write_pngs(root / "masks", holes.astype(np.uint8) * 255)
    return paths


def run_spans(worker: Worker, clip: dict, spans: list[Span], settings: dict, out: Path) -> int:
    """Each span as a segment task, then their join into ``out``; returns its frames."""
    row = Row(clip["video"], out, clip["masks"])
    parts = out.with_name(f".{out.name}.test.parts")
    for index, span in enumerate(spans):
        result = worker.run(Task(f"{index}", row, settings, span, index, parts), lambda n: None)
        assert result["frames"] == span.frames, result
    joined = worker.run(Task("join", row, settings, parts=parts, count=len(spans), join=True), len)
    assert not parts.exists()
    return joined["frames"]


@pytest.mark.parametrize(
    "mode, length", [("offline", 16), ("offline", 9), ("stream", 10), ("online", 7)]
)
def test_segments_equal_one_run_frame_for_frame(long_clip, tmp_path, mode, length):
    settings = dict(SETTINGS, mode=mode)
    worker = Worker(threads=1)
    whole = Row(long_clip["video"], tmp_path / "whole", long_clip["masks"])
    assert worker.run(Task("whole", whole, settings), lambda n: None)["frames"] == 44
    schedule = inpainting.schedule(mode, 12, 4, 3, 5)
    spans = plan(44, length, schedule)
    assert len(spans) >= 3
    assert run_spans(worker, long_clip, spans, settings, tmp_path / "split") == 44
    expected = frames_of(tmp_path / "whole")
    np.testing.assert_array_equal(frames_of(tmp_path / "split"), expected)

    # Without the context before it, a segment's frames are not the run's: the context
    # above is what makes them equal.
    cut = [Span(s.start, s.stop, s.start, s.end) for s in spans]
    run_spans(worker, long_clip, cut, settings, tmp_path / "cut")
    assert not np.array_equal(frames_of(tmp_path / "cut"), expected)


@pytest.mark.parametrize("threads, pooled", [(1, False), (2, True)])
def test_a_cpu_worker_of_one_thread_computes_dis_on_it(long_clip, tmp_path, threads, pooled):
    # A DIS thread beside the worker's would take a second CPU, another worker's.
    seen = set()

    def report(frames: int) -> None:
        seen.update(t.name for t in threading.enumerate())

    row = Row(long_clip["video"], tmp_path / "out", long_clip["masks"])
    worker = Worker(device="cpu", threads=threads)
    assert worker.run(Task("row", row, SETTINGS), report)["frames"] == 44
    assert any(name.startswith("fused-inpaint-dis") for name in seen) == pooled


def test_frames_from_seeks_to_the_frame_decoding_from_start_gives(long_clip):
    decoded = frames_of(long_clip["video"])
    assert len(video_timestamps(long_clip["video"])) == len(decoded)
    for first in (0, 1, 13, 43):
        np.testing.assert_array_equal(np.stack(list(frames_from(long_clip["video"], first))),
                                      decoded[first:])  # fmt: skip


@pytest.mark.parametrize("extension", [".mp4", ".mov", ".webm", ".mkv", ".avi", ""])
def test_join_makes_one_output_of_the_parts(tmp_path, extension):
    frames, _ = generated(23)
    bounds = [(0, 8), (8, 16), (16, 23)]
    parts = []
    for index, (a, b) in enumerate(bounds):
        part = tmp_path / join.part_name(tmp_path / f"out{extension}", index)
        with io.open_writer(part, 10) as writer:
            for frame in frames[a:b]:
                writer.write(frame)
        parts.append(part)
    out = tmp_path / f"out{extension}"
    assert join.join(parts, out, 10) == 23
    joined = frames_of(out)
    if extension:
        assert io.open_frames(out).fps == 10 and len(joined) == 23
        stamps = video_timestamps(out)
        assert stamps == sorted(set(stamps)) and len(stamps) == 23
        assert np.abs(joined.astype(int) - frames).mean() < 4
        # Packets copied: each part's own encode, starting on a keyframe; PNG parts are
        # encoded once, as the whole clip (x264's threads make two encodes of the same
        # frames differ under load, so the count of keyframes tells them apart).
        once = extension not in join.REMUX_EXTENSIONS
        assert keyframes(out) == ([0] if once else [a for a, _ in bounds])
    else:
        np.testing.assert_array_equal(joined, frames)
        assert sorted(p.name for p in out.iterdir()) == [f"{t:05d}.png" for t in range(23)]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


def test_manifests_csv_and_json_lines(tmp_path):
    (tmp_path / "rows.csv").write_text(
        "input,mask,box,output,mode,max_age,fps\n"
        "a.mp4,a_masks,,out/a.mp4,stream,12,\n"
        'b,,"1,2,30,40;5,6,7,8",out/b,,,29.97\n'
    )
    a, b = read_manifest(tmp_path / "rows.csv")
    assert (a.input, a.mask, a.output) == (tmp_path / "a.mp4", tmp_path / "a_masks",
                                           tmp_path / "out/a.mp4")  # fmt: skip
    assert a.options == {"mode": "stream", "max_age": 12} and a.boxes == ()
    assert b.boxes == ((1, 2, 30, 40), (5, 6, 7, 8)) and b.options == {"fps": 29.97}
    (tmp_path / "rows.jsonl").write_text(
        '{"input": "a.mp4", "mask": "m.png", "output": "o.mp4", "dilate": 3}\n\n'
        '{"input": "b", "box": [1, 2, 3, 4], "box_frame": 5, "output": "o"}\n'
    )
    a, b = read_manifest(tmp_path / "rows.jsonl")
    assert a.options == {"dilate": 3} and a.mask == tmp_path / "m.png"
    assert b.boxes == ((1, 2, 3, 4),) and b.box_frame == 5


@pytest.mark.parametrize(
    "text, message",
    [
        ("input,output,mask,colour\na,b,c,red\n", "rows.csv:2: unknown column 'colour'"),
        ('input,output,mask,box\na,b,c,"1,2,3,4"\n', "rows.csv:2: give a mask or a box"),
        ("input,output\na,b\n", "rows.csv:2: give a mask or a box"),
        ("input,mask\na,b\n", "rows.csv:2: no output"),
        ("input,output,mask,mode\na,b,c,fast\n", "mode must be one of offline, stream, online"),
        ("input,output,mask,chunk\na,b,c,1.5\n", "rows.csv:2: chunk must be int"),
        ("input,output,mask,fps\na,b,c,0\n", "rows.csv:2: fps must be between 0.001 and"),
        ("input,output,mask,fps\na,b,c,1e300\n", "rows.csv:2: fps must be between 0.001 and"),
        ('input,output,box\na,b,"1,2,0,4"\n', "box must be x,y,w,h with w, h > 0"),
        ("input,output,mask\na,o,m\nb,o,m\n", "rows 1 and 2 both write"),
        ("input,output,mask\na,a,m\n", "row 1 writes"),
        ("input,output,mask\n", "has no rows"),
    ],
)
def test_manifest_errors_name_the_line(tmp_path, text, message):
    (tmp_path / "rows.csv").write_text(text)
    with pytest.raises(ManifestError, match=message.replace("(", r"\(")):
        read_manifest(tmp_path / "rows.csv")


def test_folders_matched_by_name(tmp_path):
    videos, masks = tmp_path / "videos", tmp_path / "masks"
    for name in ("b.mp4", "a.mov", "c.mp4", "notes.txt"):
        (videos / name).parent.mkdir(exist_ok=True)
        (videos / name).touch()
    (videos / "frames").mkdir()
    for name in ("a.png", "b.mp4", "frames"):
        (masks / name).parent.mkdir(exist_ok=True)
        (masks / name).mkdir() if name == "frames" else (masks / name).touch()
    rows = rows_from_folders(videos, masks, tmp_path / "out", "")
    assert [(r.input.name, r.mask and r.mask.name, r.output.name) for r in rows] == [
        ("a.mov", "a.png", "a"), ("b.mp4", "b.mp4", "b"), ("c.mp4", None, "c"),
        ("frames", "frames", "frames"),
    ]  # fmt: skip
    assert rows[2].problem == f"no mask named c in {masks}"


def test_without_ray_the_command_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    (tmp_path / "rows.csv").write_text("input,output,mask\na.mp4,o.mp4,m.png\n")
    monkeypatch.setitem(sys.modules, "ray", None)
    monkeypatch.delitem(sys.modules, "fused_inpaint.batch.cluster", raising=False)
    assert main(["batch", str(tmp_path / "rows.csv")]) == 1
    assert 'pip install "fused_inpaint[batch]"' in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rows.csv"]


def test_usage_errors(tmp_path, capsys):
    assert main(["batch"]) == 1
    assert "give a MANIFEST or --videos" in capsys.readouterr().err
    assert main(["batch", "--videos", str(tmp_path)]) == 1
    assert "--videos needs --masks" in capsys.readouterr().err
    assert main(["batch", str(tmp_path / "missing.csv")]) == 1
    assert "cannot read manifest" in capsys.readouterr().err
