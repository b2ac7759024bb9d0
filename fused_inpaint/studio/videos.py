"""The clips the studio has opened: decoded frames in memory, their tracked masks, and the
pictures the page shows of them.

A clip is read once into memory (tracking and the page's scrubbing both want any frame
at once), within a limit of bytes; the page reaches it by id, never by path.
"""

from __future__ import annotations

import io as bytes_io
import secrets
import threading
import warnings
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from fused_inpaint import io
from fused_inpaint.tracking import default_dilate

JPEG_QUALITY = 90
OVERLAY_RGBA = (255, 40, 90, 110)  # the tracked mask over the frame: translucent red


class ClipError(Exception):
    """A clip that cannot be opened; the message says why, in one line."""


@dataclass
class Clip:
    """frames (T, H, W, 3) uint8; masks (T, H, W) bool once tracked, else None;
    ``mask_version`` counts trackings (the page asks for masks by version)."""

    id: str
    name: str
    frames: np.ndarray
    fps: Fraction
    warning: str | None = None
    masks: np.ndarray | None = None
    mask_version: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def size(self) -> tuple[int, int]:
        return self.frames.shape[1:3]

    def describe(self) -> dict:
        height, width = self.size
        return {
            "id": self.id,
            "name": self.name,
            "frames": len(self.frames),
            "width": width,
            "height": height,
            "fps": float(self.fps),
            "warning": self.warning,
            "mask_version": self.mask_version if self.masks is not None else None,
            "dilate": default_dilate(self.size),
        }


def read_clip(path: Path, name: str, max_bytes: int) -> Clip:
    """Decodes the video or frame folder at ``path`` into a Clip named ``name``.

    Raises ClipError for anything that is not a readable clip of at least one frame or
    whose frames would take more than ``max_bytes``; a truncated video opens with the
    frames it has and a warning."""
    try:
        source = io.open_frames(path)
        frame_bytes = source.size[0] * source.size[1] * 3
        frames = []
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for frame in source:
                if frame_bytes * (len(frames) + 1) > max_bytes:
                    raise ClipError(
                        f"{name} is too long for the studio: its frames take more than "
                        f"{max_bytes // 2**20} MiB (at {len(frames)} frames)"
                    )
                frames.append(frame)
    except (io.MediaError, OSError) as error:
        reason = _one_line(error).replace(str(path), name)  # the private folder stays private
        raise ClipError(f"{name} is not a video that can be read: {reason}") from None
    if not frames:
        raise ClipError(f"{name} has no frames")
    warning = "; ".join(_one_line(w.message).replace(str(path), name) for w in caught) or None
    fps = Fraction(source.fps or io.DEFAULT_FPS)
    return Clip(secrets.token_hex(8), name, np.stack(frames), fps, warning)


def _one_line(error) -> str:
    return " ".join(str(error).split()) or type(error).__name__


def jpeg(image: np.ndarray) -> bytes:
    """(H, W, 3) uint8 -> JPEG bytes."""
    out = bytes_io.BytesIO()
    Image.fromarray(image).save(out, format="JPEG", quality=JPEG_QUALITY)
    return out.getvalue()


def overlay_png(mask: np.ndarray) -> bytes:
    """(H, W) bool -> a PNG, OVERLAY_RGBA where True, transparent elsewhere."""
    rgba = np.zeros((*mask.shape, 4), np.uint8)
    rgba[mask] = OVERLAY_RGBA
    out = bytes_io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(out, format="PNG", compress_level=1)
    return out.getvalue()


def decode_mask(data: bytes, size: tuple[int, int]) -> np.ndarray:
    """A PNG the page painted -> (H, W) bool, True where it is not transparent; its size
    must be the clip's ``size`` (H, W)."""
    try:
        with Image.open(bytes_io.BytesIO(data)) as image:
            if image.format != "PNG":
                raise ClipError("a painted mask must be a PNG")
            rgba = np.asarray(image.convert("RGBA"))
    except (OSError, ValueError):
        raise ClipError("a painted mask is not a readable PNG") from None
    if rgba.shape[:2] != tuple(size):
        raise ClipError(f"a painted mask is {rgba.shape[1]}x{rgba.shape[0]}, the clip is "
                        f"{size[1]}x{size[0]}")  # fmt: skip
    return rgba[..., 3] > 0
