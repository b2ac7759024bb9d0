"""The studio's inpainting job: the clip through ``Inpainter.stream`` into the result video,
a folder of lossless PNGs (downloaded as a zip) and the mask video, with a JPEG of each
frame as it is done for the page.

Outputs are written by ``fused_inpaint.io``'s writers, so each appears whole or not at
all; a job that fails or is cancelled removes its folder.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np

from fused_inpaint import io
from fused_inpaint.studio.jobs import Job
from fused_inpaint.studio.videos import Clip, jpeg

# download name -> file in the job's folder
OUTPUTS = {"video": "result.mp4", "frames": "frames.zip", "mask": "mask.mp4"}


class Inpainting:
    """Inpaints ``clip`` where ``masks`` (T, H, W) bool, grown by ``dilate`` pixels, with
    the Inpainter ``make_inpainter(mode)`` gives; writes into ``folder``. ``previews``:
    JPEG bytes of the frames done so far, in order."""

    def __init__(
        self,
        clip: Clip,
        masks: np.ndarray,
        dilate: int,
        mode: str,
        folder: Path,
        make_inpainter: Callable,
    ):
        self.clip, self.masks, self.dilate, self.mode = clip, masks, dilate, mode
        self.folder, self.make_inpainter = folder, make_inpainter
        self.previews: list[bytes] = []

    def path(self, what: str) -> Path:
        return self.folder / OUTPUTS[what]

    def download_name(self, what: str) -> str:
        stem = Path(self.clip.name).stem or "clip"
        return {"video": f"{stem}-inpainted.mp4", "frames": f"{stem}-inpainted-png.zip",
                "mask": f"{stem}-mask.mp4"}[what]  # fmt: skip

    def _frames(self, job: Job) -> Iterator[np.ndarray]:
        for frame in self.clip.frames:
            job.check_cancelled()  # also while the pipeline reads ahead of what it yields
            yield frame

    def __call__(self, job: Job) -> None:
        self.folder.mkdir(mode=0o700)
        try:
            self._run(job)
        except BaseException:
            shutil.rmtree(self.folder, ignore_errors=True)
            raise

    def _run(self, job: Job) -> None:
        inpainter = self.make_inpainter(self.mode)
        holes = []  # grown as the pipeline reads them, which is before it yields their frame

        def dilated() -> Iterator[np.ndarray]:
            for mask in self.masks:
                holes.append(io.dilate_hole(mask, self.dilate))
                yield holes[-1]

        png_folder = self.folder / "frames"
        with contextlib.ExitStack() as outputs:
            video = outputs.enter_context(io.VideoWriter(self.path("video"), self.clip.fps))
            pngs = outputs.enter_context(io.PngFolderWriter(png_folder))
            mask_video = outputs.enter_context(io.VideoWriter(self.path("mask"), self.clip.fps))
            for index, frame in enumerate(inpainter.stream(self._frames(job), dilated())):
                job.check_cancelled()
                video.write(frame)
                pngs.write(frame)
                mask_video.write(io.mask_frame(holes[index]))
                self.previews.append(jpeg(frame))
                job.advance()
        _zip_folder(png_folder, self.path("frames"))
        shutil.rmtree(png_folder)


def _zip_folder(folder: Path, path: Path) -> None:
    """The files of ``folder`` as a zip at ``path`` (stored: PNGs do not compress)."""
    partial = path.with_name(f".{path.name}.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_STORED) as archive:
        for file in sorted(folder.iterdir()):
            archive.write(file, file.name)
    os.replace(partial, path)
