"""What a worker does with a task: a whole row, one segment of a row, or the join of a
row's segments. Plain Python: Ray runs it in actors (``cluster``), a test may call it."""

from __future__ import annotations

import glob
import secrets
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fused_inpaint import io
from fused_inpaint.batch import join, segments
from fused_inpaint.batch.manifest import Row
from fused_inpaint.batch.segments import Span
from fused_inpaint.pipeline import Inpainter
from fused_inpaint.pipeline.inpainter import chosen_device

# The options that make an Inpainter; the rest of a row's settings are its I/O's.
INPAINTER_OPTIONS = (
    "mode",
    "flow",
    "chunk",
    "overlap",
    "lookahead",
    "max_age",
    "dis_preset",
    "seams",
)


@dataclass(frozen=True)
class Task:
    """A row's work: the whole row (``span`` None and not ``join``), the segment ``index``
    with frames ``span``, written into ``parts``, or the join of ``count`` parts."""

    key: str
    row: Row
    settings: dict  # the batch's pipeline options with the row's over them
    span: Span | None = None
    index: int = 0
    parts: Path | None = None
    count: int = 0
    join: bool = False


def parts_folder(output: Path) -> Path:
    """A fresh hidden folder beside ``output`` for the parts its segments write."""
    return output.with_name(f".{output.name}.{secrets.token_hex(4)}.parts")


def _remove(paths) -> None:
    for path in paths:
        if path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)


def remove_leftovers(output: Path, parts: bool = True) -> None:
    """Removes what an attempt that did not finish left of ``output``: its partial file or
    folder, and with ``parts`` its segments' parts folders."""
    _remove(io.leftover_partials(output))
    if parts and output.parent.is_dir():
        _remove(output.parent.glob(f".{glob.escape(output.name)}.*.parts"))


class Worker:
    """Runs tasks with ``threads`` CPU threads (the network's and DIS's); the network is
    loaded once per set of pipeline options."""

    def __init__(self, weights=None, device=None, dtype=None, threads: int = 1):
        import cv2

        # Workers share the machine: each keeps to its threads, OpenCV's inside DIS too.
        torch.set_num_threads(threads)
        cv2.setNumThreads(threads)
        self.weights, self.device, self.dtype, self.threads = weights, device, dtype, threads
        self._inpainters: dict[tuple, Inpainter] = {}

    def inpainter(self, settings: dict) -> Inpainter:
        options = {name: settings[name] for name in INPAINTER_OPTIONS}
        key = tuple(options.values())
        if key not in self._inpainters:
            # A CPU worker of one thread computes DIS on it: a DIS thread of its own would
            # overlap the rest and take a second CPU, another worker's. (Beside a GPU the
            # thread mostly waits for it: there DIS keeps overlapping.)
            alone = self.threads == 1 and chosen_device(self.device).type == "cpu"
            self._inpainters[key] = Inpainter(
                self.weights, self.device, self.dtype, threads=0 if alone else self.threads,
                **options,
            )  # fmt: skip
        return self._inpainters[key]

    def run(self, task: Task, report: Callable[[int], None]) -> dict:
        """Carries out ``task``, calling ``report(frames written so far)``; returns
        {"frames", "seconds"}, or {"error": one line} when the row's inputs fail it."""
        start = time.perf_counter()
        try:
            if task.join:
                frames = self._join(task)
            else:
                frames = self._inpaint(task, report)
        except Exception as error:  # the row fails, the worker goes on with the next one
            return {"error": " ".join(str(error).split()) or type(error).__name__}
        return {"frames": frames, "seconds": time.perf_counter() - start}

    def _masks(self, task: Task, frames, first: int):
        row, settings = task.row, task.settings
        if row.boxes:  # tracked as ``fused-inpaint track`` does, on a reader of its own
            from fused_inpaint.tracking import Tracker

            dilate = {} if settings["dilate"] is None else {"dilate": settings["dilate"]}
            tracker = Tracker({row.box_frame: [list(box) for box in row.boxes]}, **dilate)
            return tracker.stream(io.open_frames(row.input))
        masks = io.Masks(row.mask, dilate=settings["dilate"] or 0, frame_size=frames.size)
        if masks.size != frames.size:
            raise io.MediaError(
                f"mask {row.mask} is {masks.size[1]}x{masks.size[0]} but the frames of "
                f"{row.input} are {frames.size[1]}x{frames.size[0]}"
            )
        return segments.masks_from(masks, row.mask, first)

    def _inpaint(self, task: Task, report: Callable[[int], None]) -> int:
        row, span = task.row, task.span
        source = io.open_frames(row.input)
        fps = task.settings["fps"] or source.fps
        first = span.first if span is not None else 0
        masks = self._masks(task, source, first)
        if span is None:
            frames, target = source, row.output
        else:
            count = span.end - first
            frames = segments.take(segments.frames_from(row.input, first), count, row.input)
            if not isinstance(masks, np.ndarray):  # per-frame masks, not one static mask
                masks = segments.take(masks, count, row.mask)
            target = task.parts / join.part_name(row.output, task.index)
            task.parts.mkdir(exist_ok=True)
        remove_leftovers(target)
        inpainted = self.inpainter(task.settings).stream(frames, masks)
        skip = span.start - first if span is not None else 0
        with io.open_writer(target, fps, overwrite=span is not None) as writer:
            for index, frame in enumerate(inpainted):
                if index < skip:  # context: made only for the frames after it
                    continue
                writer.write(frame)
                report(writer.count)
                if span is not None and writer.count == span.frames:
                    inpainted.close()  # the lookahead after the segment is not output
                    break
        return writer.count

    def _join(self, task: Task) -> int:
        parts = [task.parts / join.part_name(task.row.output, k) for k in range(task.count)]
        fps = task.settings["fps"] or io.open_frames(task.row.input).fps
        remove_leftovers(task.row.output, parts=False)
        frames = join.join(parts, task.row.output, fps)
        shutil.rmtree(task.parts, ignore_errors=True)
        return frames
