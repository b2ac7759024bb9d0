"""Helpers shared by the op tests: the backend/device/dtype grid, layouts, tolerances."""

from __future__ import annotations

import functools
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fused_inpaint import _backend

HAS_GPU = torch.cuda.is_available()
TESTS_DIR = Path(__file__).resolve().parent

# The case of each op's test grid that runs in every dtype (dtype_cases), by device: on
# the GPU the non-contiguous one of odd size.
MAIN_CASE = {"cpu": "odd", "cuda": "strided"}

# (data dtype, flow/mask dtype): flows may stay float32 under half-precision features.
DTYPE_CASES = {
    "fp64": (torch.float64, torch.float64),
    "fp32": (torch.float32, torch.float32),
    "fp16": (torch.float16, torch.float16),
    "fp16-flow32": (torch.float16, torch.float32),
    "bf16": (torch.bfloat16, torch.bfloat16),
    "bf16-flow32": (torch.bfloat16, torch.float32),
}
# Those of ops whose floating inputs all share one dtype.
ONE_DTYPE_CASES = [name for name, (dtype, flow_dtype) in DTYPE_CASES.items() if dtype == flow_dtype]


def backend_params(op: str, backends=_backend.BACKENDS) -> list:
    """pytest params (backend, device): GPU ones marked ``gpu``, unrunnable ones skipped."""
    params = []
    for device in ("cpu", "cuda"):
        for backend in backends:
            if backend in ("cpu", "cuda") and backend != device:
                continue
            marks = []
            if device == "cuda":
                marks.append(pytest.mark.gpu)
                reason = None if HAS_GPU else "no CUDA device"
            else:
                reason = None
            reason = reason or _backend._unavailable_reason(backend, op, device)
            if reason:
                marks.append(pytest.mark.skip(reason=reason))
            params.append(pytest.param(backend, device, id=f"{backend}-{device}", marks=marks))
    return params


def sanitized_params(op: str, cases=DTYPE_CASES) -> list:
    """pytest params, one per dtype case, of a test of ``op``'s CUDA kernels on extreme
    inputs: marked ``gpu`` and ``sanitize`` (tools/gpu_check.sh runs those under
    compute-sanitizer), skipped where they cannot run."""
    reason = _backend._unavailable_reason("cuda", op, "cuda") if HAS_GPU else "no CUDA device"
    marks = [pytest.mark.gpu, pytest.mark.sanitize]
    if reason:
        marks.append(pytest.mark.skip(reason=reason))
    return [pytest.param(case, id=case, marks=marks) for case in cases]


def dtype_cases(backend: str, device: str, every_dtype: bool = True) -> list[str]:
    """The dtype cases a backend supports on a device (the torch reference: fp32 and fp64).

    Triton's interpreter is slow, and on the GPU each dtype of each case is one more
    kernel compile: there ``every_dtype=False`` runs float32 only, so a test grid covers
    every dtype on its main case and every other case in float32.
    """
    if backend == "torch":
        return ["fp64", "fp32"]
    if not every_dtype and (backend == "triton" or device == "cuda"):
        return ["fp32"]
    supported = _backend.DTYPES[backend]
    return [name for name, (dtype, _) in DTYPE_CASES.items() if dtype in supported]


def interpreted(backend: str, device: str) -> bool:
    """Whether the backend runs under Triton's interpreter, which is slow: gradchecks
    there use fast mode (random projections of the Jacobian instead of every column)."""
    return backend == "triton" and device == "cpu"


def with_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """The same values as ``t`` (N, C, H, W), stored "contiguous", "channels_last" or
    "strided" (a view into a larger buffer with gaps in every dimension; the gaps hold NaN,
    or the largest value of an integer or bool dtype)."""
    if layout == "contiguous":
        return t.contiguous()
    if layout == "channels_last":
        return t.contiguous(memory_format=torch.channels_last)
    n, c, h, w = t.shape
    if t.is_floating_point():
        gap = float("nan")
    else:
        gap = True if t.dtype == torch.bool else torch.iinfo(t.dtype).max
    base = torch.full((n, 2 * c, h + 2, 2 * w), gap, dtype=t.dtype, device=t.device)
    view = base[:, ::2, 1 : h + 1, ::2]
    view.copy_(t)
    return view


