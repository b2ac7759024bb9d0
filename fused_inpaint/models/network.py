"""The slim recurrent video inpainting network (SPEC 5), after VINet and PTFAN/TSAM.

One step inpaints the current frame of a window of K past and L future frames:

  per frame, once as it enters the window (cached):
      stem         gated convs, full and 1/2 resolution         (FrameFeatures)
      flow feature a light conv pyramid to 1/4 resolution
  per adjacent pair, once (cached):
      flow head    forward and backward flow, upsampled to full resolution,
                   trusted by fb_validity (with both frames' holes)   (PairFlows)
  per step, over the window:
      temporal_shift_align at 1/2 and 1/4 resolution, fed by the full-resolution flows
      ConvLSTM memory at the bottleneck (the current frame, carried across steps)
      decoder with skips; the previous output warped by flow_warp as feedback;
      it predicts a correction to a smooth pyramid fill of the current frame's hole
      -> the hole of the current frame: the next frame's known pixels and the previous
      output carried along the flow where it is consistent, the prediction elsewhere;
      composited so known pixels stay exact.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from fused_inpaint import nn as fnn
from fused_inpaint.ops import fb_validity, flow_warp, temporal_shift_align

# The network works on sizes divisible by this (callers pad, then crop).
SIZE_MULTIPLE = 8
# A neighbour's pixels fill the hole where, in this window around each pixel, the
# neighbour warped by the flow differs from the known pixels by less than this on average
# (images in [-1, 1]).
AGREEMENT_WINDOW, AGREEMENT_ERROR = 21, 0.08


class GatedConv2d(nn.Module):
    """Gated convolution (DeepFill v2): act(features) * sigmoid(gate), one conv for both."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, 2 * out_channels, kernel_size, stride, padding=kernel_size // 2
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features, gate = self.conv(x).chunk(2, dim=1)
        return F.elu(features) * torch.sigmoid(gate)


@dataclass
class FrameFeatures:
    """What a frame contributes to every window it is part of."""

    image: torch.Tensor  # (N, 3, H, W) in [-1, 1], holes zeroed
    hole: torch.Tensor  # (N, 1, H, W), 1 = hole
    full: torch.Tensor  # (N, C1, H, W)
    half: torch.Tensor  # (N, C2, H/2, W/2)
    flow_features: torch.Tensor  # (N, Cf, H/4, W/4)


@dataclass
class PairFlows:
    """Flows between adjacent frames a -> b of the window, at full resolution, in pixels."""

    forward: torch.Tensor  # (N, 2, H, W): a to b on a's grid
    backward: torch.Tensor  # (N, 2, H, W): b to a on b's grid
    valid_forward: torch.Tensor  # (N, 1, H, W) in {0, 1}
    valid_backward: torch.Tensor  # (N, 1, H, W)


@dataclass
class RecurrentState:
    """What a step hands to the next: the ConvLSTM memory and the last output."""

    memory: tuple[torch.Tensor, torch.Tensor] | None = None
    output: torch.Tensor | None = None  # (N, 3, H, W) in [-1, 1]


