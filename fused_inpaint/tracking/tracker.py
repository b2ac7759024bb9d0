"""``Tracker``: objects' masks through a clip from keyframes, streaming in a bounded window.

On each keyframe a box or a rough mask becomes the object's mask by GrabCut (first
guess: the box or the mask; pixels that move like the background, from DIS flow to the
next frame, start on the background side, unless their colours are much likelier those
of the part that moves otherwise: a planted leg of a walking figure); the pixels of the
box the cut left out join it in parts as thin as a limb where their colours are much
likelier the object's (``with_thin_limbs``: GrabCut's edge term drops thin limbs). From
there the mask moves frame to frame along DIS flow (``flow_warp`` of the mask) and
GrabCut refines it in a band around where it landed, with the colour models carried
along, so that it follows the object's border without drifting off it or growing into
the background: the band is all it may take per frame, and pixels of the band that move
otherwise than the object (``motion``) are background for sure, while those of the mask
that move as the background does start on its side (as on a keyframe), so that
background the mask took in is dropped, not spread. A mask that shrinks to nearly
nothing (the object has left the frame or is hidden) ends there, nothing is left behind.
An object that went out over the frame's edge is looked for as it comes back
(``returning``): along the edges it went out by, a part of the colours it had when last
wholly inside the frame that moves in over the edge against the frame's motion and grows
from one frame to the next, as a thing coming in does, is cut by GrabCut and followed
again (colours alone found look-alikes as often as the object on synthetic clips:
another object of its texture, the black beyond a camera's view). An object hidden
inside the frame is not looked for: a keyframe where it is seen again finds it. On the
frame's edge an object going out is followed to its last pixels (those the flow at the
edge does not follow move on by the object's own motion; a cut that keeps only what lies
where that motion takes it is the object, however much it dropped), and a small mask
there that stops moving as the object did is what it left behind; where the mask reached
the edge, what lies between it and the edge starts on the object's side
(``reaching_the_edges``), so that an object half out of the frame is masked whole as it
comes back in. When GrabCut drops most of the mask at once, colour models learnt afresh
from the carried mask keep it when their cut looks as the object did (models carried
from frame to frame go stale), else only the object's own motion against the background
keeps it (carried by the flow), or its look. Pixels of the carried mask whose flow is
much nearer the object's motion than the background's stay whatever GrabCut says
(``kept``), and so do those of a keyframe's box (``with_moving_parts``): a part of the
object coloured like the background would else be dropped and stay visible; pixels of
the band beyond the flow's blur that move with the object start on its side
(``rejoining``), so that a part GrabCut dropped on an earlier frame can come back. A
part of the mask, apart from its largest, that moves its own way (otherwise than the
largest part: a motion fitted to the whole mask takes in two objects drifting apart) and
draws away from it is dropped (``without_stray_parts``): a neighbour of the object's
colours it took in would else be followed; a limb cut off by GrabCut swings about its
joint, as near as it was. Parts narrower than the flow resolves (an arm, a leg, a stand)
move by the object's own motion too (``with_thin_parts``), and where GrabCut drops them
their colours keep them (``with_thin_colours``). An object whose colours GrabCut cannot
tell apart on its keyframe (it keeps under a COLLAPSE share of the part of the box that
moves away from the background as the object does, or, where nothing does, of half the
box) is told apart by its motion: that part (``moving_with``; the box when nothing
moves), moved frame to frame by its own motion fitted to the flow (``carry_rigidly``),
until it neither moves apart from the background nor looks as it did.

The cues beyond GrabCut's colours (motion, edges, thin and stray parts) live in ``cues``,
how a window is scaled and how motion is fitted in ``motion``, GrabCut and its colour
models in ``segment``, what tells an object coming back in ``returning``.

Each keyframe tracks forward and backward; each frame takes every object's mask from the
nearer keyframe that names it (the earlier one on a tie). Backward tracking reaches at
most ``window`` frames before a keyframe: frames farther back take the earlier keyframe's
mask, or none. Memory holds the frames of that window at the working scale, never the
video, and a mask comes out at most ``window + 2`` frames after its frame was read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass

import cv2
import numpy as np

from fused_inpaint.io import dilate_hole
from fused_inpaint.tracking.cues import (
    background_side,
    kept,
    reaching_the_edges,
    rejoining,
    with_moving_parts,
    with_thin_colours,
    with_thin_limbs,
    with_thin_parts,
    without_stray_parts,
)
from fused_inpaint.tracking.keyframes import Box, as_keyframes, check_size
from fused_inpaint.tracking.motion import (
    APART_MOTION,
    DISTINCT_MOTION,
    INTERIOR_PIXELS,
    KEY_VIEW_PIXELS,
    SAME_MOTION,
    TRACK_VIEW_PIXELS,
    WORK_SIDE,
    Flow,
    View,
    background_distance,
    carry,
    carry_rigidly,
    distance_from_background,
    mask_from_work,
    mask_to_work,
    moving_with,
    object_distance,
    search_window,
    to_work,
    work_size,
)
from fused_inpaint.tracking.returning import (
    COMING_GROWTH,
    Inside,
    coming_in,
    coming_reach,
    textured,
)
from fused_inpaint.tracking.segment import (
    FLOW_BLUR,
    MIN_SAMPLES,
    ColourModels,
    band_width,
    grabcut,
    grow,
)

# Pixels the masks are grown by (io.dilate_hole) on frames whose longer side is
# DILATE_SIDE, chosen on synthetic clips (bench_tracking): a mask that hugs the object
# leaves its blurred border (a halo) in the video, and a part the track misses stays; a
# wider hole is harder to fill. The removal's PSNR in the object's region was within 1 dB
# of the exact masks' grown as much on every clip at 4 and at 6 (since a planted leg keeps
# the object's side, one clip's track misses a part of its object, 1.8 dB below at both);
# 6, as filmed objects' borders (motion blur, focus) are softer than the synthetic ones',
# and a track on footage it was not designed on is less exact. Tracking works at a fixed
# scale, so its error at the border grows with the frames: larger frames get the same
# share of their longer side.
DEFAULT_DILATE = 6
DILATE_SIDE = 432
DEFAULT_DILATE_TEXT = (
    f"{DEFAULT_DILATE} per {DILATE_SIDE} pixels of the frames' longer side, "
    f"at least {DEFAULT_DILATE}"
)
DEFAULT_WINDOW = 100
# A tracked mask ends when it shrinks below this fraction of its keyframe's area, unless it
# reaches the frame's edge: an object going out of the frame is followed to its last pixels.
END_FRACTION = 0.02
# A mask on the frame's edge under this fraction of its keyframe's area is what the object
# left behind when it no longer moves as the object did, or when the object's own motion
# took all of it out of the frame (``left_behind``).
LEFT_FRACTION = 0.1
# It no longer moves as the object did when its motion apart from the background's falls at
# once below this share of the frame before's: an object going out slowly fades gradually
# (a design clip: 1.50 to 1.31 pixels, and still there), slivers left behind stop (2.1 to
# 0.1, 2.2 to 0.7, 4.8 to 0.8). Where the flow at the edge follows an object poorly, its
# motion apart can fall as fast (1.7 to 0.8) and it is dropped as before.
STOPPED_SHARE = 0.5
# On a keyframe GrabCut's mask is taken only when it keeps at least this fraction of
# what the object is thought to be: the part of the box that moves away from the
# background as it does, or, where motion tells nothing, a BOX_FILL share of the first
# guess, as a thin object fills little of its box (synthetic limbed objects 0.29 to 0.6
# of a box drawn exactly around them, a box drawn by hand is looser). On synthetic
# limbed objects that no report uses, two keyframes whose cut was right (IoU 0.85 and
# 1.0) kept under COLLAPSE of the box and were replaced by the part that moves, blurred
# by the flow, or by the box: their tracks' IoU rose from 0.60 and 0.57 to 0.73 and
# 0.68, those of five other sets as they were.
COLLAPSE = 0.3
BOX_FILL = 0.5
# On a tracked frame GrabCut's mask is taken only when it keeps at least this fraction of
# the mask carried along the flow: a filmed object loses no more in a frame but where it is
# hidden or leaves, which the other cues tell (colour models learnt afresh, its own motion,
# its look). Where part of an object stops while the rest moves, that part starts on the
# background's side, and where the band around holds its colours GrabCut dropped most of
# the object (Big Buck Bunny's bunny coming out of its burrow, tracked backward from a box:
# 0.32 of its mask kept, and from there its head alone). Against COLLAPSE, on synthetic
# clips that no report uses: walking figures 0.814 -> 0.839 (a torso of the background's
# colours 0.20 -> 0.60), limbed objects 0.834 -> 0.835 and 0.770 -> 0.767, blobs 0.935 ->
# 0.934, objects over Big Buck Bunny 0.913 -> 0.912.
TRACK_COLLAPSE = 0.5
# On a keyframe the object moves otherwise than the background when this share of its
# first guess does: a thin object fills as little as 0.29 of a box drawn exactly around
# it, and the median over the box was the background's motion (a limbed object filling
# 0.38 of its box, moving 2 to 3 pixels a frame against the background: its motion was
# read as nothing, and the cut by colours alone kept IoU 0.68 through its track, 0.90
# with). Chosen on synthetic limbed clips that no report uses (two sets, 0.761 to 0.770
# and 0.830 to 0.834, no clip lower); blobs' and walking figures' tracks as they were.
KEY_MOVING_SHARE = 0.3
# A cut on the frame's edge that keeps less than TRACK_COLLAPSE of the guess is still the
# object going out when this share of it lies where the object's own motion takes it: on a
# design clip an object's last 50 pixels going out, cut exactly, lay all but one there.
GOING_SHARE = 0.9
# An object's look: its mean colour (0-255), averaged over the frames GrabCut cut it on
# with this weight on the newest. Where GrabCut loses an object, it is still there when
# the pixels it was carried to look like it within LOOK_CHANGE on every channel.
LOOK_RATE = 0.2
LOOK_CHANGE = 20


def default_dilate(size: tuple[int, int]) -> int:
    """Pixels the masks of frames of ``size`` (H, W) are grown by unless told: DEFAULT_DILATE
    per DILATE_SIDE pixels of the longer side, never fewer than DEFAULT_DILATE."""
    return max(DEFAULT_DILATE, round(DEFAULT_DILATE * max(size) / DILATE_SIDE))


def shifted(mask: np.ndarray, shift: np.ndarray) -> np.ndarray:
    """``mask`` (h, w) bool moved by ``shift`` (dx, dy) pixels, what leaves the frame lost."""
    move = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float32)
    moved = cv2.warpAffine(mask.view(np.uint8), move, mask.shape[::-1], flags=cv2.INTER_NEAREST)
    return moved.view(bool)


def going_out(cut: np.ndarray, going_on: np.ndarray | None) -> bool:
    """Whether GrabCut's ``cut`` (h, w) bool of the view is what is left of an object going
    out of the frame: at least MIN_SAMPLES pixels, GOING_SHARE of them within ``going_on``
    (the object's mask moved on by its own motion, (h, w) bool at the view's scale; None
    off the edge or when that motion is not known) grown by the band (``band_width``).
    Such an object loses more of its pixels a frame than a cut that keeps it may drop, and
    what the cut drops is what it left behind."""
    if going_on is None:
        return False
    inside = np.count_nonzero(cut & grow(going_on, band_width(going_on)))
    return inside >= max(MIN_SAMPLES, GOING_SHARE * np.count_nonzero(cut))


def looks_alike(pixels: np.ndarray, look: np.ndarray) -> bool:
    """Whether ``pixels`` (n, 3) uint8 have a mean colour within LOOK_CHANGE of ``look``
    (3,) on every channel."""
    return bool((np.abs(pixels.mean(axis=0) - look) < LOOK_CHANGE).all())


def _count(name: str, value, allow_none: bool = False) -> int | None:
    if value is None and allow_none:
        return None
    if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}")
    return int(value)


def _as_frame(frame, index: int, size: tuple[int, int] | None) -> np.ndarray:
    if hasattr(frame, "detach"):  # a torch tensor
        frame = frame.detach().cpu().numpy()
    frame = np.asarray(frame)
    if frame.ndim != 3 or frame.shape[2] != 3 or frame.dtype != np.uint8:
        raise ValueError(
            f"frame {index} must be uint8 of shape (H, W, 3), got {frame.dtype} {frame.shape}"
        )
    if size is not None and frame.shape[:2] != size:
        raise ValueError(f"frame {index} has size {frame.shape[:2]}, the first {size}")
    return frame


def _box_mask(box: Box, full: tuple[int, int], size: tuple[int, int]) -> np.ndarray:
    """(h, w) bool: the box (x, y, w, h) in frames of ``full`` (H, W) at working ``size``."""
    sy, sx = size[0] / full[0], size[1] / full[1]
    x, y, w, h = box
    x0, y0 = int(x * sx), int(y * sy)
    x1, y1 = max(x0 + 1, round((x + w) * sx)), max(y0 + 1, round((y + h) * sy))
    mask = np.zeros(size, bool)
    mask[y0:y1, x0:x1] = True
    return mask


@dataclass
class _Track:
    """One object followed from a keyframe: its mask on the frame last reached (working
    scale), its colour models and whether they tell it apart, its keyframe's area, the
    last frame it owns, and its look."""

    mask: np.ndarray
    models: ColourModels
    colour: bool  # whether colours told the object apart on the keyframe
    key_area: int
    until: int
    look: np.ndarray  # (3,) float: its mean colour (LOOK_RATE)
    inside: Inside  # as it was when last wholly inside the frame
    # The median distance of its motion from the background's on the last frame, when it
    # moved otherwise (else 0).
    apart: float = 0.0
    shift: np.ndarray | None = None  # (2,) float: its last motion (dx, dy) the flow followed
    going: bool = False  # whether it went out of the frame on the last frame
    # Whether ``relearnt`` may try models learnt afresh: where the object's colours are the
    # background's every cut drops it, and each try costs what a keyframe's cut does.
    relearn: bool = True
    # The frame's edges (top, bottom, left, right) its mask reached on the last frame.
    exits: tuple[bool, ...] = (False,) * 4
    out: bool = False  # whether it went out of the frame (looked for as it comes back)
    coming: int = 0  # the pixels of what may be it coming back on the last frame looked at

    def came_back(self, mask: np.ndarray, models: ColourModels, look: np.ndarray) -> None:
        """Follows the object again from ``mask`` (h, w) bool, working scale, cut with
        ``models`` and of ``look``, where it came back into the frame."""
        self.mask, self.models, self.look = mask, models, look
        self.out = self.going = False
        self.apart, self.shift, self.relearn, self.coming = DISTINCT_MOTION, None, True, 0

    def relearnt(
        self,
        image: np.ndarray,
        first: np.ndarray,
        unlike: np.ndarray | None,
        apart: np.ndarray | None,
        least: float,
    ) -> np.ndarray | None:
        """GrabCut's cut of ``first`` (h, w) bool on ``image`` (h, w, 3) uint8 by colour
        models learnt afresh (``unlike``, ``apart``: as ``grabcut``'s), where the carried
        ones dropped the object: when it keeps ``least`` pixels and looks as the object did,
        its models stand from then on and it is returned; else None, and none is tried again
        until a cut with the carried models keeps the object (``relearn``)."""
        if not self.relearn:
            return None
        cut, models = grabcut(image, first, unlike, None, apart)
        self.relearn = bool(cut.sum() >= least and looks_alike(image[cut], self.look))
        if not self.relearn:
            return None
        self.models = models
        return cut

    def left_behind(
        self, moving: bool, stopped: bool, area: float, edge: bool, going_on: np.ndarray | None
    ) -> bool:
        """Whether what is carried of the object, ``area`` working pixels, on the frame's
        ``edge`` or not, is what it left behind as it went out of the frame: on the edge,
        shrunk below LEFT_FRACTION of its keyframe's area, it does not move otherwise than
        the background (not ``moving``), and either did on the frame before and then
        ``stopped`` (its motion apart fell below STOPPED_SHARE of that frame's at once), or
        the object's own motion took all of its last mask out of the frame (``going_on``:
        that mask moved on by it, None when unknown). The flow's blur at the edge as the
        object left, on something of its colours, would else be followed for good: a
        sliver that had stopped moving its own way before the object went out stayed six
        frames after. An object going out slowly, whose motion apart fades below what tells
        it (1.5 pixels) bit by bit, is still there."""
        if not edge or moving or area >= LEFT_FRACTION * self.key_area:
            return False
        return (self.apart > 0 and stopped) or (going_on is not None and not going_on.any())


class Tracker:
    """Tracks objects from keyframes through a clip.

    ``keyframes``: {frame index: objects}, objects being a box (x, y, w, h) in pixels, an
    (H, W) rough mask (nonzero on the object), a list of them (object i is the i-th) or a
    dict {object id: box or mask}; an id on several keyframes is one object. ``dilate``:
    pixels each mask is grown by (None: ``default_dilate`` of the frames' size).
    ``window``: the farthest, in frames, a keyframe tracks backward (None: the whole clip,
    in memory). ``work_side``: the longer side, in pixels,
    of the frames tracking works on. ``dis_preset``: DIS's preset. ``motion``: use the
    object's motion against the background as a cue, besides colour.

    ``stream(frames)`` yields one (H, W) bool mask per frame (the objects' union);
    ``stream_objects(frames)`` one (N, H, W) bool per frame, objects in ``objects`` order.
    """

    def __init__(
        self,
        keyframes: Mapping,
        *,
        dilate: int | None = None,
        window: int | None = DEFAULT_WINDOW,
        work_side: int = WORK_SIDE,
        dis_preset: str = "medium",
        motion: bool = True,
    ) -> None:
        self.keyframes = as_keyframes(keyframes)
        self.objects = sorted(set().union(*self.keyframes.values()))
        self.dilate = _count("dilate", dilate, allow_none=True)
        self.window = _count("window", window, allow_none=True)
        self.work_side = _count("work_side", work_side)
        if self.work_side < 32:
            raise ValueError(f"work_side must be at least 32 pixels, got {work_side}")
        self.motion = bool(motion)
        self.dis_preset = dis_preset
        Flow(dis_preset)  # checks the preset now
        self._spans = {obj: self._spans_of(obj) for obj in self.objects}

    @property
    def latency(self) -> int | None:
        """Frames read ahead of the mask ``stream`` yields next, at most (a keyframe is
        segmented once the frame after it is read)."""
        return None if self.window is None else self.window + 2

    def _spans_of(self, obj: int) -> dict[int, tuple[int, float]]:
        """keyframe -> (first, last) frame whose mask of ``obj`` it gives: the frames
        nearer to it than to the object's other keyframes, backward within the window."""
        keys = [k for k, objects in self.keyframes.items() if obj in objects]
        reach = self.window if self.window is not None else float("inf")
        firsts = []
        for i, key in enumerate(keys):
            first = 0 if i == 0 else (keys[i - 1] + key) // 2 + 1
            firsts.append(int(max(first, key - reach)))
        lasts = [nxt - 1 for nxt in firsts[1:]] + [float("inf")]
        return {key: (first, last) for key, first, last in zip(keys, firsts, lasts, strict=True)}

    def stream(self, frames: Iterable) -> Iterator[np.ndarray]:
        """Yields each frame's mask, (H, W) bool: the union of the objects' masks."""
        for masks in self.stream_objects(frames):
            yield masks.any(axis=0)

    def stream_objects(self, frames: Iterable) -> Iterator[np.ndarray]:
        """Yields each frame's masks, (N, H, W) bool, one per object of ``objects``."""
        run = _Run(self)
        index = -1
        for index, frame in enumerate(frames):
            run.read(index, _as_frame(frame, index, run.size))
            yield from run.finished(index)
        if index < 0:
            raise ValueError("frames is empty: there is no frame to track")
        past = [k for k in self.keyframes if k > index]
        if past:
            raise ValueError(f"keyframe {past[0]} is past the end of the clip ({index + 1} frames)")
        run.end(index)
        yield from run.finished(None)


class _Run:
    """One pass of a Tracker over a clip: the frames held, their masks so far, the
    objects tracked forward."""

    def __init__(self, tracker: Tracker):
        self.tracker = tracker
        self.flow = Flow(tracker.dis_preset)
        self.size: tuple[int, int] | None = None
        self.work: tuple[int, int] | None = None
        self.held: dict[int, np.ndarray] = {}  # frames at the working scale
        self.masks: dict[int, dict[int, np.ndarray]] = {}  # frame -> object -> mask
        self.forward: dict[int, _Track] = {}
        self.last = -1
        self.reach = 0  # pixels the masks are grown by

    def read(self, index: int, frame: np.ndarray) -> None:
        if self.size is None:
            self.size = frame.shape[:2]
            check_size(self.tracker.keyframes, self.size)
            self.work = work_size(self.size, self.tracker.work_side)
            reach = self.tracker.dilate
            self.reach = default_dilate(self.size) if reach is None else reach
        self.held[index] = to_work(frame, self.work)
        self.masks[index] = {}
        self.last = index
        if index - 1 in self.tracker.keyframes:
            self.start(index - 1, index)
        if index >= 1 and self.forward:
            self.step_forward(index)

    def end(self, last: int) -> None:
        if last in self.tracker.keyframes:
            self.start(last, last - 1 if last >= 1 else None)

    def first_guess(self, hint) -> np.ndarray:
        if isinstance(hint, np.ndarray):
            return mask_to_work(hint, self.work)
        return _box_mask(hint, self.size, self.work)

    def start(self, key: int, neighbour: int | None) -> None:
        """Segments the objects of keyframe ``key`` (the motion cue from the flow to
        frame ``neighbour``), starts their forward tracks and tracks them backward."""
        backward = {}
        for obj, hint in self.tracker.keyframes[key].items():
            full_guess = self.first_guess(hint)
            view = View.of(search_window(full_guess), KEY_VIEW_PIXELS)
            frame, guess = view.frame(self.held[key]), view.down(full_guess)
            flow = distance = to_object = None
            band = band_width(guess)
            if neighbour is not None and self.tracker.motion:
                flow = self.flow(frame, view.frame(self.held[neighbour]))
                distance = background_distance(flow, guess, band, share=KEY_MOVING_SHARE)
                if distance is not None:  # else motion tells nothing, and is not read
                    to_object = object_distance(flow, guess, band)
            unlike = background_side(frame.rgb, guess, distance)
            mask, models = grabcut(frame.rgb, guess, unlike, None)
            moving = moving_with(guess, band, distance, to_object, KEY_MOVING_SHARE)
            few = moving is None or moving.sum() < MIN_SAMPLES
            colour = mask.sum() >= COLLAPSE * (BOX_FILL * guess.sum() if few else moving.sum())
            if colour:
                mask = with_thin_limbs(mask, guess, frame.rgb, models)
                if flow is not None:
                    mask = with_moving_parts(mask, guess, distance, to_object)
                mask = view.up(mask, self.work)
            else:
                # Colours cannot tell the object apart: its motion may, else the guess is it.
                mask = full_guess if few else view.up(moving, self.work)
            self.masks[key][obj] = mask
            first, last = self.tracker._spans[obj][key]
            area = int(mask.sum())
            pixels = self.held[key][mask]
            look, inside = pixels.mean(axis=0), Inside.of(models, pixels)
            if last > key:
                self.forward[obj] = _Track(mask, models, colour, area, last, look, inside)
            if first < key:
                backward[obj] = _Track(
                    mask, models.copy(), colour, area, first, look.copy(), inside
                )
        self.step_backward(key, backward)

    def step(self, track: _Track, frame: np.ndarray, before: np.ndarray) -> np.ndarray | None:
        """The track's mask on ``frame``, the frame after ``before`` in its direction; None
        when the object is not there. One that went out of the frame is looked for along
        its edges (``coming_back``) until its track ends."""
        if track.out:
            return self.coming_back(track, frame, before)
        mask = self.follow(track, frame, before)
        track.out = mask is None and any(track.exits) and track.colour
        return mask

    def follow(self, track: _Track, frame: np.ndarray, before: np.ndarray) -> np.ndarray | None:
        """The track's mask on ``before`` moved to ``frame`` along the flow between them
        and refined; None when the object has gone. Only a window around the mask,
        as far as the object may have moved, is looked at."""
        if track.going:
            return None
        view = View.of(search_window(track.mask), TRACK_VIEW_PIXELS)
        frame = view.frame(frame)
        flow = self.flow(frame, view.frame(before))
        before_mask = view.down(track.mask)
        guess = carry(before_mask, flow)
        if track.colour:
            guess = with_thin_parts(guess, before_mask, flow)
        least = MIN_SAMPLES
        track.exits = view.edges_reached(guess | before_mask, self.work)
        edge = any(track.exits)
        if not edge:
            least = max(least, END_FRACTION * track.key_area)
        if view.area(guess) < least:
            return None
        mask = guess
        if not track.colour and self.tracker.motion:
            # Motion alone tells this object apart: its keyframe's shape moves with it (the
            # flow's blur at its border would else grow it, frame by frame, into what is
            # around it), until it neither moves apart from the background nor looks as it
            # did (a shape carried over a still background after the object has left).
            moved = carry_rigidly(before_mask, flow, guess, FLOW_BLUR)
            mask = guess if moved is None else moved
            if view.area(mask) < least:
                return None
            moving = background_distance(flow, mask, band_width(mask)) is not None
            if not moving and not looks_alike(frame.rgb[mask], track.look):
                return None
        if track.colour:
            apart = distance = to_object = None
            going_on = seen_going_on = None  # the mask moved on by the object's own motion
            if edge and track.shift is not None:
                going_on = shifted(track.mask, track.shift)
                seen_going_on = view.down(going_on)
            if self.tracker.motion:
                band = band_width(guess)
                to_object = object_distance(flow, guess, band)
                apart = None if to_object is None else to_object > APART_MOTION
                # One fit of the background's motion tells both whether the guess moves
                # apart from it and whether its motion apart stopped at once.
                distance = distance_from_background(flow, guess, band)
                median = None if distance is None else float(np.median(distance[guess]))
                moving = median is not None and median >= DISTINCT_MOTION
                least = max(SAME_MOTION, STOPPED_SHARE * track.apart)
                stopped = edge and not moving and (median is None or median < least)
                if track.left_behind(moving, stopped, view.area(guess), edge, going_on):
                    return None
                track.apart = median if moving else 0.0
                distance = distance if moving else None  # else motion tells nothing
            first = guess | rejoining(guess, distance, to_object)
            if edge:
                first = reaching_the_edges(first, before_mask, view.edges(self.work))
            # Pixels that move like the background start on its side, as on a keyframe:
            # background the mask took in (on the keyframe, or growing by the band) is
            # learnt as the background's and dropped, instead of spreading frame by frame.
            # Where colours say otherwise (a planted leg), they keep the object's side.
            unlike = background_side(frame.rgb, guess, distance)
            mask, models = grabcut(frame.rgb, first, unlike, track.models.copy(), apart)
            expected = guess.sum()
            if seen_going_on is not None:
                # Going out, the object loses more to the edge than the flow there says.
                expected = max(min(expected, seen_going_on.sum()), MIN_SAMPLES)
            enough = TRACK_COLLAPSE * expected  # what a cut must keep to be taken
            if mask.sum() >= enough or going_out(mask, seen_going_on):
                track.models, track.relearn = models, True
                pixels = frame.rgb[mask]
                if not edge:
                    track.inside = Inside.of(models, pixels)
                seen = pixels.mean(axis=0)
                track.look = (1 - LOOK_RATE) * track.look + LOOK_RATE * seen
                if distance is not None and not edge:  # the flow follows the object whole
                    track.shift = -np.median(flow[mask], axis=0) / view.scale
            else:
                # GrabCut dropped most of the guess at once: the object has gone (left, or
                # hidden by something else), or GrabCut lost it against a background of
                # its colours, or its colour models, carried from frame to frame, went
                # stale (an object of 400 pixels over dark letters was cut to nothing by
                # the models of the frame before, and whole by models learnt afresh).
                # Models learnt afresh from the guess keep it when their cut looks as the
                # object did, and stand from then on; else the object's own motion keeps
                # it (the guess less what moves like the background), or its look (what
                # hides it looks otherwise).
                fresh = track.relearnt(frame.rgb, first, unlike, apart, enough)
                if (
                    fresh is None
                    and distance is None
                    and not looks_alike(frame.rgb[guess], track.look)
                ):
                    if going_on is None:
                        return None
                    # What is left of an object going out of the frame, a few pixels that
                    # the flow at the edge does not follow: it moves on as it did, for this
                    # frame only (it would stay in the video), and ends.
                    track.going = True
                    track.mask = going_on
                    return track.mask if track.mask.any() else None
                held = guess if unlike is None else guess & ~unlike
                mask = held if fresh is None else held | fresh
            mask |= kept(guess, distance, to_object)
            if not edge:  # on the edge, what GrabCut drops may be what the object left
                mask = with_thin_colours(mask, guess, frame.rgb, track.models)
            # Off the edge the parts are judged by the largest part's motion; going out, the
            # object breaks into pieces the flow at the edge does not follow, and the whole
            # guess's motion (``apart``) judges them.
            by_largest = flow if self.tracker.motion and not edge else None
            mask = without_stray_parts(mask, apart, by_largest, band_width(mask))
            if not mask.any():  # all of it moved as the background does
                return None
        track.mask = view.up(mask, self.work)
        return track.mask

    def coming_back(
        self, track: _Track, frame: np.ndarray, before: np.ndarray
    ) -> np.ndarray | None:
        """The mask of an object that went out of the frame, on ``frame`` as it comes back
        in: a part along the edges of its colours that moves otherwise than the frame, from
        ``before`` (``coming_in``, on the whole frame scaled down as a track's window is),
        that also moves otherwise than what is around it and looks as the object did, cut
        by GrabCut with its models; None when there is none."""
        whole = View.of((slice(0, self.work[0]), slice(0, self.work[1])), TRACK_VIEW_PIXELS)
        seen = whole.frame(frame)
        flow = self.flow(seen, whole.frame(before))
        reach = round(coming_reach(track.key_area) * whole.scale)
        least = max(INTERIOR_PIXELS, END_FRACTION * track.key_area) * whole.scale**2
        found = coming_in(seen.rgb, flow, track.inside, track.exits, reach, least)
        before_area, track.coming = track.coming, 0 if found is None else int(found.sum())
        if found is None or track.coming < COMING_GROWTH * before_area or not before_area:
            return None
        found = whole.up(found, self.work)
        view = View.of(search_window(found), TRACK_VIEW_PIXELS)
        seen = view.frame(frame)
        part = view.down(found)
        flow = self.flow(seen, view.frame(before))
        distance = background_distance(flow, part, band_width(part))
        if distance is None:
            return None
        unlike = background_side(seen.rgb, part, distance)
        mask, models = grabcut(seen.rgb, part, unlike, track.inside.models.copy())
        # No share of the part is asked of the cut: over a flat sky, where DIS spreads the
        # motion of what comes in, the part was four times the object, and the cut exact.
        if (
            mask.sum() < MIN_SAMPLES
            or not track.inside.looks_alike(seen.rgb[mask])
            or not textured(seen.gray, mask)
        ):
            return None
        track.came_back(view.up(mask, self.work), models, seen.rgb[mask].mean(axis=0))
        return track.mask

    def step_forward(self, index: int) -> None:
        for obj, track in list(self.forward.items()):
            mask = None
            if index <= track.until:
                mask = self.step(track, self.held[index], self.held[index - 1])
            if index > track.until or (mask is None and not track.out):
                del self.forward[obj]
            elif mask is not None:
                self.masks[index][obj] = mask

    def step_backward(self, key: int, tracks: dict[int, _Track]) -> None:
        index = key - 1
        while tracks:
            for obj, track in list(tracks.items()):
                mask = None
                if index >= track.until:
                    mask = self.step(track, self.held[index], self.held[index + 1])
                if index < track.until or (mask is None and not track.out):
                    del tracks[obj]
                elif mask is not None:
                    self.masks[index][obj] = mask
            index -= 1

    def finished(self, read: int | None) -> Iterator[np.ndarray]:
        """Yields the masks of the frames that no keyframe still to come can change
        (all when ``read`` is None: the clip has ended), and forgets those frames."""
        window = self.tracker.window
        coming = [k for k in self.tracker.keyframes if read is not None and k >= read]
        for index in sorted(self.masks):
            if coming and (window is None or coming[0] - index <= window):
                break
            yield self.full_size(self.masks.pop(index))
            if index != self.last:  # the last frame read is the next forward step's
                del self.held[index]

    def full_size(self, masks: dict[int, np.ndarray]) -> np.ndarray:
        """(N, H, W) bool: the frame's object masks at the frames' size, dilated."""
        out = np.zeros((len(self.tracker.objects), *self.size), bool)
        for i, obj in enumerate(self.tracker.objects):
            if obj in masks:
                out[i] = dilate_hole(mask_from_work(masks[obj], self.size), self.reach)
        return out
