"""What tells a tracked mask's pixels apart beyond GrabCut's colours: the object's own
motion against the background's (``kept``, ``rejoining``, ``with_moving_parts``,
``background_side``), the frame's edges (``reaching_the_edges``), thin parts the flow does
not resolve (``with_thin_parts``, ``with_thin_colours``, ``with_thin_limbs``) and parts of
the mask moving their own way (``without_stray_parts``). Each takes and gives masks at the
view's scale; ``tracker`` decides when each applies."""

from __future__ import annotations

import cv2
import numpy as np

from fused_inpaint.tracking.motion import (
    APART_MOTION,
    SAME_MOTION,
    carry_rigidly,
    object_residual,
)
from fused_inpaint.tracking.segment import (
    FLOW_BLUR,
    ColourModels,
    band_width,
    fill_holes,
    grow,
    keep_touching,
    learnt_models,
    opened,
)

# A pixel that moves like the background stays on the object's side when its colours are
# e ** COLOURS_OVER_MOTION (some 55) times likelier the moving part's than the
# background's (``background_side``). Chosen on synthetic walking figures that no report
# uses (the mean IoU of 16 tracks from 0.647 to 0.762, the legs' coverage from 0.22 to
# 0.51) against 0, 3 and 5: at 0 the cut took in background that moves like the
# background. The mean IoU of five sets of other synthetic objects moved by 0.006 at most;
# of a sixth, 24 limbed objects, from 0.826 to 0.793, all of it one keyframe whose cut,
# poor either way, took in a part of a neighbour (IoU 0.77 before, 0.55).
COLOURS_OVER_MOTION = 4
# Pixels of the carried mask whose flow is this many times farther from the background's
# motion than from the object's (and within APART_MOTION of the object's) stay in it
# whatever GrabCut says: across the object's border DIS's flow blends both motions, and
# a pixel is kept when its flow is at least 5/6 of the way to the object's. Relative to
# each pixel's own two distances, so that an object that turns or grows, whose distance
# from the background varies across it, is kept whole. Chosen on synthetic clips that no
# report uses, by the removal's PSNR against the exact masks'.
NEARER = 5
# A part of the mask apart from its largest is dropped when more than this share of its
# pixels move apart from the object.
STRAY_APART = 0.5
# Parts of an object narrower than 2 * MOVING_PART + 1 pixels are narrower than DIS's flow
# resolves: it spreads the object's motion a few pixels into the background around it and
# into the gaps between its limbs, and across a thin limb it is the background's motion
# or a blend. So a keyframe's cut gains only the parts moving with the object that are at
# least that wide (and their corners): a mask grown by the flow's blur would be carried
# along. Chosen on synthetic clips, of blobs and of limbed objects (whose keyframes took in
# the gaps), against 0, 3 and 7; and a tracked mask's thinner parts move by the object's
# own motion (``with_thin_parts``) and stay by their colours (``with_thin_colours``), which
# raised the IoU of limbed objects' tracks from 0.805 to 0.826 on synthetic clips that no
# report uses (the object's pixels outside the mask grown by 6, 8.1% to 6.4%), blobs'
# unchanged (0.942 and 0.941; against 3 and 7 pixels for these two uses).
MOVING_PART = 5
# Fewer thin pixels than this are a smooth object's corners (19 on the median frame of
# synthetic blobs, 47 on the 90th percentile; 216 of limbed objects), not a limb: moving
# them by the object's own motion (a robust fit over its interior, the thin parts' main
# cost) left the mean IoU on the synthetic clips above as it was (limbed 0.826; blobs
# 0.942 against 0.941).
THIN_PIXELS = 60
# A keyframe's cut gains the pixels of its box it left out in parts as thin as that whose
# colours are e ** THIN_COLOURS times likelier the object's than the background's
# (``with_thin_limbs``). Chosen against 0 and 2 on synthetic clips that no report uses:
# under 4, background in the box of colours near the object's joined it (one keyframe's
# IoU 0.90 to 0.69 at 0, two others 0.02 lower at 2). At 4 the keyframes of 56 limbed
# objects covered 0.95 of their thin parts (0.93), their tracks' mean IoU 0.800 and 0.832
# over two sets (0.798 and 0.832); 16 walking figures' legs were covered 0.54 (0.51),
# IoU 0.774 (0.762); blobs' and large objects' tracks as they were.
THIN_COLOURS = 4


def kept(
    pixels: np.ndarray, distance: np.ndarray | None, to_object: np.ndarray | None
) -> np.ndarray:
    """Which of ``pixels`` (h, w) bool belong to the object whatever GrabCut says (a part
    of the object coloured like the background is dropped by GrabCut and, once dropped,
    stays visible in the video): those that move with the object, their flow within
    APART_MOTION of its motion (``to_object`` (h, w), the distance from it) and NEARER
    times farther from the background's (``distance`` (h, w)), at least SAME_MOTION; none
    when the object moves like the background (``distance`` None) or its motion cannot
    be fitted (``to_object`` None)."""
    if distance is None or to_object is None:
        return np.zeros_like(pixels)
    nearer = distance >= np.maximum(NEARER * to_object, SAME_MOTION)
    return pixels & (to_object <= APART_MOTION) & nearer


