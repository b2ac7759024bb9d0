"""Modules built on the ops."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fused_inpaint.ops import convlstm_cell, flow_warp, temporal_shift_align

__all__ = ["ConvLSTM", "ConvLSTMCell", "FlowWarp", "TemporalShiftAlign"]


class FlowWarp(torch.nn.Module):
    """Backward warp by optical flow; ``forward(x (N, C, H, W), flow (N, 2, H, W))``."""

    def __init__(
        self, mode: str = "bilinear", padding_mode: str = "zeros", align_corners: bool = True
    ) -> None:
        super().__init__()
        self.mode = mode
        self.padding_mode = padding_mode
        self.align_corners = align_corners

    def forward(self, x: torch.Tensor, flow: torch.Tensor) -> torch.Tensor:
        return flow_warp(
            x,
            flow,
            mode=self.mode,
            padding_mode=self.padding_mode,
            align_corners=self.align_corners,
        )

    def extra_repr(self) -> str:
        return (
            f"mode={self.mode!r}, padding_mode={self.padding_mode!r}, "
            f"align_corners={self.align_corners}"
        )


class TemporalShiftAlign(torch.nn.Module):
    """TSAM: ``forward(x (N, T, C, H, W), flow_fw, flow_bw (N, T-1, 2, Hf, Wf), valid_fw=None,
    valid_bw=None (N, T-1, 1, Hf, Wf))``, see ``fused_inpaint.temporal_shift_align``."""

    def __init__(self, fold_div: int = 8, causal: bool = False) -> None:
        super().__init__()
        self.fold_div = fold_div
        self.causal = causal

    def forward(
        self,
        x: torch.Tensor,
        flow_fw: torch.Tensor | None,
        flow_bw: torch.Tensor,
        valid_fw: torch.Tensor | None = None,
        valid_bw: torch.Tensor | None = None,
    ) -> torch.Tensor:
        return temporal_shift_align(
            x, flow_fw, flow_bw, valid_fw, valid_bw, fold_div=self.fold_div, causal=self.causal
        )

    def extra_repr(self) -> str:
        return f"fold_div={self.fold_div}, causal={self.causal}"


def _odd_kernel_size(kernel_size) -> tuple[int, int]:
    """(kh, kw) from an int or a pair; odd, so that padding k // 2 keeps H and W."""
    pair = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
    if len(pair) != 2 or not all(isinstance(k, int) and k > 0 and k % 2 for k in pair):
        raise ValueError(
            f"kernel_size must be an odd int or a pair of odd ints, got {kernel_size!r}"
        )
    return pair


