"""Argument checks of the public ops: every message names the argument and its expected shape."""

from __future__ import annotations

import math

import torch

HALF_PRECISION = (torch.float16, torch.bfloat16)


def check_tensor(name: str, t, shape: str, ndim: int, *, floating: bool = True) -> None:
    """A tensor of rank ``ndim`` (``shape`` describes it: "(N, C, H, W)"), floating-point
    unless ``floating=False``."""
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape {shape}, got {type(t).__name__}")
    if t.dim() != ndim:
        raise ValueError(f"{name} must have shape {shape}, got {tuple(t.shape)}")
    if floating and not t.is_floating_point():
        raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")


def check_sizes(name: str, t: torch.Tensor, shape: str, expected: dict[int, int]) -> None:
    """``t.size(dim) == size`` for every ``dim: size`` of ``expected``."""
    if any(t.size(d) != s for d, s in expected.items()):
        want = ", ".join(f"dim {d} = {s}" for d, s in expected.items())
        raise ValueError(f"{name} must have shape {shape} ({want}), got {tuple(t.shape)}")


def check_same_device(name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    if t.device != ref.device:
        raise ValueError(
            f"{name} must be on the same device as {ref_name} ({ref.device}), got {t.device}"
        )


def check_companion_dtype(name: str, t: torch.Tensor, ref_name: str, ref: torch.Tensor) -> None:
    """A flow or mask has its features' dtype, or float32 when they are half precision."""
    if t.dtype == ref.dtype or (t.dtype == torch.float32 and ref.dtype in HALF_PRECISION):
        return
    raise TypeError(
        f"{name} must have the dtype of {ref_name} ({ref.dtype}), or float32 when {ref_name} "
        f"is float16/bfloat16; got {t.dtype}"
    )


def check_choice(name: str, value, choices) -> None:
    try:
        known = value in choices
    except TypeError:  # unhashable (a list, a dict) against a dict's keys
        known = False
    if not known:
        options = ", ".join(repr(c) for c in choices)
        raise ValueError(f"{name} must be one of {options}; got {value!r}")


def check_non_negative(name: str, value) -> None:
    """A finite real number >= 0 (an op's threshold or weight)."""
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        raise TypeError(f"{name} must be a float, got {type(value).__name__}")
    if torch.compiler.is_compiling():
        # torch.compile traces a value that changes between calls as a symbol, which
        # Python cannot test or print without a graph break: checked in the graph.
        torch._check(value >= 0, lambda: f"{name} must be finite and >= 0")
        torch._check(value < math.inf, lambda: f"{name} must be finite and >= 0")
        return
    try:
        number = float(value)  # the ops take a float
    except OverflowError:  # an int past float's range (and too long to print whole)
        raise ValueError(
            f"{name} must be finite and >= 0, got {'a negative' if value < 0 else 'an'} int "
            f"of {value.bit_length()} bits, past the float range"
        ) from None
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(f"{name} must be finite and >= 0, got {value}")


def check_bool(name: str, value) -> None:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