def rejoining(
    guess: np.ndarray, distance: np.ndarray | None, to_object: np.ndarray | None
) -> np.ndarray:
    """(h, w) bool: the pixels of the band around the carried ``guess`` (h, w) bool,
    beyond the flow's blur, that move with the object (``kept``). GrabCut starts them on
    the object's side: a part it dropped on an earlier frame, its colours learnt as the
    background's since, can come back."""
    if distance is None or to_object is None:
        return np.zeros_like(guess)
    ring = grow(guess, band_width(guess)) & ~grow(guess, FLOW_BLUR)
    return kept(ring, distance, to_object)


def reaching_the_edges(guess: np.ndarray, before: np.ndarray, edges) -> np.ndarray:
    """``guess`` (h, w) bool with the pixels between it and each side of the view that is an
    edge of the frames (``edges``: top, bottom, left, right, as ``View.edges``), in the
    rows (or columns) where the mask ``before`` (h, w) bool of the frame before reached
    that edge. An object on the edge goes on beyond it, and the flow there follows it short
    of the edge (a part coming back into the frame has no flow at all): started on the
    background's side, what lay between its mask and the edge was learnt as the
    background's colours, so that an object half out of the frame was cut to nothing as it
    came back, and its mask never grew again."""
    out = guess.copy()
    top, bottom, left, right = edges
    # Each edge turned to the right-hand one (views, so that ``out`` changes in place).
    turns = ((right, lambda a: a), (left, lambda a: a[:, ::-1]), (bottom, lambda a: a.T),
             (top, lambda a: a.T[:, ::-1]))  # fmt: skip
    for is_edge, turn in turns:
        if is_edge:
            seen, reached = turn(guess), turn(before)[:, -1]
            beyond = ~np.logical_or.accumulate(seen[:, ::-1], axis=1)[:, ::-1]
            turn(out)[...] |= beyond & (seen.any(axis=1) & reached)[:, None]
    return out


def with_moving_parts(
    mask: np.ndarray,
    guess: np.ndarray,
    distance: np.ndarray | None,
    to_object: np.ndarray | None,
) -> np.ndarray:
    """``mask`` (h, w) bool, GrabCut's cut of the first ``guess`` (h, w) bool on a keyframe,
    with the pixels of the guess that move with it (``kept``; ``distance`` and
    ``to_object``, the flow to the next frame's ``background_distance`` and
    ``object_distance`` around the guess), in parts that touch it and are at least
    2 * MOVING_PART + 1 pixels across, holes filled: a part of the object coloured like the
    background is else left out on the keyframe and on every frame tracked from it."""
    added = kept(guess, distance, to_object) & ~mask
    added &= grow(opened(added, MOVING_PART), MOVING_PART)  # corners kept, not thin parts
    return fill_holes(keep_touching(mask | added, mask))


def background_side(
    image: np.ndarray, guess: np.ndarray, distance: np.ndarray | None
) -> np.ndarray | None:
    """(h, w) bool: the pixels of ``guess`` (h, w) bool that start on GrabCut's background
    side, those that move like the background (``distance`` (h, w), their flow's
    ``background_distance``, under SAME_MOTION) but for those whose colours in ``image``
    (h, w, 3) uint8 are at least e ** COLOURS_OVER_MOTION times likelier those of the rest
    of the guess (the part moving otherwise) than those of the band around it, by mixtures
    learnt from each: a leg planted while the other swings moves as the background does
    and looks like the swinging one; started on the background's side, its colours would
    be learnt as the background's and both legs dropped. None when the object moves like
    the background (``distance`` None)."""
    if distance is None:
        return None
    unlike = guess & (distance < SAME_MOTION)
    if not unlike.any():
        return unlike
    around = grow(guess, band_width(guess)) & ~guess
    models = learnt_models(image[guess & ~unlike], image[around])
    if models is None:
        return unlike
    unlike[unlike] = ~models.likelier_own(image[unlike], COLOURS_OVER_MOTION)
    return unlike


def thin_parts(mask: np.ndarray) -> np.ndarray:
    """(h, w) bool: the parts of ``mask`` (h, w) bool narrower than 2 * MOVING_PART + 1
    pixels, narrower than DIS's flow resolves."""
    return mask & ~opened(mask, MOVING_PART)


def with_thin_parts(guess: np.ndarray, before: np.ndarray, flow: np.ndarray) -> np.ndarray:
    """``guess`` (h, w) bool, the mask ``before`` (h, w) bool of the frame before carried
    along ``flow`` (h, w, 2) (``carry``), with the parts of ``before`` narrower than
    2 * MOVING_PART + 1 pixels moved by the object's own motion too (``carry_rigidly``,
    fitted to the flow inside the guess), when there are THIN_PIXELS of them: the flow
    does not resolve an arm, a leg or a stand, and carried along it such a part comes off
    the object, and GrabCut drops it."""
    thin = thin_parts(before)
    if np.count_nonzero(thin) < THIN_PIXELS or not guess.any():
        return guess
    moved = carry_rigidly(thin, flow, guess, FLOW_BLUR)
    return guess if moved is None else guess | moved


