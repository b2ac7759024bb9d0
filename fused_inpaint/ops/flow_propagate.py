"""flow_propagate: one step of a propagation sweep, carrying sources along the flow (SPEC 3.5b)."""

from __future__ import annotations

import torch

from fused_inpaint import _backend, reference
from fused_inpaint._checks import check_non_negative, check_same_device, check_sizes, check_tensor
from fused_inpaint.ops._registry import define_kernel_op
from fused_inpaint.ops.fb_validity import hole_indicator

# Frame indices are int32 in a propagation state.
MAX_FRAME = 2**31 - 1


def _fake(hole, flow_to, flow_from, src_frame, src_pos, t, alpha, beta, max_age):
    n, _, h, w = flow_to.shape
    return (
        flow_to.new_empty((n, 1, h, w), dtype=torch.int32),
        flow_to.new_empty((n, 2, h, w), dtype=torch.float32),
    )


OPS = define_kernel_op(
    "flow_propagate",
    "(Tensor hole, Tensor flow_to, Tensor flow_from, Tensor src_frame, Tensor src_pos, int t, "
    "float alpha, float beta, int? max_age) -> (Tensor, Tensor)",
    _fake,
)


def check_frame_index(name: str, value) -> None:
    """A frame index: an int in [0, 2^31)."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise TypeError(f"{name} must be an int, got {type(value).__name__}")
    if not 0 <= value <= MAX_FRAME:
        raise ValueError(f"{name} must be a frame index in [0, 2**31), got {value}")


def check_state(
    frame_name: str, src_frame, pos_name: str, src_pos, like_name: str, like: torch.Tensor
) -> None:
    """A propagation state: src_frame (N, 1, H, W) int32 and src_pos (N, 2, H, W) float32,
    with the N, H, W and device of ``like``."""
    n, h, w = like.shape[0], like.shape[-2], like.shape[-1]
    for name, t, channels, dtype in (
        (frame_name, src_frame, 1, torch.int32),
        (pos_name, src_pos, 2, torch.float32),
    ):
        shape = f"(N, {channels}, H, W)"
        check_tensor(name, t, shape, 4, floating=False)
        check_sizes(name, t, shape, {0: n, 1: channels, 2: h, 3: w})
        check_same_device(name, t, like_name, like)
        if t.dtype != dtype:
            raise TypeError(f"{name} must be {dtype}, got {t.dtype}")


def flow_propagate(
    hole: torch.Tensor,
    flow_to: torch.Tensor,
    flow_from: torch.Tensor,
    src_frame: torch.Tensor,
    src_pos: torch.Tensor,
    *,
    t: int,
    alpha: float = 0.01,
    beta: float = 0.5,
    max_age: int | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Frame t's propagation state from its neighbour's: where each pixel can read a value.

    hole: (N, 1, H, W), nonzero = hole in frame t; flow_to: (N, 2, H, W) from t to the
    neighbour on t's grid; flow_from: (N, 2, H, W) from the neighbour to t on its grid;
    src_frame: (N, 1, H, W) int32 (-1 = none) and src_pos: (N, 2, H, W) float32 (x, y), the
    neighbour's state. Returns (src_frame_t, src_pos_t): (t, p) at known pixels; at hole
    pixels the neighbour's source at r = round(q) (half to even), q = p + flow_to(p),
    moved by q - r, where q is in frame, the flows pass fb_validity's test at p and the
    source is at most ``max_age`` frames from t; else (-1, (0, 0)). No gradients.
    """
    check_tensor("flow_to", flow_to, "(N, 2, H, W)", 4)
    check_sizes("flow_to", flow_to, "(N, 2, H, W)", {1: 2})
    check_tensor("flow_from", flow_from, "(N, 2, H, W)", 4)
    n, _, h, w = flow_to.shape
    check_sizes("flow_from", flow_from, "(N, 2, H, W) like flow_to", {0: n, 1: 2, 2: h, 3: w})
    check_same_device("flow_from", flow_from, "flow_to", flow_to)
    if flow_from.dtype != flow_to.dtype:
        raise TypeError(
            f"flow_from must have the dtype of flow_to ({flow_to.dtype}), got {flow_from.dtype}"
        )
    hole = hole_indicator("hole", hole, "flow_to", flow_to)
    check_state("src_frame", src_frame, "src_pos", src_pos, "flow_to", flow_to)
    check_frame_index("t", t)
    check_non_negative("alpha", alpha)
    check_non_negative("beta", beta)
    if max_age is not None:
        if not isinstance(max_age, int) or isinstance(max_age, bool):
            raise TypeError(f"max_age must be an int or None, got {type(max_age).__name__}")
        if not 0 <= max_age < 2**63:  # the registered op's int is int64
            raise ValueError(f"max_age must be >= 0 and < 2**63, got {max_age}")

    args = (hole, flow_to.detach(), flow_from.detach(), src_frame.detach(), src_pos.detach())
    backend = _backend.resolve("flow_propagate", flow_to)
    if backend == "torch":
        return reference.flow_propagate(*args, t=t, alpha=alpha, beta=beta, max_age=max_age)
    return OPS[backend](*args, t, float(alpha), float(beta), max_age)
