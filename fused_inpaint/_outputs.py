"""Output allocation of the Triton launchers (and the fake kernels that share it): a failed
allocation names the output and its size, in the words of the C++ kernels
(csrc/common/tensor.h ``allocate_output``), where torch's own message only says how many
bytes were asked for."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch

INT64_MAX = 2**63 - 1


def allocate_output(
    name: str, sizes: Sequence[int], dtype: torch.dtype, allocate: Callable[[], torch.Tensor]
) -> torch.Tensor:
    """``allocate()``, a tensor of ``sizes`` and ``dtype``; should it fail, raises the same
    kind of error (RuntimeError, or torch.OutOfMemoryError on a GPU) as
    "could not allocate <name>: <bytes> bytes (<elements> elements of <size> bytes)"."""
    try:
        return allocate()
    except RuntimeError as error:
        numel, size = math.prod(sizes), dtype.itemsize
        if numel > INT64_MAX // size:
            detail = f"{numel} elements of {size} bytes, more than 2^63 bytes"
        else:
            detail = f"{numel * size} bytes ({numel} elements of {size} bytes)"
        kind = torch.OutOfMemoryError if isinstance(error, torch.OutOfMemoryError) else RuntimeError
        raise kind(f"could not allocate {name}: {detail}") from error


def output_like(
    like: torch.Tensor, name: str, *, dtype: torch.dtype | None = None, zero: bool = False
) -> torch.Tensor:
    """``torch.empty_like(like, dtype=dtype)`` (``zeros_like`` when ``zero``), named."""
    make = torch.zeros_like if zero else torch.empty_like
    return allocate_output(name, like.shape, dtype or like.dtype, lambda: make(like, dtype=dtype))


def new_output(
    like: torch.Tensor,
    name: str,
    sizes: Sequence[int],
    dtype: torch.dtype | None = None,
    *,
    zero: bool = False,
) -> torch.Tensor:
    """``like.new_empty(sizes, dtype=dtype)`` (``new_zeros`` when ``zero``), named."""
    make = like.new_zeros if zero else like.new_empty
    return allocate_output(name, sizes, dtype or like.dtype, lambda: make(sizes, dtype=dtype))