def tolerance(dtype: torch.dtype, expected: torch.Tensor, reference_error: float) -> float:
    """Allowed max error against the float64 reference: at most twice the reference's own
    error when run in ``dtype``, plus a few ulps of the largest value (summation order)."""
    scale = max(1.0, expected.abs().max().item()) if expected.numel() else 1.0
    if dtype == torch.float64:
        return 1e-12 * scale
    return 2 * reference_error + 8 * torch.finfo(dtype).eps * scale


def assert_matches_reference(
    actual: torch.Tensor, expected64: torch.Tensor, reference_lowp: torch.Tensor, name: str
) -> None:
    """``actual`` (a kernel's result) against the float64 reference ``expected64`` with the
    error budget of ``tolerance``; ``reference_lowp`` is the reference run in actual's dtype."""
    assert actual.shape == expected64.shape, f"{name}: shape {actual.shape} != {expected64.shape}"
    assert actual.dtype == reference_lowp.dtype, f"{name}: dtype {actual.dtype}"
    a, e = actual.detach().double().cpu(), expected64.detach().double().cpu()
    assert torch.isfinite(e).all(), f"{name}: the reference itself is not finite"
    assert torch.isfinite(a).all(), f"{name}: {(~torch.isfinite(a)).sum()} non-finite elements"
    ref_error = (reference_lowp.detach().double().cpu() - e).abs().max().item() if e.numel() else 0
    error = (a - e).abs().max().item() if e.numel() else 0.0
    allowed = tolerance(actual.dtype, e, ref_error)
    assert error <= allowed, (
        f"{name}: max error {error:.3g} > allowed {allowed:.3g} "
        f"(reference's own error in {actual.dtype}: {ref_error:.3g})"
    )


def one_error_line(stderr: str) -> str:
    """The one error line a failed ``fused-inpaint`` command wrote (warnings aside)."""
    errors = [
        line for line in stderr.splitlines() if not line.startswith("fused-inpaint: warning:")
    ]
    assert len(errors) == 1 and errors[0].startswith("fused-inpaint: error: "), errors
    return errors[0]


def check_second_order(backend: str, fn, inputs: tuple) -> None:
    """Gradients of gradients of ``fn`` (a tensor of float64 ``inputs``, run on
    ``backend``): gradgradcheck on the torch backend; the kernels refuse them with an
    error that says so, where torch alone would warn and give zeros."""
    if backend == "torch":
        assert torch.autograd.gradgradcheck(fn, inputs, eps=1e-6, atol=1e-6)
        return
    grads = torch.autograd.grad(fn(*inputs).sum(), inputs, create_graph=True)
    with pytest.raises(RuntimeError, match="first-order gradients only"):
        torch.autograd.grad(sum(g.sum() for g in grads), inputs, allow_unused=True)


def own_process_on_cuda(test):
    """Runs a test whose ``device`` argument is "cuda" in a Python process of its own, the
    others in place: a crash there (a CUDA kernel called directly with a bad argument has
    crashed a GPU build) fails that one test, where it would end the pytest worker and lose
    every test queued on it. ``test``'s arguments must be literals (their repr is code)."""

    @functools.wraps(test)
    def run(**kwargs):
        if kwargs.get("device") != "cuda":
            return test(**kwargs)
        code = f"import {test.__module__} as m; m.{test.__name__}.__wrapped__(**{kwargs!r})"
        path = os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))
        result = subprocess.run(
            [sys.executable, "-c", code],
            env={**os.environ, "PYTHONPATH": path},
            capture_output=True,
            text=True,
            timeout=300,
        )
        status = result.returncode
        if status != 0:
            how = f"exit status {status}"
            if status < 0:
                how = f"killed by {signal.Signals(-status).name}"
            where = f"{test.__name__}({kwargs}) in its own process"
            pytest.fail(f"{where}: {how}\n{result.stderr[-4000:]}")

    return run
