"""Loads the compiled kernels (fused_inpaint._C) and records which ones it registered."""

from __future__ import annotations

import torch

LOAD_ERROR: str | None = "extension not loaded yet"
# (op, device type) pairs with a compiled kernel; plain data, so torch.compile can trace reads.
KERNELS: set[tuple[str, str]] = set()


def load(ops: list[str]) -> None:
    """Imports fused_inpaint._C (after the ops' schemas exist) and scans its kernels."""
    global LOAD_ERROR
    try:
        from fused_inpaint import _C  # noqa: F401  (registers the kernels with the dispatcher)
    except ImportError as error:  # a pure-Python install, or a build that failed
        LOAD_ERROR = f"extension not built ({error})"
        return
    LOAD_ERROR = None
    for op in ops:
        for device_type, key in (("cpu", "CPU"), ("cuda", "CUDA")):
            if torch._C._dispatch_has_kernel_for_dispatch_key(f"fused_inpaint::{op}", key):
                KERNELS.add((op, device_type))
