"""Drop-in replacements with the exact signatures of the peers' composites (SPEC 3.6)."""

from __future__ import annotations

import torch

from fused_inpaint import nn as _nn
from fused_inpaint.ops import fb_validity as _fb_validity
from fused_inpaint.ops import flow_warp as _flow_warp
from fused_inpaint.ops import temporal_shift as _temporal_shift

__all__ = ["ConvLSTM", "fb_consistency_check", "flow_warp", "tsm_shift"]


def flow_warp(
    x: torch.Tensor,
    flow: torch.Tensor,
    interpolation: str = "bilinear",
    padding_mode: str = "zeros",
    align_corners: bool = True,
) -> torch.Tensor:
    """mmagic's / BasicVSR's ``flow_warp``: x (N, C, H, W), flow (N, H, W, 2) -> (N, C, H, W).

    Same results as their meshgrid + ``grid_sample`` composite for H, W >= 2 (for a single
    row or column their grid degenerates; this keeps the pixel formula), in one fused pass.
    """
    if not isinstance(flow, torch.Tensor) or flow.dim() != 4 or flow.size(3) != 2:
        shape = tuple(flow.shape) if isinstance(flow, torch.Tensor) else type(flow).__name__
        raise ValueError(f"flow must be a (N, H, W, 2) tensor, got {shape}")
    if x.size()[-2:] != flow.size()[1:3]:
        raise ValueError(
            f"The spatial sizes of input ({x.size()[-2:]}) and flow ({flow.size()[1:3]}) "
            "are not the same."
        )
    return _flow_warp(
        x,
        flow.permute(0, 3, 1, 2),
        mode=interpolation,
        padding_mode=padding_mode,
        align_corners=align_corners,
    )


def fb_consistency_check(
    flow_fw: torch.Tensor, flow_bw: torch.Tensor, alpha1: float = 0.01, alpha2: float = 0.5
) -> torch.Tensor:
    """ProPainter's ``fbConsistencyCheck``: flows (N, 2, H, W) -> (N, 1, H, W) mask, 1 =
    consistent, in flow_fw's dtype; one fused pass instead of a warp and six kernels."""
    return _fb_validity(flow_fw, flow_bw, alpha=alpha1, beta=alpha2, check_bounds=False)


def tsm_shift(x_nt: torch.Tensor, n_segment: int, fold_div: int = 8) -> torch.Tensor:
    """TSM's ``TemporalShift.shift`` in its (N*T, C, H, W) layout, same layout out."""
    if not isinstance(x_nt, torch.Tensor) or x_nt.dim() != 4:
        raise ValueError("x_nt must be a (N*T, C, H, W) tensor")
    if not isinstance(n_segment, int) or n_segment < 1 or x_nt.shape[0] % n_segment:
        raise ValueError(
            f"n_segment must divide the batch of x_nt ({x_nt.shape[0]}), got {n_segment!r}"
        )
    x = x_nt.unflatten(0, (x_nt.shape[0] // n_segment, n_segment))
    return _temporal_shift(x, fold_div=fold_div).flatten(0, 1)


def _per_layer(param, num_layers: int) -> list:
    return param if isinstance(param, list) else [param] * num_layers


class ConvLSTM(torch.nn.Module):
    """The most used PyTorch ConvLSTM's module (ndrplz/ConvLSTM_pytorch), on the fused cell.

    Same signature, argument checks, parameters (``cell_list.{i}.conv``: a convolution over
    cat([input, h]) into 4*hidden channels in order i, f, o, g, padding kernel // 2) and
    return values: ``forward(input_tensor (B, T, C, H, W), or (T, B, C, H, W) unless
    batch_first) -> (layer_output_list, last_state_list)``, each output (B, T, Ch, H, W),
    each last state [h, c]; only the last layer's unless ``return_all_layers``. The state
    starts at zeros; a given ``hidden_state`` raises NotImplementedError, as there. The
    input part of each layer's convolution runs once for all T.
    """

    def __init__(
        self,
        input_dim: int,
        hidden_dim,
        kernel_size,
        num_layers: int,
        batch_first: bool = False,
        bias: bool = True,
        return_all_layers: bool = False,
    ) -> None:
        super().__init__()
        if not (
            isinstance(kernel_size, tuple)
            or (isinstance(kernel_size, list) and all(isinstance(k, tuple) for k in kernel_size))
        ):
            raise ValueError("`kernel_size` must be tuple or list of tuples")
        kernel_size = _per_layer(kernel_size, num_layers)
        hidden_dim = _per_layer(hidden_dim, num_layers)
        if not len(kernel_size) == len(hidden_dim) == num_layers:
            raise ValueError("Inconsistent list length.")
        self.input_dim = input_dim
        self.hidden_dim = hidden_dim
        self.kernel_size = kernel_size
        self.num_layers = num_layers
        self.batch_first = batch_first
        self.bias = bias
        self.return_all_layers = return_all_layers
        self.cell_list = torch.nn.ModuleList(
            _nn.ConvLSTMCell(
                input_dim if i == 0 else hidden_dim[i - 1], hidden_dim[i], kernel_size[i], bias
            )
            for i in range(num_layers)
        )

    def forward(self, input_tensor: torch.Tensor, hidden_state=None):
        if hidden_state is not None:
            raise NotImplementedError()
        layer_input, time_dim = input_tensor, 1 if self.batch_first else 0
        layer_output_list, last_state_list = [], []
        for cell in self.cell_list:
            steps, h, c = _nn.convlstm_layer(cell, layer_input, time_dim)
            layer_input, time_dim = torch.stack(steps, dim=1), 1
            layer_output_list.append(layer_input)
            last_state_list.append([h, c])
        if not self.return_all_layers:
            return layer_output_list[-1:], last_state_list[-1:]
        return layer_output_list, last_state_list
