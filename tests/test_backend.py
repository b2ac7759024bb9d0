"""Backend selection (SPEC 4): set_backend, use_backend, the environment, auto."""

import os
import subprocess
import sys

import pytest
import torch

import fused_inpaint as fi
from fused_inpaint import _backend, reference


def test_set_and_use_backend():
    fi.set_backend("torch")
    assert fi.get_backend() == "torch"
    with fi.use_backend("auto"):
        assert fi.get_backend() == "auto"
    assert fi.get_backend() == "torch"


def test_use_backend_restores_after_an_error():
    fi.set_backend("torch")
    with pytest.raises(KeyError), fi.use_backend("cpu"):
        raise KeyError("boom")
    assert fi.get_backend() == "torch"


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend must be one of auto, torch"):
        fi.set_backend("tpu")
    with pytest.raises(ValueError, match="backend must be one of"), fi.use_backend("cudnn"):
        pass


def test_environment_selects_the_backend():
    code = "import fused_inpaint; print(fused_inpaint.get_backend())"
    env = {**os.environ, "FUSED_INPAINT_BACKEND": "torch"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.strip() == "torch", out.stderr
    env["FUSED_INPAINT_BACKEND"] = "fastest"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode != 0 and "FUSED_INPAINT_BACKEND must be one of" in out.stderr


def test_available_backends_explains_what_is_missing():
    status = fi.available_backends()
    assert list(status) == ["torch", "cpu", "cuda", "triton"]
    assert status["torch"].available
    for name, s in status.items():
        assert isinstance(s.detail, str) and s.detail, name
        assert str(s).startswith("available" if s.available else "unavailable")
    if not torch.cuda.is_available():
        assert not status["cuda"].available


def test_auto_prefers_compiled_kernels_on_cpu():
    x = torch.randn(1, 2, 3, 4)
    expected = "cpu" if fi.available_backends()["cpu"].available else "torch"
    assert _backend.resolve("flow_warp", x) == expected
    # dtypes the C++ CPU kernels do not take fall back to the reference.
    assert _backend.resolve("flow_warp", x.half()) == "torch"


def test_import_does_not_initialise_cuda():
    code = "import torch, fused_inpaint; print(torch.cuda.is_initialized())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.stdout.strip() == "False", out.stderr


def test_registered_triton_ops_say_why_they_cannot_run_on_cpu_tensors():
    # Without the interpreter triton only says that it found no driver.
    code = (
        "import torch, fused_inpaint\n"
        "x, flow = torch.zeros(1, 1, 2, 2), torch.zeros(1, 2, 2, 2)\n"
        "try:\n"
        "    torch.ops.fused_inpaint.flow_warp_triton(x, flow, 0, 0, True)\n"
        "except RuntimeError as error:\n"
        "    print(error)\n"
    )
    env = {**os.environ, "TRITON_INTERPRET": "0"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    reason = (
        "triton runs on CPU tensors only under TRITON_INTERPRET=1"
        if _backend.TRITON_INSTALLED
        else "triton is not installed (pip install triton)"
    )
    assert out.stdout.strip() == f"fused_inpaint::flow_warp_triton: {reason}"


@pytest.mark.gpu
@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two CUDA devices")
def test_triton_runs_on_the_tensors_device():
    """Triton launches on the current device; the launchers make it the tensors' own."""
    x = torch.randn(2, 3, 5, 6, device="cuda:1", requires_grad=True)
    flow = (torch.randn(2, 2, 5, 6, device="cuda:1") * 2).requires_grad_()
    with torch.cuda.device(0), fi.use_backend("triton"):
        out = fi.flow_warp(x, flow)
        grads = torch.autograd.grad(out.sum(), (x, flow))
        assert torch.cuda.current_device() == 0
    expected = reference.flow_warp(x, flow)
    expected_grads = torch.autograd.grad(expected.sum(), (x, flow))
    torch.testing.assert_close(out, expected)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e)
