"""Reading and writing videos, frame folders and masks, one frame at a time.

Frames are uint8 (H, W, 3) RGB numpy arrays, masks (H, W) bool with True = hole. Nothing
here holds more than one frame, so a clip of any length streams through in bounded memory.

Inputs: a video file (anything FFmpeg decodes, through PyAV) or a folder of images (sorted
by name, numbers in names compared as numbers). Masks: one image (the same mask for every
frame), a folder of images, or a video. A mask image's pixel is a hole where any channel is
nonzero; a mask video is lossy-compressed, so there a hole is a level above 127.

Outputs are atomic: frames go to a temporary name beside the destination, which is renamed
into place only when the last frame is written, and removed on any failure. An existing
output is replaced only when the writer is told to ``overwrite`` it.

Live sources (a URL such as rtsp://, udp://, tcp://, srt://, http(s)://, or a capture
device such as /dev/video0) are read as frames arrive, each with its timestamp
(``LiveReader``); live outputs (a URL, or "-" for standard output) are written as frames
come (``StreamWriter``).
"""

from __future__ import annotations

import glob
import itertools
import os
import re
import secrets
import shutil
import stat
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
# extension -> (container format, codec, codec options). WebM cannot hold H.264: VP9 there.
VIDEO_FORMATS = {
    ".mp4": ("mp4", "libx264", {"crf": "18"}),
    ".mkv": ("matroska", "libx264", {"crf": "18"}),
    ".mov": ("mov", "libx264", {"crf": "18"}),
    ".avi": ("avi", "libx264", {"crf": "18"}),
    ".webm": ("webm", "libvpx-vp9", {"crf": "24", "b": "0"}),
}
VIDEO_EXTENSIONS = tuple(VIDEO_FORMATS)
DEFAULT_FPS = Fraction(25)
# The frame rates a video written here can hold: mp4's time scale breaks past 50000 (the
# frames decode as none), and a rate under 1/1000 rounds to 0 in 1001ths.
MIN_FPS, MAX_FPS = 0.001, 10000


def frame_rate(fps, name: str = "fps") -> Fraction:
    """``fps`` (a number or Fraction; None: DEFAULT_FPS) as the Fraction a video stores,
    in 1001ths; a ValueError naming ``name`` outside MIN_FPS to MAX_FPS."""
    value = DEFAULT_FPS if fps is None else fps
    if not MIN_FPS <= float(value) <= MAX_FPS:  # NaN too
        raise ValueError(
            f"{name} must be between {MIN_FPS:g} and {MAX_FPS:g} frames a second, got {value}"
        )
    return Fraction(value).limit_denominator(1001)


MASK_VIDEO_THRESHOLD = 127


class MediaError(Exception):
    """A video, image or frame folder that cannot be read or written; the message says which."""


def is_video_path(path: str | os.PathLike) -> bool:
    """Whether ``path`` names a video that this module writes (by its extension)."""
    return Path(path).suffix.lower() in VIDEO_EXTENSIONS


def _natural_key(path: Path) -> list:
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", path.name)]


def list_images(folder: Path) -> list[Path]:
    """The image files of ``folder`` in frame order; hidden and non-image files are skipped."""
    files = [
        p
        for p in folder.iterdir()
        if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in IMAGE_EXTENSIONS
    ]
    return sorted(files, key=_natural_key)


def _open_image(path: Path, load: bool = True) -> Image.Image:
    """The image at ``path``; with ``load=False`` only its header is read (size, mode)."""
    try:
        image = Image.open(path)
        if load:
            image.load()
    except (OSError, UnidentifiedImageError) as error:
        raise MediaError(f"cannot read image {path}: {error}") from None
    return image


def image_size(path: Path) -> tuple[int, int]:
    """(H, W) of an image file, from its header."""
    with _open_image(path, load=False) as image:
        return image.height, image.width