class ConvLSTMCell(torch.nn.Module):
    """One ConvLSTM step: gates = conv(cat([x, h])) in chunks (i, f, o, g), then the fused
    ``convlstm_cell``.

    ``forward(x (N, C_in, H, W), state=None) -> (h, c)``, both (N, Ch, H, W); ``state`` is
    (h, c) or None for zeros (then only the input part of the convolution runs). ``c`` may
    be float32 under half-precision x and h.
    """

    def __init__(
        self, in_channels: int, hidden_channels: int, kernel_size=3, bias: bool = True
    ) -> None:
        super().__init__()
        for name, value in (("in_channels", in_channels), ("hidden_channels", hidden_channels)):
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, got {value!r}")
        kh, kw = _odd_kernel_size(kernel_size)
        self.in_channels = in_channels
        self.hidden_channels = hidden_channels
        self.conv = torch.nn.Conv2d(
            in_channels + hidden_channels,
            4 * hidden_channels,
            (kh, kw),
            padding=(kh // 2, kw // 2),
            bias=bias,
        )

    def input_gates(self, x: torch.Tensor) -> torch.Tensor:
        """The input part of the convolution, bias included: (B, C_in, H, W) -> (B, 4*Ch, H, W)."""
        weight = self.conv.weight[:, : self.in_channels]
        return F.conv2d(x, weight, self.conv.bias, padding=self.conv.padding)

    def hidden_weight(self) -> torch.Tensor:
        """The hidden part of the weight, made contiguous once: convolutions would copy a
        sliced weight on every call."""
        return self.conv.weight[:, self.in_channels :].contiguous()

    def forward(self, x: torch.Tensor, state=None) -> tuple[torch.Tensor, torch.Tensor]:
        if state is None:
            return convlstm_cell(self.input_gates(x), None)
        h, c = state
        return convlstm_cell(self.conv(torch.cat([x, h], dim=1)), c)


def convlstm_layer(
    cell: ConvLSTMCell,
    x: torch.Tensor,
    time_dim: int,
    state=None,
    cell_dtype: torch.dtype | None = None,
):
    """Runs ``cell`` over the sequence x, (N, T, C, H, W) with time_dim 1 or (T, N, C, H, W)
    with time_dim 0. Returns (list of the T hidden states, last h, last c).

    The input convolution runs once for all frames; each step runs only the hidden one and
    the fused cell, with nothing that waits for the GPU (a CUDA graph can capture it).
    """
    if x.dim() != 5 or x.size(2) != cell.in_channels:
        shape = "(N, T, C, H, W)" if time_dim == 1 else "(T, N, C, H, W)"
        raise ValueError(
            f"x must have shape {shape} with C = {cell.in_channels}, got {tuple(x.shape)}"
        )
    if x.size(time_dim) == 0:
        raise ValueError("x must hold at least one time step")
    gates_x = cell.input_gates(x.flatten(0, 1)).unflatten(0, x.shape[:2])
    weight_h = cell.hidden_weight()
    h, c = (None, None) if state is None else state
    if cell_dtype is not None:
        if c is None and cell_dtype != gates_x.dtype:
            shape = (x.size(1 - time_dim), cell.hidden_channels, *x.shape[-2:])
            c = gates_x.new_zeros(shape, dtype=cell_dtype)
        elif c is not None:
            c = c.to(cell_dtype)
    hs = []
    for t in range(x.size(time_dim)):
        gates = gates_x.select(time_dim, t)
        if h is not None:
            gates = F.conv2d(h, weight_h, padding=cell.conv.padding).add_(gates)
        h, c = convlstm_cell(gates, c)
        hs.append(h)
    return hs, h, c


class ConvLSTM(torch.nn.Module):
    """A stack of ConvLSTM layers over a sequence, ``torch.nn.LSTM``-style.

    ``forward(x, state=None) -> (outputs, (h, c))``: x (N, T, C_in, H, W), or (T, N, C_in,
    H, W) with ``batch_first=False``; outputs: the last layer's hidden states in x's layout,
    (N, T, Ch, H, W); h, c: the last step's states of every layer, (num_layers, N, Ch, H,
    W); ``state``: such an (h, c) pair, or None for zeros. ``cell_dtype`` (e.g.
    torch.float32) keeps the cell state in that dtype under half-precision inputs.
    Layer ``l`` is ``cells[l]``, a ConvLSTMCell.
    """

    def __init__(
        self,
        in_channels: int,
        hidden_channels: int,
        kernel_size=3,
        num_layers: int = 1,
        batch_first: bool = True,
        *,
        bias: bool = True,
        cell_dtype: torch.dtype | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(num_layers, int) or num_layers < 1:
            raise ValueError(f"num_layers must be a positive int, got {num_layers!r}")
        self.batch_first = batch_first
        self.cell_dtype = cell_dtype
        self.cells = torch.nn.ModuleList(
            ConvLSTMCell(
                in_channels if i == 0 else hidden_channels, hidden_channels, kernel_size, bias
            )
            for i in range(num_layers)
        )

    def forward(self, x: torch.Tensor, state=None):
        time_dim = 1 if self.batch_first else 0
        hs, cs = [], []
        for layer, cell in enumerate(self.cells):
            layer_state = None if state is None else (state[0][layer], state[1][layer])
            steps, h, c = convlstm_layer(cell, x, time_dim, layer_state, self.cell_dtype)
            x = torch.stack(steps, dim=time_dim)
            hs.append(h)
            cs.append(c)
        return x, (torch.stack(hs), torch.stack(cs))

    def extra_repr(self) -> str:
        return f"batch_first={self.batch_first}, cell_dtype={self.cell_dtype}"
