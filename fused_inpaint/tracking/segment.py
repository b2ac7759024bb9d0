"""An object's mask on one frame by OpenCV's GrabCut, on a crop around it.

GrabCut labels each pixel of a crop as object or background by a graph cut whose terms
are two colour models (Gaussian mixtures) and the image's edges. What it is told decides
where it may cut: pixels marked sure background stay so, pixels marked probable object or
probable background are decided by the cut. Here the probable pixels are the object's
first guess (a box, strokes, or the mask carried from the previous frame) and a band
around it, so the mask can move its border by at most the band's width per frame and
never grows into the rest of the frame. The motion cue (``motion.py``) moves pixels that
move like the background to the background side of that first guess.

Images: (h, w, 3) uint8 at the working scale; masks: (h, w) bool.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

# The band around the first guess in which the border may move: this fraction of the
# object's size (the square root of its area), at least MIN_BAND pixels.
BAND = 0.15
MIN_BAND = 3
# GrabCut's iterations on a keyframe (colour models learnt from scratch) and per tracked
# frame (colour models carried from the frame before, relearnt once).
KEY_ITERATIONS = 4
TRACK_ITERATIONS = 1
# Pixels across which DIS flow mixes the motions of both sides of an edge.
FLOW_BLUR = 3
# Pixels each side needs at the least: GrabCut fits five Gaussians to each.
MIN_SAMPLES = 5
# Pixels a side's mixture is learnt from by ``learnt_models``, about: five Gaussians in
# three dimensions need far fewer, and k-means over a whole band costs a millisecond.
MODEL_SAMPLES = 1024


@dataclass
class ColourModels:
    """GrabCut's background and object Gaussian mixtures, (1, 65) float64 each."""

    background: np.ndarray
    foreground: np.ndarray

    @classmethod
    def empty(cls) -> ColourModels:
        return cls(np.zeros((1, 65)), np.zeros((1, 65)))

    def copy(self) -> ColourModels:
        return ColourModels(self.background.copy(), self.foreground.copy())

    def densities(self, pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The log densities of the object's and the background's mixtures at ``pixels``
        (n, 3) uint8, as GrabCut weighs them: (n,) float64 each."""
        colours = pixels.astype(np.float64)
        return _log_density(self.foreground, colours), _log_density(self.background, colours)

    def likelier_own(self, pixels: np.ndarray, margin: float = 0.0) -> np.ndarray:
        """(n,) bool: whether the colours ``pixels`` (n, 3) uint8 are more than e ** margin
        times likelier the object's than the background's."""
        own, background = self.densities(pixels)
        return own > background + margin


def learnt_models(own: np.ndarray, background: np.ndarray) -> ColourModels | None:
    """GrabCut's mixtures started (k-means, as GrabCut starts them) from the object's
    pixels ``own`` (n, 3) uint8 and the background's ``background`` (m, 3) uint8, from
    every k-th so that each side gives about MODEL_SAMPLES; None when either has fewer
    than MIN_SAMPLES."""
    if min(len(own), len(background)) < MIN_SAMPLES:
        return None
    own = own[:: max(1, len(own) // MODEL_SAMPLES)]
    background = background[:: max(1, len(background) // MODEL_SAMPLES)]
    pixels = np.ascontiguousarray(np.concatenate([own, background])[:, None, :])
    labels = np.full((len(pixels), 1), cv2.GC_BGD, np.uint8)
    labels[: len(own)] = cv2.GC_FGD
    models = ColourModels.empty()
    cv2.setRNGSeed(0)
    start = cv2.GC_INIT_WITH_MASK  # with no iteration, GrabCut only starts its mixtures
    cv2.grabCut(pixels, labels, None, models.background, models.foreground, 0, start)
    return models


def _log_density(model: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """(n,) float64: the log density of GrabCut's Gaussian mixture ``model`` (1, 65) (five
    weights, five means, five 3x3 covariances) at ``colours`` (n, 3), less the constant
    that both mixtures share."""
    weights, means = model[0, :5], model[0, 5:20].reshape(5, 3)
    covariances = model[0, 20:].reshape(5, 3, 3)
    density = np.zeros(len(colours))
    for weight, mean, covariance in zip(weights, means, covariances, strict=True):
        determinant = np.linalg.det(covariance)
        if weight <= 0 or determinant <= 0:
            continue
        offset = colours - mean
        distance = np.einsum("ni,ij,nj->n", offset, np.linalg.inv(covariance), offset)
        density += weight / math.sqrt(determinant) * np.exp(-0.5 * distance)
    return np.log(density + 1e-300)


def band_width(mask: np.ndarray) -> int:
    """Pixels of the band around ``mask``, by its size."""
    return max(MIN_BAND, round(BAND * math.sqrt(mask.sum())))


def _disk(pixels: int) -> np.ndarray:
    """The structuring element of a disk of radius ``pixels``."""
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * pixels + 1, 2 * pixels + 1))


def grow(mask: np.ndarray, pixels: int) -> np.ndarray:
    """mask: (h, w) bool grown by ``pixels`` (a disk)."""
    if pixels <= 0:
        return mask
    return cv2.dilate(mask.view(np.uint8), _disk(pixels)).view(bool)


def opened(mask: np.ndarray, pixels: int) -> np.ndarray:
    """mask: (h, w) bool without its parts narrower than a disk of radius ``pixels`` (a
    morphological opening)."""
    return cv2.morphologyEx(mask.view(np.uint8), cv2.MORPH_OPEN, _disk(pixels)).view(bool)


def bounds(mask: np.ndarray) -> tuple[slice, slice] | None:
    """The rows and columns of ``mask``'s bounding box, one pixel wider on each side
    where the frame allows; None when it is empty."""
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    if rows.size == 0:
        return None
    h, w = mask.shape
    return (
        slice(max(rows[0] - 1, 0), min(rows[-1] + 2, h)),
        slice(max(cols[0] - 1, 0), min(cols[-1] + 2, w)),
    )


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """mask: (h, w) bool with every region it encloses filled (a hole left in a mask is
    part of the object that stays in the video)."""
    padded = np.pad(mask, 1).view(np.uint8) * 255
    outside = padded.copy()
    cv2.floodFill(outside, None, (0, 0), 128)
    return (outside != 128)[1:-1, 1:-1]


def keep_touching(mask: np.ndarray, guess: np.ndarray) -> np.ndarray:
    """The connected parts of ``mask`` that overlap ``guess``: GrabCut's islands in the
    band are background that looks like the object."""
    count, labels = cv2.connectedComponents(mask.view(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    touching = np.unique(labels[guess & mask])
    return np.isin(labels, touching[touching > 0])


def grabcut(
    image: np.ndarray,
    guess: np.ndarray,
    unlike: np.ndarray | None,
    models: ColourModels | None,
    apart: np.ndarray | None = None,
) -> tuple[np.ndarray, ColourModels]:
    """The object's mask near ``guess`` and the colour models it was cut with.

    image: (h, w, 3) uint8; guess: (h, w) bool, the first guess; unlike: (h, w) bool or
    None, pixels of the guess that move like the background. Colour models are learnt
    from the guess when ``models`` is None, else carried from them.
    """
    around = grow(guess, band_width(guess))
    box = bounds(around)
    if box is None:
        return guess, models or ColourModels.empty()
    labels = np.full(around[box].shape, cv2.GC_BGD, np.uint8)
    labels[around[box]] = cv2.GC_PR_BGD
    labels[guess[box]] = cv2.GC_PR_FGD
    if unlike is not None:
        labels[(unlike & guess)[box]] = cv2.GC_PR_BGD
    if apart is not None:
        labels[(apart & around & ~grow(guess, FLOW_BLUR))[box]] = cv2.GC_BGD
    objects = int((labels == cv2.GC_PR_FGD).sum())
    if objects < MIN_SAMPLES:  # too small to tell: the object has left or is hidden
        return np.zeros_like(guess), models or ColourModels.empty()
    if labels.size - objects < MIN_SAMPLES:  # a guess that fills the frame
        labels[[0, -1], :] = labels[:, [0, -1]] = cv2.GC_PR_BGD
        objects = int((labels == cv2.GC_PR_FGD).sum())
        if min(objects, labels.size - objects) < MIN_SAMPLES:
            # A crop of a few pixels has no room for both sides' samples: the guess stands.
            return guess, models or ColourModels.empty()
    learn = models is None
    models = ColourModels.empty() if learn else models
    if learn:  # GrabCut starts its mixtures by k-means from OpenCV's random state
        cv2.setRNGSeed(0)
    cv2.grabCut(
        np.ascontiguousarray(image[box]),
        labels,
        None,
        models.background,
        models.foreground,
        KEY_ITERATIONS if learn else TRACK_ITERATIONS,
        cv2.GC_INIT_WITH_MASK if learn else cv2.GC_EVAL,
    )
    mask = np.zeros_like(guess)
    mask[box] = (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)
    return fill_holes(keep_touching(mask, guess)), models