# Pillow modes of more than 8 bits a sample, and the full-scale value of each.
HIGH_DEPTH_MODES = {"I;16": 65535, "I;16L": 65535, "I;16B": 65535, "I;16N": 65535, "I": 65535}


def read_rgb(path: Path) -> np.ndarray:
    """An image file as (H, W, 3) uint8 RGB; alpha is dropped, and deeper samples (16-bit
    grayscale, 32-bit integer, float in [0, 1]) are scaled to 8 bits rather than clipped."""
    image = _open_image(path)
    if image.mode in HIGH_DEPTH_MODES or image.mode == "F":
        full_scale = HIGH_DEPTH_MODES.get(image.mode, 1.0)
        levels = np.asarray(image, dtype=np.float64) * (255 / full_scale)
        gray = np.clip(np.round(levels), 0, 255).astype(np.uint8)
        return np.repeat(gray[..., None], 3, axis=2)
    return np.array(image.convert("RGB"))  # a writable copy, as torch wants


def channel_max(image: np.ndarray) -> np.ndarray:
    """(H, W, C) -> (H, W): each pixel's largest channel, as ``image.max(axis=2)``, one
    channel against the next: numpy's reduction over a last axis of 3 is 17 times slower
    (47 ms a 1080p frame, a sixth of the pipeline's time there)."""
    out = image[..., 0].copy()
    for channel in range(1, image.shape[2]):
        np.maximum(out, image[..., channel], out=out)
    return out


def mask_frame(mask: np.ndarray) -> np.ndarray:
    """(H, W) bool -> (H, W, 3) uint8: a mask video's frame, white on the mask, black off
    it (as ``Masks`` reads it back)."""
    return cv2.cvtColor(mask.view(np.uint8) * np.uint8(255), cv2.COLOR_GRAY2RGB)


def mask_of_frame(rgb: np.ndarray) -> np.ndarray:
    """(H, W, 3) uint8 frame of a mask video -> (H, W) bool: a level above
    MASK_VIDEO_THRESHOLD is the mask (what ``mask_frame`` wrote, through a lossy codec)."""
    return channel_max(rgb) > MASK_VIDEO_THRESHOLD


def read_hole(path: Path) -> np.ndarray:
    """A mask image as (H, W) bool: True where any color channel is nonzero."""
    image = _open_image(path)
    if image.mode in ("1", "L", "I", "I;16", "F"):
        return np.asarray(image) != 0
    return channel_max(np.asarray(image.convert("RGB"))) != 0


def _ffmpeg_message(error: av.FFmpegError) -> str:
    return error.strerror or str(error)


def _os_message(error: OSError) -> str:
    """What went wrong, without the file name (an error names the hidden partial file,
    the message the destination)."""
    return error.strerror or type(error).__name__


class VideoReader:
    """Decodes a video file frame by frame: iterating yields (H, W, 3) uint8 RGB.

    ``size`` (H, W); ``fps`` the stream's average frame rate; ``count`` None (a container's
    frame count is not always exact); ``estimated_count`` its stated count, for progress.
    """

    def __init__(self, path: Path):
        self.path = path
        try:
            with av.open(str(path)) as container:
                if not container.streams.video:
                    raise MediaError(f"cannot read video {path}: it has no video stream")
                stream = container.streams.video[0]
                self.size = (stream.height, stream.width)
                self.fps = stream.average_rate or stream.guessed_rate or DEFAULT_FPS
                self.estimated_count = stream.frames or None
        except av.FFmpegError as error:
            raise MediaError(f"cannot read video {path}: {_ffmpeg_message(error)}") from None
        self.count = None

    def __iter__(self) -> Iterator[np.ndarray]:
        decoded = 0
        try:
            with av.open(str(self.path)) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"
                for frame in container.decode(stream):
                    decoded += 1
                    yield frame.to_ndarray(format="rgb24")
        except av.FFmpegError as error:
            message = _ffmpeg_message(error)
            raise MediaError(f"cannot decode video {self.path}: {message}") from None
        if self.estimated_count and decoded < self.estimated_count:
            warnings.warn(
                f"{self.path} ends after {decoded} frames, but its header says "
                f"{self.estimated_count}: the file may be truncated",
                stacklevel=2,
            )