def halved(t: torch.Tensor, dim: int) -> torch.Tensor:
    """``t`` blurred by a normalised 3-tap box along ``dim`` (the ends average their
    in-frame taps) and halved there by 2-tap means (an odd end kept alone): per axis what
    ``avg_pool2d(avg_pool2d(t, 3, 1, 1, count_include_pad=False), 2, ceil_mode=True)``
    does, in slices, which on a CPU is five times faster than the pooling."""
    n = t.shape[dim]
    if n == 1:
        return t
    blurred = t.clone()
    blurred.narrow(dim, 1, n - 1).add_(t.narrow(dim, 0, n - 1))
    blurred.narrow(dim, 0, n - 1).add_(t.narrow(dim, 1, n - 1))
    blurred.div_(3)
    blurred.select(dim, 0).mul_(1.5)
    blurred.select(dim, n - 1).mul_(1.5)
    pairs = blurred.narrow(dim, 0, n - n % 2).unflatten(dim, (n // 2, 2))
    out = pairs.select(dim % t.ndim + 1, 0) + pairs.select(dim % t.ndim + 1, 1)
    out.mul_(0.5)
    return torch.cat([out, blurred.narrow(dim, n - 1, 1)], dim) if n % 2 else out


def smooth_fill(image: torch.Tensor, hole: torch.Tensor) -> torch.Tensor:
    """image: (N, C, H, W); hole: (N, 1, H, W), 1 = hole. The image with its hole filled
    smoothly by pull-push (Gortler et al., The Lumigraph): the known pixels are averaged
    down a pyramid of normalised 3x3 blurs and 2x reductions, then each level is filled
    from the coarser one where it has little support. Known pixels are kept exactly."""
    channels = image.shape[1]
    known = (1 - hole.float()).expand(image.shape[0], 1, *image.shape[-2:])
    level = torch.cat([image.float() * known, known], 1)  # values and support, pooled alike
    levels = []
    while min(level.shape[-2:]) > 1:  # down to 1 pixel: a loop fixed by the shape alone
        levels.append(level)
        level = halved(halved(level, -2), -1)  # rows first: the columns then halve half
    fill = level[:, :channels] / level[:, channels:].clamp_min(1e-30)
    # A bool hole's finest level takes each pixel's own value or the coarser fill: what
    # the blend below gives at support 1 or 0, without its full-size arithmetic.
    binary = hole.dtype == torch.bool and len(levels) > 0
    for level in reversed(levels[1:] if binary else levels):
        x, support = level[:, :channels], level[:, channels:]
        coarser = F.interpolate(fill, size=x.shape[-2:], mode="bilinear", align_corners=False)
        # A quarter of a pixel's neighbourhood known is enough to trust its own average.
        fill = torch.lerp(coarser, x / support.clamp_min(1e-30), (4 * support).clamp(max=1))
    if binary:
        coarser = F.interpolate(fill, size=image.shape[-2:], mode="bilinear", align_corners=False)
        fill = torch.where(hole, coarser, image.float())
    return fill.to(image.dtype)


def agreeing(carried: torch.Tensor, current: FrameFeatures, trust: torch.Tensor) -> torch.Tensor:
    """``trust`` (N, 1, H, W), kept only where ``carried`` (N, 3, H, W), a neighbour warped
    to the current frame, matches the current frame's known pixels around it: a flow that
    is consistent but wrong (too slow for fast real motion, say) must not copy pixels."""
    known = trust * (1 - current.hole)
    error = (carried - current.image).abs().mean(1, keepdim=True) * known
    size = AGREEMENT_WINDOW
    support = F.avg_pool2d(known, size, stride=1, padding=size // 2)
    error = F.avg_pool2d(error, size, stride=1, padding=size // 2) / support.clamp_min(1e-3)
    return trust * ((support > 0.05) & (error < AGREEMENT_ERROR)).to(trust.dtype)


class FlowHead(nn.Module):
    """Flow from frame a to frame b from their 1/4-resolution features, in full-res pixels."""

    def __init__(self, channels: int):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(2 * channels, 64, 3, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(64, 48, 3, padding=2, dilation=2), nn.LeakyReLU(0.1),
            nn.Conv2d(48, 32, 3, padding=4, dilation=4), nn.LeakyReLU(0.1),
            nn.Conv2d(32, 2, 3, padding=1),
        )  # fmt: skip

    def forward(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        coarse = self.net(torch.cat([a, b], dim=1)).float()  # flows stay float32
        # Predicted at 1/4 resolution in 1/4-resolution pixels: upsample, rescale.
        return 4.0 * F.interpolate(coarse, scale_factor=4, mode="bilinear", align_corners=False)


class SlimInpaintNet(nn.Module):
    """Recurrent multi-to-single-frame inpainting network; see the module docstring.

    ``past`` (K) and ``future`` (L) frames around the current one; L = 0 is online mode.
    The weights do not depend on the window, so it may change after training.
    """

    def __init__(self, past: int = 2, future: int = 1, width: int = 32, fold_div: int = 4):
        super().__init__()
        self.set_window(past, future)
        self.width, self.fold_div = width, fold_div
        c1, c2, c3 = width, 2 * width, 4 * width
        self.stem_full = GatedConv2d(4, c1, 5)
        self.stem_half = GatedConv2d(c1, c2, 3, stride=2)
        self.flow_features = nn.Sequential(
            nn.Conv2d(c2, c3, 3, stride=2, padding=1), nn.LeakyReLU(0.1),
            nn.Conv2d(c3, c3, 3, padding=1), nn.LeakyReLU(0.1),
        )  # fmt: skip
        self.flow_head = FlowHead(c3)
        self.enc_half = GatedConv2d(c2, c2)
        self.down = GatedConv2d(c2, c3, 3, stride=2)
        self.enc_quarter = GatedConv2d(c3, c3)
        self.memory = fnn.ConvLSTMCell(c3, c3, kernel_size=3)
        self.dec_quarter = GatedConv2d(c3 + c3, c3)
        self.dec_half = GatedConv2d(c3 + c2, c2)
        self.dec_full = GatedConv2d(c2 + c1, c1)
        # Feedback: the previous output warped to this frame, and where that warp is trusted.
        self.fuse = GatedConv2d(c1 + 5, c1)
        # The decoder corrects smooth_fill; starting at zero, an untrained decoder leaves it.
        self.to_residual = nn.Conv2d(c1, 3, 3, padding=1)
        nn.init.zeros_(self.to_residual.weight)
        nn.init.zeros_(self.to_residual.bias)

    def set_window(self, past: int, future: int) -> None:
        """K past and L future frames per step."""
        if not all(isinstance(v, int) and v >= 0 for v in (past, future)):
            raise ValueError(f"past and future must be integers >= 0, got {past!r}, {future!r}")
        self.past, self.future = past, future

    @property
    def config(self) -> dict[str, int]:
        """The constructor's arguments (what a weights file records)."""
        return {"past": self.past, "future": self.future, "width": self.width,
                "fold_div": self.fold_div}  # fmt: skip

    @property
    def window(self) -> int:
        return self.past + 1 + self.future

    def encode_frame(self, image: torch.Tensor, hole: torch.Tensor) -> FrameFeatures:
        """image: (N, 3, H, W) in [-1, 1]; hole: (N, 1, H, W), 1 = hole."""
        image = image * (1 - hole)
        full = self.stem_full(torch.cat([image, hole], dim=1))
        half = self.stem_half(full)
        return FrameFeatures(image, hole, full, half, self.flow_features(half))

    def flows(self, a: FrameFeatures, b: FrameFeatures) -> tuple[torch.Tensor, torch.Tensor]:
        """Forward (a to b, on a's grid) and backward flow between adjacent frames."""
        pair_a = torch.cat([a.flow_features, b.flow_features])
        pair_b = torch.cat([b.flow_features, a.flow_features])
        forward, backward = self.flow_head(pair_a, pair_b).chunk(2)
        return forward, backward

    def pair_flows(self, a: FrameFeatures, b: FrameFeatures) -> PairFlows:
        """Forward and backward flow between adjacent frames, and where each is trusted."""
        forward, backward = self.flows(a, b)
        valid_forward, valid_backward = fb_validity(
            forward.detach(), backward.detach(), source_mask=(a.hole, b.hole), both=True
        )
        return PairFlows(forward, backward, valid_forward, valid_backward)

    def step(
        self, frames: list[FrameFeatures], pairs: list[PairFlows], state: RecurrentState
    ) -> tuple[torch.Tensor, RecurrentState]:
        """Inpaints frame ``past`` of the window ``frames`` (len K + 1 + L, ``pairs`` the
        len - 1 flows between them). Returns the composited frame (N, 3, H, W) in [-1, 1]
        and the state for the next step."""
        predicted, memory = self.predict(frames, pairs, state)
        current = frames[self.past]
        fill = self.propagate(frames, pairs, state, predicted)
        output = current.image * (1 - current.hole) + fill * current.hole
        return output, RecurrentState(memory, output.detach())

    def propagate(
        self,
        frames: list[FrameFeatures],
        pairs: list[PairFlows],
        state: RecurrentState,
        predicted: torch.Tensor,
    ) -> torch.Tensor:
        """The fill of the current frame's hole, (N, 3, H, W): pixels carried along the
        flow from the next frame's known pixels, else from the previous output, wherever
        that flow is forward-backward consistent and the neighbour agrees with the known
        pixels around (``agreeing``); ``predicted`` where neither does."""
        candidates = []  # (carried, trust), the later taking precedence
        if state.output is not None and self.past > 0:
            to_previous = pairs[self.past - 1].backward.detach()
            # The previous output has no holes: consistency alone decides.
            trust = fb_validity(to_previous, pairs[self.past - 1].forward.detach())
            candidates.append((flow_warp(state.output, to_previous), trust))
        if self.future > 0:
            to_next = pairs[self.past]
            carried = flow_warp(frames[self.past + 1].image, to_next.forward.detach())
            candidates.append((carried, to_next.valid_forward))
        fill = predicted
        for carried, trust in candidates:
            carried, trust = carried.to(fill.dtype), trust.to(fill.dtype)
            fill = torch.lerp(fill, carried, agreeing(carried, frames[self.past], trust))
        return fill

    def predict(
        self, frames: list[FrameFeatures], pairs: list[PairFlows], state: RecurrentState
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``step`` before compositing: the whole predicted frame (N, 3, H, W) in [-1, 1]
        and the new ConvLSTM memory."""
        n = frames[0].image.shape[0]
        current = frames[self.past]

        def stack(tensors):  # per-frame (N, ...) -> (N, T, ...)
            return torch.stack(tensors, dim=1)

        flow_fw = stack([p.forward for p in pairs]) if pairs else None
        flow_bw = stack([p.backward for p in pairs]) if pairs else None
        valid_fw = stack([p.valid_forward for p in pairs]) if pairs else None
        valid_bw = stack([p.valid_backward for p in pairs]) if pairs else None

        def align(features: torch.Tensor) -> torch.Tensor:
            """TSAM over the window; features (T * N, C, h, w) in frame-major order."""
            if not pairs:
                return features
            x = features.unflatten(0, (len(frames), n)).transpose(0, 1)
            online = self.future == 0
            x = temporal_shift_align(
                x, None if online else flow_fw, flow_bw, None if online else valid_fw,
                valid_bw, fold_div=self.fold_div, causal=online,
            )  # fmt: skip
            return x.transpose(0, 1).flatten(0, 1)

        half = align(self.enc_half(torch.cat([f.half for f in frames])))
        quarter = align(self.enc_quarter(self.down(half)))
        here = slice(self.past * n, (self.past + 1) * n)
        h, c = self.memory(quarter[here], state.memory)

        x = self.dec_quarter(torch.cat([quarter[here], h], dim=1))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.dec_half(torch.cat([x, half[here]], dim=1))
        x = F.interpolate(x, scale_factor=2, mode="bilinear", align_corners=False)
        x = self.dec_full(torch.cat([x, current.full], dim=1))

        if state.output is None or self.past == 0:
            feedback = torch.zeros_like(current.image)
            trust = torch.zeros_like(current.hole)
        else:  # the previous output, warped along the flow from this frame to the last
            to_previous = pairs[self.past - 1]
            feedback = flow_warp(state.output, to_previous.backward)
            trust = to_previous.valid_backward.to(feedback.dtype)
        x = self.fuse(torch.cat([x, feedback * trust, trust, current.hole], dim=1))
        smooth = smooth_fill(current.image, current.hole)
        return (smooth + self.to_residual(x)).clamp(-1, 1), (h, c)
