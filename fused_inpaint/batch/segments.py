"""Long videos cut into segments that come out exactly as in one uninterrupted run.

A run outputs its frames in blocks of ``schedule.block`` frames from the clip's first
frame; a block's backward sweep starts ``schedule.lookahead`` frames after it, and the
forward sweep carries a value at most ``max_age`` frames; what no frame shows is
averaged with the fills of the last ``steady.FRAMES`` frames. So a segment [start, stop)
whose start is a multiple of the block, run on the frames from ``first`` (the block
boundary at or before ``start - max_age - steady.FRAMES + 1``) to ``end`` (``stop +
lookahead``), outputs frames start..stop-1 exactly as the whole run does: its blocks are
the run's blocks, and no value that reaches them comes from before ``first`` (it would be
too old).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np

from fused_inpaint import io
from fused_inpaint.pipeline import steady
from fused_inpaint.pipeline.propagation import Schedule

# Packets read past a frame before its presentation time is known: more than any
# encoder's reordering of B-frames.
REORDER_DEPTH = 64


@dataclass(frozen=True)
class Span:
    """Frames [start, stop) of a clip made by one worker from frames [first, end)."""

    start: int
    stop: int
    first: int
    end: int

    @property
    def frames(self) -> int:
        return self.stop - self.start


def segment_length(requested: int, schedule: Schedule) -> int:
    """``requested`` rounded up to a whole number of the schedule's blocks."""
    return -(-requested // schedule.block) * schedule.block


def plan(count: int, length: int, schedule: Schedule) -> list[Span]:
    """The spans of a clip of ``count`` frames in segments of ``length`` frames (rounded
    up to whole blocks); one span when the clip is not longer than that."""
    length = segment_length(max(length, 1), schedule)
    spans = []
    for start in range(0, count, length):
        stop = min(start + length, count)
        context = schedule.max_age + steady.FRAMES - 1
        first = max(start - context, 0) // schedule.block * schedule.block
        spans.append(Span(start, stop, first, min(stop + schedule.lookahead, count)))
    return spans


def video_timestamps(path: Path, count: int | None = None) -> list[int]:
    """The presentation timestamps of a video's frames in order, from its packets (no
    decoding); only the first ``count`` when given."""
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stamps = []
            for packet in container.demux(stream):
                if packet.size and packet.pts is not None:
                    stamps.append(packet.pts)
                if count is not None and len(stamps) >= count + REORDER_DEPTH:
                    break
    except (av.FFmpegError, IndexError) as error:
        raise io.MediaError(f"cannot read video {path}: {error}") from None
    stamps.sort()
    return stamps if count is None else stamps[:count]


def frame_count(path: Path) -> int:
    """The exact number of frames of a video file or frame folder."""
    source = io.open_frames(path)
    return source.count if source.count is not None else len(video_timestamps(path))


def _video_from(path: Path, first: int) -> Iterator[np.ndarray]:
    """A video's frames from frame ``first`` on: a seek to the keyframe before it, then
    the frames before it decoded and dropped. Where the seek does not land at or before
    the frame (frames without times, an index that misleads), it decodes from the start."""
    stamps = video_timestamps(path, first + 1) if first else []
    if first and len(stamps) <= first:
        raise io.MediaError(f"cannot read video {path}: it has no frame {first}")
    if first:
        target, found = stamps[first], False
        try:
            with av.open(str(path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                container.seek(target, stream=stream, backward=True)
                for frame in container.decode(stream):
                    if frame.pts is None or (not found and frame.pts > target):
                        break  # the frame itself was not decoded: from the start instead
                    if frame.pts == target:
                        found = True
                    if found:
                        yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as error:
            raise io.MediaError(f"cannot decode video {path}: {error}") from None
        if found:
            return
    yield from itertools.islice(io.VideoReader(path), first, None)


def frames_from(path: Path, first: int) -> Iterator[np.ndarray]:
    """The frames (H, W, 3) uint8 of a video file or frame folder from frame ``first``."""
    source = io.open_frames(path)
    if isinstance(source, io.FrameFolder):
        return (io.read_rgb(p) for p in source.files[first:])
    return _video_from(path, first)


def masks_from(masks: io.Masks, path: Path, first: int):
    """What ``Inpainter.stream`` takes as masks from frame ``first``: the static mask, or
    the dilated (H, W) bool per-frame masks from that frame."""
    if masks.static is not None:
        return masks.static
    if masks.count is not None:  # a folder
        holes = (io.read_hole(p) for p in io.list_images(path)[first:])
    else:
        holes = map(masks.video_hole, _video_from(path, first))
    return (io.dilate_hole(hole, masks.dilate) for hole in holes)


def mask_count(path: Path) -> int | None:
    """The number of masks of a mask folder or video; None for one image (every frame's)."""
    masks = io.Masks(path)
    if masks.static is not None:
        return None
    return masks.count if masks.count is not None else len(video_timestamps(path))


def take(frames, count: int, path: Path) -> Iterator:
    """The first ``count`` of ``frames`` (those of ``path``); fewer is an error."""
    taken = 0
    for frame in itertools.islice(frames, count):
        taken += 1
        yield frame
    if taken < count:
        raise io.MediaError(f"{path} ends {count - taken} frames before it was counted to")