class FrameFolder:
    """A folder of images, in name order: iterating yields (H, W, 3) uint8 RGB.

    ``size`` (H, W) of the first image; ``count`` the number of images; ``fps`` None.
    """

    def __init__(self, path: Path):
        self.path = path
        self.files = list_images(path)
        if not self.files:
            raise MediaError(f"{path} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        self.size = image_size(self.files[0])
        self.count = self.estimated_count = len(self.files)
        self.fps = None

    def __iter__(self) -> Iterator[np.ndarray]:
        return (read_rgb(p) for p in self.files)


def open_frames(path: str | os.PathLike) -> VideoReader | FrameFolder:
    """The frames of a video file or an image folder, read lazily, or of a live source
    (URL or capture device) as they arrive."""
    if is_live_input(path):
        return LiveReader(path)
    path = Path(path)
    if path.is_dir():
        return FrameFolder(path)
    if not path.exists():
        raise MediaError(f"input not found: {path}")
    return VideoReader(path)


class Masks:
    """The masks of a clip from an image (static), an image folder or a video.

    ``static``: the (H, W) bool mask of every frame, or None for per-frame masks, which
    ``per_frame()`` yields. ``size`` (H, W); ``count`` exact or None (static, or a video);
    ``estimated_count`` the count, or a video's stated one.
    Every hole is grown by ``dilate`` pixels. A mask video one pixel larger than
    ``frame_size`` (H, W) on its odd sides, as ``VideoWriter`` pads them, is read at
    ``frame_size``.
    """

    def __init__(self, path: str | os.PathLike, dilate: int = 0, frame_size: tuple | None = None):
        path = Path(path)
        self.dilate = dilate
        self.static: np.ndarray | None = None
        self._video: VideoReader | None = None
        self._files: list[Path] = []
        self.count = self.estimated_count = None
        if path.is_dir():
            self._files = list_images(path)
            if not self._files:
                raise MediaError(f"mask folder {path} holds no images")
            self.size = image_size(self._files[0])
            self.count = self.estimated_count = len(self._files)
        elif not path.exists():
            raise MediaError(f"mask not found: {path}")
        elif path.suffix.lower() in IMAGE_EXTENSIONS:
            self.static = dilate_hole(read_hole(path), dilate)
            self.size = self.static.shape
        else:
            self._video = VideoReader(path)
            self.size, self.estimated_count = self._video.size, self._video.estimated_count
            if frame_size is not None and self.size == tuple(s + s % 2 for s in frame_size):
                self.size = tuple(frame_size)

    def per_frame(self) -> Iterator[np.ndarray]:
        """The per-frame (H, W) bool masks, dilated, read lazily."""
        if self._video is not None:
            holes = map(self.video_hole, self._video)
        else:
            holes = (read_hole(p) for p in self._files)
        return (dilate_hole(hole, self.dilate) for hole in holes)

    def video_hole(self, rgb: np.ndarray) -> np.ndarray:
        """A frame (h, w, 3) uint8 of a mask video -> its hole (H, W) bool at ``size``."""
        height, width = self.size
        return mask_of_frame(rgb[:height, :width])

    def for_inpainter(self) -> np.ndarray | Iterator[np.ndarray]:
        """What ``Inpainter.stream`` takes: the static mask or the per-frame iterator."""
        return self.static if self.static is not None else self.per_frame()


def grows_past(pixels: int, size: tuple[int, int]) -> bool:
    """Whether a hole grown by ``pixels`` (``dilate_hole``) covers a frame of ``size``
    (H, W) wherever it starts: each step grows it at least as far as a diamond's."""
    return pixels >= sum(size)


def dilate_hole(hole: np.ndarray, pixels: int) -> np.ndarray:
    """(H, W) bool -> (H, W) bool: the hole grown by ``pixels`` pixels.

    The shape of alternating 3x3 square and 3x3 cross dilations, an octagon, the usual
    cheap stand-in for a disk; each step adds exactly one pixel along the axes. A hole
    grown past the frame (``grows_past``) is the whole frame at once.
    """
    if pixels <= 0:
        return hole
    if grows_past(pixels, hole.shape[-2:]):
        return np.full_like(hole, hole.any())
    out = np.zeros_like(hole)
    rows, cols = np.flatnonzero(hole.any(axis=1)), np.flatnonzero(hole.any(axis=0))
    if rows.size == 0:
        return out
    # Only the hole's box grown by ``pixels`` can change. The squares' steps add up to one
    # square (separable: OpenCV's cost does not grow with its side) and the crosses' to a
    # diamond, the pixels within that L1 distance (a distance transform); their order
    # does not matter. Each step by itself cost a pass over the frame: at 1920x1080, 27
    # pixels took 0.7 s a frame, more than the inpainting.
    region = (
        slice(max(rows[0] - pixels, 0), rows[-1] + 1 + pixels),
        slice(max(cols[0] - pixels, 0), cols[-1] + 1 + pixels),
    )
    squares, crosses = (pixels + 1) // 2, pixels // 2
    square = np.ones((2 * squares + 1, 2 * squares + 1), np.uint8)
    grown = cv2.dilate(np.ascontiguousarray(hole[region]).view(np.uint8), square)
    if crosses:
        outside = (grown == 0).view(np.uint8)
        kind = cv2.CV_8U if crosses < 255 else cv2.CV_32F  # 8 bits saturate at 255
        grown = cv2.distanceTransform(outside, cv2.DIST_L1, 3, dstType=kind) <= crosses
    out[region] = grown.view(bool)
    return out


def _partial_name(path: Path) -> Path:
    """A fresh hidden name beside ``path`` for its output while it is being written."""
    # Created with the umask's permissions (unlike tempfile's private 0600 files), since
    # the partial file becomes the output.
    return path.with_name(f".{path.name}.{secrets.token_hex(4)}.partial")


def _check_folder_of(path: Path) -> None:
    if not path.parent.is_dir():
        raise MediaError(f"cannot write {path}: folder {path.parent} does not exist")


def leftover_partials(path: str | os.PathLike) -> list[Path]:
    """Partial outputs for ``path`` that a killed run left beside it."""
    path = Path(path)
    if not path.parent.is_dir():
        return []
    return sorted(path.parent.glob(f".{glob.escape(path.name)}.*.partial"))


def _check_replaceable(path: Path, overwrite: bool, what: str) -> None:
    """An existing ``path`` may be replaced only when ``overwrite``; a folder never by a
    file nor a file by a folder."""
    if not path.exists():
        return
    if path.is_dir() != (what == "folder"):
        raise MediaError(f"cannot write {path}: it is {'a folder' if path.is_dir() else 'a file'}")
    if not overwrite:
        kind = "a folder that is not empty" if path.is_dir() else "a file that exists"
        raise MediaError(f"cannot write {path}: it is {kind}")


def _warn_leftovers(path: Path) -> None:
    for leftover in leftover_partials(path):
        warnings.warn(
            f"{leftover} is the partial output of a run that was killed: remove it",
            stacklevel=3,
        )


class VideoWriter:
    """Writes (H, W, 3) uint8 frames to a video file at ``fps``, atomically.

    H.264 (libx264, yuv420p, CRF 18) in .mp4/.mkv/.mov/.avi, VP9 (yuv420p) in .webm.
    yuv420p needs even sizes: an odd height or width is padded by repeating the last row
    or column, so such a video is one pixel taller or wider than its frames. As a context
    manager: the file appears at ``path`` when the block ends without an error, else never.
    With a ``time_base``, each frame keeps the ``pts`` it is written with (in those units),
    so a missing frame leaves a gap; without, frames follow each other at ``fps``.
    """

    def __init__(
        self,
        path: str | os.PathLike,
        fps: Fraction | float | None = None,
        overwrite: bool = False,
        time_base: Fraction | None = None,
    ):
        self.path = Path(path)
        if self.path.suffix.lower() not in VIDEO_FORMATS:
            extensions = ", ".join(VIDEO_EXTENSIONS)
            raise MediaError(f"cannot write {self.path}: video extensions are {extensions}")
        _check_replaceable(self.path, overwrite, "video")
        _check_folder_of(self.path)
        _warn_leftovers(self.path)
        self.format, self.codec, self.options = VIDEO_FORMATS[self.path.suffix.lower()]
        try:
            self.fps = frame_rate(fps)
        except ValueError as error:  # a rate taken from the input, or the caller's
            raise MediaError(f"cannot write {self.path}: {error}") from None
        self.time_base = time_base
        self.count = 0
        self._temp: Path | None = None
        self._container = None
        self._stream = None

    def __enter__(self) -> VideoWriter:
        try:
            self._temp = _partial_name(self.path)
            os.close(os.open(self._temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
        except OSError as error:
            raise MediaError(f"cannot write {self.path}: {error.strerror}") from None
        try:
            self._container = av.open(str(self._temp), mode="w", format=self.format)
        except av.FFmpegError as error:
            self._temp.unlink(missing_ok=True)
            raise MediaError(f"cannot write {self.path}: {_ffmpeg_message(error)}") from None
        return self

    def write(self, frame: np.ndarray, pts: int | None = None) -> None:
        """Appends one (H, W, 3) uint8 RGB frame; all frames have the first one's size.
        ``pts``: its timestamp in ``time_base`` units, increasing (with a time base only)."""
        h, w = frame.shape[:2]
        if self._stream is None:
            self._stream = self._container.add_stream(self.codec, rate=self.fps)
            self._stream.width, self._stream.height = w + w % 2, h + h % 2
            self._stream.pix_fmt = "yuv420p"
            self._stream.options = self.options
            if self.time_base is not None:
                self._stream.codec_context.time_base = self.time_base
        if h % 2 or w % 2:
            frame = np.pad(frame, ((0, h % 2), (0, w % 2), (0, 0)), mode="edge")
        video = av.VideoFrame.from_ndarray(np.ascontiguousarray(frame), format="rgb24")
        if pts is not None and self.time_base is not None:
            video.pts, video.time_base = pts, self.time_base
        self._encode(video)
        self.count += 1

    def _encode(self, frame: av.VideoFrame | None) -> None:
        try:
            for packet in self._stream.encode(frame):
                self._container.mux(packet)
        except (av.FFmpegError, OSError) as error:
            raise MediaError(f"cannot write {self.path}: {_os_message(error)}") from None

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is None:
                if self._stream is None:
                    raise MediaError(f"cannot write {self.path}: no frames to write")
                self._encode(None)  # flushes the frames the encoder holds back
                try:
                    self._container.close()
                    os.replace(self._temp, self.path)
                except (av.FFmpegError, OSError) as error:
                    raise MediaError(f"cannot write {self.path}: {_os_message(error)}") from None
        finally:
            if self._temp.exists():  # failed: close quietly, remove the partial file
                try:
                    self._container.close()
                except av.FFmpegError:
                    pass
                self._temp.unlink(missing_ok=True)


class PngFolderWriter:
    """Writes frames as lossless PNGs ``00000.png``, ``00001.png``, ... into folder ``path``.

    The frames go to a temporary folder beside ``path``, renamed to ``path`` when the
    block ends without an error and removed otherwise. ``path`` may already exist only as
    an empty folder (which the rename replaces): a folder with files in it is never
    replaced.
    """

    def __init__(self, path: str | os.PathLike, overwrite: bool = False):
        self.path = Path(path)
        empty_folder = self.path.is_dir() and not any(self.path.iterdir())
        if not empty_folder:
            _check_replaceable(self.path, overwrite, "folder")
        _check_folder_of(self.path)
        _warn_leftovers(self.path)
        self.count = 0
        self._temp: Path | None = None

    def __enter__(self) -> PngFolderWriter:
        try:
            self._temp = _partial_name(self.path)
            self._temp.mkdir()
        except OSError as error:
            raise MediaError(f"cannot write frames to {self.path}: {error.strerror}") from None
        return self

    def write(self, frame: np.ndarray, pts: int | None = None) -> None:
        """Writes one (H, W, 3) uint8 RGB frame as the next PNG (``pts``: unused, images
        have no timestamps)."""
        name = f"{self.count:05d}.png"
        try:
            # Lossless at every compression level; the fastest keeps up with the network.
            Image.fromarray(frame).save(self._temp / name, compress_level=1)
        except OSError as error:
            raise MediaError(f"cannot write {self.path / name}: {_os_message(error)}") from None
        self.count += 1

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is None:
                if self.count == 0:
                    raise MediaError(f"cannot write frames to {self.path}: no frames to write")
                self._replace()
        finally:
            shutil.rmtree(self._temp, ignore_errors=True)

    def _replace(self) -> None:
        """Renames the finished folder to ``path``; a folder already there (``overwrite``)
        is moved aside first and removed once the new one is in place."""
        aside = None
        if self.path.is_dir() and any(self.path.iterdir()):
            aside = _partial_name(self.path)
            os.replace(self.path, aside)
        try:
            os.replace(self._temp, self.path)
        except OSError:
            if aside is not None:
                os.replace(aside, self.path)
            raise
        if aside is not None:
            shutil.rmtree(aside, ignore_errors=True)


# Extensions of media files that are not video containers this module writes: an output
# named so is refused rather than made a folder of PNGs.
OTHER_MEDIA_EXTENSIONS = (*IMAGE_EXTENSIONS, ".gif", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv",
                          ".ts", ".ogv", ".3gp", ".mxf", ".y4m")  # fmt: skip


def open_writer(
    path: str | os.PathLike,
    fps: Fraction | float | None = None,
    overwrite: bool = False,
    time_base: Fraction | None = None,
    format: str | None = None,
):
    """A StreamWriter for a URL or "-" (in container ``format``), a VideoWriter for a path
    with a video extension, else a PngFolderWriter; an existing output is replaced only
    when ``overwrite``. With ``time_base``, videos keep the timestamps frames come with."""
    if is_live_output(path):
        return StreamWriter(path, fps, time_base, format)
    if format is not None:
        raise MediaError(f"cannot write {path}: a container format is for a URL or -")
    if is_video_path(path):
        return VideoWriter(path, fps, overwrite, time_base)
    suffix = Path(path).suffix.lower()
    if suffix in OTHER_MEDIA_EXTENSIONS:
        raise MediaError(
            f"cannot write {path}: {suffix} is not a video format this writes "
            f"({', '.join(VIDEO_EXTENSIONS)}); a folder of PNGs takes a name without one"
        )
    return PngFolderWriter(path, overwrite)


def _write_atomically(path: str | os.PathLike, save: Callable[[Path], None]) -> None:
    """Calls ``save`` on a temporary name beside ``path``, then renames it to ``path``."""
    path = Path(path)
    _check_folder_of(path)
    temp = _partial_name(path)
    try:
        save(temp)
        os.replace(temp, path)
    finally:
        temp.unlink(missing_ok=True)


def write_png(path: str | os.PathLike, image: np.ndarray) -> None:
    """Writes one (H, W, 3) uint8 image as a PNG file, atomically."""
    _write_atomically(path, lambda temp: Image.fromarray(image).save(temp, format="PNG"))


def write_text(path: str | os.PathLike, text: str) -> None:
    """Writes ``text`` as a UTF-8 file, atomically."""
    _write_atomically(path, lambda temp: temp.write_text(text, encoding="utf-8"))


# Live sources and outputs.

URL_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
STANDARD = "-"  # standard input as an input, standard output as an output
DEFAULT_TIMEOUT = 10.0
# A URL output's container by scheme: MPEG-TS, which a player can join at any packet; FLV
# where the server expects it.
STREAM_FORMATS = {"udp": "mpegts", "tcp": "mpegts", "srt": "mpegts", "rtmp": "flv", "rtmps": "flv"}
STREAM_KEYFRAME_S = 2  # a player joining a stream waits at most this for a picture


def is_url(name: str | os.PathLike) -> bool:
    """Whether ``name`` is a URL (scheme://...) other than file://."""
    text = str(name)
    return bool(URL_PATTERN.match(text)) and not text.lower().startswith("file:")


def is_live_input(name: str | os.PathLike) -> bool:
    """Whether ``name`` is a live source: a URL, "-" (standard input), or a capture device
    or named pipe."""
    if is_url(name) or str(name) == STANDARD:
        return True
    try:
        mode = os.stat(name).st_mode
    except (OSError, ValueError, TypeError):
        return False
    return stat.S_ISCHR(mode) or stat.S_ISFIFO(mode)


def is_live_output(name: str | os.PathLike) -> bool:
    """Whether ``name`` is a URL or "-" (standard output)."""
    return str(name) == STANDARD or is_url(name)


def media_name(text: str) -> str | Path:
    """A media argument as given on a command line: a URL or "-" stays a string (a Path
    would merge a URL's slashes), anything else is a Path."""
    return text if is_live_output(text) else Path(text)


class LiveTimeout(MediaError):
    """A live source that opened, or sent, nothing within its timeout."""


@dataclass(frozen=True)
class TimedFrame:
    """A frame of a live source: ``rgb`` (H, W, 3) uint8; ``index`` its position in the
    source (0, 1, ...); ``pts`` its timestamp in ``time_base`` units (None where the source
    gives none); ``captured`` the ``time.monotonic()`` at which it was decoded. It is its
    pixels to numpy (``np.asarray(frame)``), so ``Inpainter.stream`` takes it as it is."""

    rgb: np.ndarray
    index: int
    pts: int | None
    time_base: Fraction | None
    captured: float

    def __array__(self, dtype=None, copy=None) -> np.ndarray:
        return self.rgb if dtype is None else self.rgb.astype(dtype)


class LiveReader:
    """Decodes a live source frame by frame as it arrives: iterating yields TimedFrame.

    ``name``: a URL (rtsp://, rtmp://, udp://, tcp://, srt://, http(s)://, HLS), "-"
    (standard input), a capture device (/dev/video0), or whatever FFmpeg's input ``format``
    opens (v4l2, lavfi, ...).
    ``options``: FFmpeg's options of that input (video_size, framerate, rtsp_transport, ...).
    Opening waits at most ``timeout`` seconds, and so does each read: a source silent for
    that long ends the iteration with LiveTimeout. ``size`` (H, W); ``fps`` the stated rate
    or None; ``count`` and ``estimated_count`` None (a live source has no end in sight).
    """

    def __init__(
        self,
        name: str | os.PathLike,
        format: str | None = None,
        options: dict[str, str] | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        self.name, self.timeout = str(name), timeout
        target = "pipe:0" if self.name == STANDARD else self.name
        try:
            self._container = av.open(
                target, format=format, options=dict(options or {}), timeout=timeout
            )
        except av.ExitError:
            raise LiveTimeout(f"cannot open {self.name}: nothing came in {timeout:g} s") from None
        except (av.FFmpegError, ValueError) as error:
            message = _ffmpeg_message(error) if isinstance(error, av.FFmpegError) else error
            raise MediaError(f"cannot open {self.name}: {message}") from None
        streams = self._container.streams.video
        if not streams or not streams[0].width:
            self._container.close()
            raise MediaError(f"cannot read {self.name}: it has no video stream")
        self._stream = streams[0]
        self.size = (self._stream.height, self._stream.width)
        self.fps = self._stream.average_rate or self._stream.guessed_rate or None
        self.time_base = self._stream.time_base
        self.count = self.estimated_count = None
        # Held while FFmpeg reads: closing from another thread waits for the read to end.
        self._reading = threading.Lock()
        self._closed = False

    def __iter__(self) -> Iterator[TimedFrame]:
        frames = self._container.decode(self._stream)
        for index in itertools.count():
            with self._reading:
                if self._closed:
                    return
                try:
                    frame = next(frames, None)
                except av.ExitError:
                    raise LiveTimeout(f"no frame from {self.name} for {self.timeout:g} s") from None
                except av.FFmpegError as error:
                    message = _ffmpeg_message(error)
                    raise MediaError(f"cannot decode {self.name}: {message}") from None
                if frame is None:
                    return
                captured = time.monotonic()
                rgb = frame.to_ndarray(format="rgb24")
            yield TimedFrame(rgb, index, frame.pts, frame.time_base, captured)

    def close(self) -> None:
        """Closes the source, once a read under way in another thread has ended (at most
        ``timeout`` seconds); an iteration in that thread then ends."""
        with self._reading:
            if not self._closed:
                self._closed = True
                self._container.close()

    def __enter__(self) -> LiveReader:
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        self.close()


class StreamWriter(VideoWriter):
    """Writes (H, W, 3) uint8 frames as they come to a URL (udp://, tcp://, srt://,
    rtmp://) or, for "-", to standard output.

    H.264 tuned for latency (no B-frames nor lookahead; a keyframe every 2 s, so a player
    can join) in ``format``: by default MPEG-TS, FLV for rtmp://. Frames keep the ``pts``
    they are written with, in ``time_base`` units. Nothing is atomic about a stream: what
    was sent stays sent; leaving the block flushes the encoder and closes the connection.
    """

    def __init__(
        self,
        url: str,
        fps: Fraction | float | None = None,
        time_base: Fraction | None = None,
        format: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ):
        self.url = str(url)
        self.path = "standard output" if self.url == STANDARD else self.url  # for messages
        scheme = "-" if self.url == STANDARD else self.url.split("://")[0].lower()
        self.format = format or ("mpegts" if self.url == STANDARD else STREAM_FORMATS.get(scheme))
        if self.format is None:
            raise MediaError(
                f"cannot write {self.url}: no default container for {scheme}://, name one "
                f"(e.g. {', '.join(sorted(set(STREAM_FORMATS.values())))})"
            )
        self.fps = Fraction(fps or DEFAULT_FPS).limit_denominator(1001)
        self.codec = "libx264"
        keyframes = str(max(1, round(STREAM_KEYFRAME_S * self.fps)))
        self.options = {"preset": "veryfast", "tune": "zerolatency", "g": keyframes}
        self.time_base, self.timeout, self.count = time_base, timeout, 0
        self._container = self._stream = None

    def __enter__(self) -> StreamWriter:
        target = "pipe:1" if self.url == STANDARD else self.url
        try:
            self._container = av.open(target, "w", format=self.format, timeout=self.timeout)
        except av.ExitError:
            raise MediaError(f"cannot write {self.path}: no answer in {self.timeout:g} s") from None
        except (av.FFmpegError, ValueError) as error:
            message = _ffmpeg_message(error) if isinstance(error, av.FFmpegError) else error
            raise MediaError(f"cannot write {self.path}: {message}") from None
        return self

    def __exit__(self, exc_type, exc, traceback) -> None:
        try:
            if exc_type is None and self._stream is not None:
                self._encode(None)  # the frames the encoder holds back
        finally:
            try:
                self._container.close()
            except (av.FFmpegError, OSError) as error:
                if exc_type is None:
                    raise MediaError(f"cannot write {self.path}: {_os_message(error)}") from None