def with_thin_colours(
    mask: np.ndarray, guess: np.ndarray, image: np.ndarray, models: ColourModels
) -> np.ndarray:
    """``mask`` (h, w) bool, GrabCut's cut of the first ``guess`` (h, w) bool on ``image``
    (h, w, 3) uint8, with what it dropped of the guess's parts narrower than
    2 * MOVING_PART + 1 pixels where ``models`` find the colours more likely the object's
    than the background's, in parts that touch the mask: GrabCut's edge term costs a thin
    part its whole border, so it drops parts of the object that colours alone would keep."""
    dropped = thin_parts(guess) & ~mask
    if not dropped.any():
        return mask
    dropped[dropped] = models.likelier_own(image[dropped])
    return keep_touching(mask | dropped, mask)


def with_thin_limbs(
    mask: np.ndarray, guess: np.ndarray, image: np.ndarray, models: ColourModels
) -> np.ndarray:
    """``mask`` (h, w) bool, GrabCut's cut of a keyframe's first ``guess`` (h, w) bool on
    ``image`` (h, w, 3) uint8, with the pixels of the guess it left out whose colours
    ``models`` find e ** THIN_COLOURS times likelier the object's than the background's,
    in parts narrower than 2 * MOVING_PART + 1 pixels that touch the cut: GrabCut's edge
    term costs a thin limb its whole border, and a limb left out on the keyframe is left
    out on every frame tracked from it (``with_thin_colours`` keeps only what the mask
    carried)."""
    left = guess & ~mask
    if not left.any():
        return mask
    left[left] = models.likelier_own(image[left], THIN_COLOURS)
    return keep_touching(mask | (thin_parts(mask | left) & left), mask)


def without_stray_parts(
    mask: np.ndarray, apart: np.ndarray | None, flow: np.ndarray | None, margin: int
) -> np.ndarray:
    """``mask`` (h, w) bool without its connected parts, other than the largest, whose
    pixels mostly move apart from the object: more than APART_MOTION from the motion
    fitted to the largest part (``flow`` (h, w, 2), the flow to the frame before,
    ``margin`` in from the largest part's border) while drawing away from it
    (``drawing_away``), or, where that flow is None, ``apart`` (h, w) bool (None: none
    are). A piece of the mask left on something else that moves its own way would else be
    followed instead of the object, and stay after the object has gone; the motion is the
    largest part's, as one fitted to the whole mask takes in two objects drifting apart."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(mask.view(np.uint8), connectivity=8)
    if count <= 2:
        return mask
    largest = 1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))
    residual = None
    if flow is not None:
        residual = object_residual(flow, labels == largest, margin)
        apart = None if residual is None else np.hypot(*residual) > APART_MOTION
    if apart is None:
        return mask
    share = np.bincount(labels[apart], minlength=count) / np.maximum(stats[:, cv2.CC_STAT_AREA], 1)
    stray = share > STRAY_APART
    stray[[0, largest]] = False
    if residual is not None and stray.any():
        gap = cv2.distanceTransform((labels != largest).view(np.uint8), cv2.DIST_L2, 5)
        for part in np.flatnonzero(stray):
            stray[part] = drawing_away(labels == part, gap, residual)
    return mask & ~stray[labels]


def drawing_away(
    part: np.ndarray, gap: np.ndarray, residual: tuple[np.ndarray, np.ndarray]
) -> bool:
    """Whether ``part`` (h, w) bool draws away from the object's largest part: its distance
    from it (``gap`` (h, w), each pixel's) is at least APART_MOTION more than on the frame
    before, where the part's motion relative to the largest part's (the median of
    ``residual``, (dx, dy) (h, w) each, the flow to the frame before less the largest
    part's motion) puts it. A limb moving its own way swings about its joint and stays as
    near, something else that moves its own way leaves. On synthetic clips that no report
    uses, the stray parts dropped drew away by 3.4 to 6.8 pixels a frame, walking figures'
    legs cut off from their torsos by GrabCut by 0.2 and 1.6 (one track's IoU 0.585 ->
    0.811; walking figures 0.799 -> 0.814; blobs, limbed objects and Big Buck Bunny within
    0.001 of what they were)."""
    rows, cols = np.nonzero(part)
    dx, dy = (float(np.median(r[part])) for r in residual)
    h, w = part.shape
    before_rows = np.clip(np.rint(rows + dy).astype(int), 0, h - 1)
    before_cols = np.clip(np.rint(cols + dx).astype(int), 0, w - 1)
    return bool(gap[part].min() - gap[before_rows, before_cols].min() >= APART_MOTION)
