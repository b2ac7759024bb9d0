"""The network run over a training clip, returning its losses (one module, so that
DistributedDataParallel sees a single forward)."""

from __future__ import annotations

import torch
from torch import nn

from fused_inpaint.models import RecurrentState, SlimInpaintNet
from fused_inpaint.train.losses import (
    LossWeights,
    flow_loss,
    reconstruction_losses,
    warping_loss,
)


class ClipObjective(nn.Module):
    """Runs ``network`` over every full window of a clip, carrying the recurrent state
    across steps when ``recurrent`` (else each step starts from an empty state, with no
    feedback and no memory), and weighs the losses."""

    def __init__(self, network: SlimInpaintNet, weights: LossWeights | None = None):
        super().__init__()
        self.network = network
        self.weights = weights or LossWeights()

    def forward(
        self, batch: dict[str, torch.Tensor], recurrent: bool, flow_only: bool = False
    ) -> dict[str, torch.Tensor]:
        """batch: the tensors of ``fused_inpaint.data.make_clip`` with a leading batch
        dimension, (N, T, ...). Returns the weighted ``loss`` and its unweighted parts.
        ``flow_only``: only the flow loss, with gradients for the flow branch alone (the
        stem it shares with the inpainting path stays as it is)."""
        net = self.network
        target = batch["target"] * 2 - 1
        holes = batch["holes"]
        length = target.shape[1]
        with torch.set_grad_enabled(torch.is_grad_enabled() and not flow_only):
            frames = [net.encode_frame(target[:, t], holes[:, t]) for t in range(length)]
        if flow_only:
            for frame in frames:
                frame.flow_features = net.flow_features(frame.half)
        pairs = [net.pair_flows(frames[t], frames[t + 1]) for t in range(length - 1)]

        parts = {"hole": [], "valid": [], "flow": [], "warp": []}
        for t in range(length - 1):
            parts["flow"].append(flow_loss(pairs[t].forward, batch["flow_forward"][:, t]))
            parts["flow"].append(flow_loss(pairs[t].backward, batch["flow_backward"][:, t]))
        if flow_only:
            flow = torch.stack(parts["flow"]).mean()
            return {"flow": flow, "loss": self.weights.flow * flow}
        state, previous = RecurrentState(), None
        for t in range(net.past, length - net.future):
            first, last = t - net.past, t + net.future  # the window, and the pairs within it
            predicted, memory = net.predict(frames[first : last + 1], pairs[first:last], state)
            hole_loss, valid_loss = reconstruction_losses(predicted, target[:, t], holes[:, t])
            parts["hole"].append(hole_loss)
            parts["valid"].append(valid_loss)
            fill = net.propagate(frames[first : last + 1], pairs[first:last], state, predicted)
            output = target[:, t] * (1 - holes[:, t]) + fill * holes[:, t]
            if previous is not None:
                parts["warp"].append(
                    warping_loss(
                        output, previous, batch["flow_backward"][:, t - 1],
                        batch["valid_backward"][:, t - 1],
                    )
                )  # fmt: skip
            if recurrent:
                state, previous = RecurrentState(memory, output.detach()), output
        losses = {k: torch.stack(v).mean() for k, v in parts.items() if v}
        losses["loss"] = sum(getattr(self.weights, k) * v for k, v in losses.items())
        return losses
