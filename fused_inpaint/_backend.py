"""Backend selection (SPEC 4): which implementation runs an op on a given tensor.

Backends: ``torch`` (reference.py, runs anywhere), ``cpu`` and ``cuda`` (the compiled
kernels of fused_inpaint._C), ``triton`` (on GPU; on CPU tensors only under
``TRITON_INTERPRET=1``). ``auto`` picks the fastest measured backend that can run.

Everything the op functions read while torch.compile traces them is plain module state,
decided at import, so tracing never touches CUDA or the environment.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
from typing import NamedTuple

import torch

from fused_inpaint import _extension

BACKENDS = ("torch", "cpu", "cuda", "triton")
CHOICES = ("auto", *BACKENDS)

# dtypes of the data tensor each backend accepts; the reference takes any floating dtype.
DTYPES = {
    "torch": None,
    "cpu": (torch.float32, torch.float64),
    "cuda": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
    "triton": (torch.float16, torch.bfloat16, torch.float32, torch.float64),
}

# auto: the fastest backend first, per (op, device type), from benchmarks/results/<device>.
# Ops without a measured entry fall back to DEFAULT_ORDER.
FASTEST: dict[tuple[str, str], tuple[str, ...]] = {}
DEFAULT_ORDER = {"cuda": ("cuda", "triton", "torch"), "cpu": ("cpu", "torch")}

TRITON_INSTALLED = importlib.util.find_spec("triton") is not None
# Triton's interpreter mode is fixed when its kernels are defined; read it once.
TRITON_INTERPRET = os.environ.get("TRITON_INTERPRET", "0") == "1"


class BackendStatus(NamedTuple):
    available: bool
    detail: str

    def __str__(self) -> str:
        return ("available: " if self.available else "unavailable: ") + self.detail


def _validated(name: str, source: str) -> str:
    if name not in CHOICES:
        raise ValueError(f"{source} must be one of {', '.join(CHOICES)}; got {name!r}")
    return name


_selected = _validated(os.environ.get("FUSED_INPAINT_BACKEND", "auto"), "FUSED_INPAINT_BACKEND")


def set_backend(name: str) -> None:
    """Selects the backend of every op: "auto", "torch", "cpu", "cuda" or "triton". The
    choice is the process's, shared by its threads (as torch.backends' flags are)."""
    global _selected
    _selected = _validated(name, "backend")


def get_backend() -> str:
    """The selected backend name ("auto" unless set)."""
    return _selected


@contextlib.contextmanager
def use_backend(name: str):
    """Context manager: run the ops inside on backend ``name``, then restore the previous one.
    The choice is the process's (``set_backend``): blocks in other threads at the same
    time change it for each other."""
    previous = get_backend()
    set_backend(name)
    try:
        yield
    finally:
        set_backend(previous)


def _unavailable_reason(backend: str, op: str, device_type: str) -> str | None:
    """Why ``backend`` cannot run ``op`` on tensors of ``device_type``, or None if it can."""
    if backend == "torch":
        return None
    if backend in ("cpu", "cuda"):
        if backend != device_type:
            return f"the {backend} backend runs on {backend} tensors, not {device_type}"
        if _extension.LOAD_ERROR is not None:
            return _extension.LOAD_ERROR
        if (op, device_type) not in _extension.KERNELS:
            return f"extension built without {backend.upper()} kernels"
        return None
    if not TRITON_INSTALLED:
        return "triton is not installed (pip install triton)"
    if device_type == "cpu" and not TRITON_INTERPRET:
        return "triton runs on CPU tensors only under TRITON_INTERPRET=1"
    if device_type not in ("cpu", "cuda"):
        return f"triton does not run on {device_type} tensors"
    return None


def resolve(op: str, data: torch.Tensor) -> str:
    """The backend that runs ``op`` on ``data`` (the op's main input) under the current choice.

    Raises RuntimeError when the chosen backend can not run here, TypeError when it does
    not take the tensor's dtype.
    """
    device_type = data.device.type
    if _selected == "auto":
        order = FASTEST.get((op, device_type), DEFAULT_ORDER.get(device_type, ("torch",)))
        for backend in order:
            dtypes = DTYPES[backend]
            if (dtypes is None or data.dtype in dtypes) and (
                _unavailable_reason(backend, op, device_type) is None
            ):
                return backend
        return "torch"
    reason = _unavailable_reason(_selected, op, device_type)
    if reason is not None:
        raise RuntimeError(f"backend {_selected!r} cannot run {op} here: {reason}")
    dtypes = DTYPES[_selected]
    if dtypes is not None and data.dtype not in dtypes:
        names = ", ".join(str(d).removeprefix("torch.") for d in dtypes)
        raise TypeError(
            f"backend {_selected!r} does not support dtype {data.dtype} for {op} "
            f"(supported: {names})"
        )
    return _selected


def available_backends() -> dict[str, BackendStatus]:
    """What this install can run, and why not the rest ("extension built without CUDA")."""
    has_gpu = torch.cuda.is_available()
    status = {"torch": BackendStatus(True, "pure PyTorch reference, any device")}
    reason = _unavailable_reason("cpu", "flow_warp", "cpu")
    status["cpu"] = BackendStatus(reason is None, reason or "C++ kernels for CPU tensors")
    if _extension.LOAD_ERROR is not None:
        reason = _extension.LOAD_ERROR
    elif ("flow_warp", "cuda") not in _extension.KERNELS:
        reason = "extension built without CUDA"
    else:
        reason = None if has_gpu else "no CUDA device"
    status["cuda"] = BackendStatus(reason is None, reason or "CUDA kernels")
    if not TRITON_INSTALLED:
        status["triton"] = BackendStatus(False, "triton is not installed (pip install triton)")
    elif has_gpu:
        status["triton"] = BackendStatus(True, "Triton kernels on the GPU")
    elif TRITON_INTERPRET:
        status["triton"] = BackendStatus(True, "Triton interpreter on CPU tensors")
    else:
        status["triton"] = BackendStatus(
            False, "no CUDA device (TRITON_INTERPRET=1 runs it on CPU)"
        )
    return status
