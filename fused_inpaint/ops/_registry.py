"""Registers an op's kernels with torch.library: one schema, fake implementation, autograd.

Each op ``name`` has two kernel families with the same schema:
  fused_inpaint::<name>          C++ kernels of fused_inpaint._C (CPU and CUDA keys)
  fused_inpaint::<name>_triton   Triton launchers of fused_inpaint.triton.<name>
and, when it has a backward kernel, ``<name>_backward`` / ``<name>_backward_triton``.
"""

from __future__ import annotations

import functools
import importlib
from collections.abc import Callable

import torch

from fused_inpaint import _backend

LIB = torch.library.Library("fused_inpaint", "FRAGMENT")
VARIANTS = {"cpu": "", "cuda": "", "triton": "_triton"}


def _register_triton(op_name: str, module: str, function: str) -> None:
    """Registers ``module.function`` for CPU and CUDA tensors, importing the Triton module on
    first use so that importing the package never imports triton.

    Triton launches on the current CUDA device: for CUDA tensors the launcher runs with the
    device of its first argument (every op's main tensor) made current, which costs nothing
    when it already is.
    """

    def launch(*args):
        return getattr(importlib.import_module(module), function)(*args)

    def launch_on_cpu(*args):
        # Said here for direct callers of the op (the public functions refuse earlier):
        # triton itself only says it found no driver.
        reason = _backend._unavailable_reason("triton", op_name, "cpu")
        if reason is not None:
            raise RuntimeError(f"fused_inpaint::{op_name}: {reason}")
        return launch(*args)

    def launch_on_device(*args):
        with torch.cuda.device(args[0].device):
            return launch(*args)

    LIB.impl(op_name, launch_on_cpu, "CPU")
    LIB.impl(op_name, launch_on_device, "CUDA")


def _twice(name: str) -> Callable:
    """The autograd of a backward kernel: differentiating it (a gradient of a gradient)
    is an error that says so, where torch would else warn and give zeros."""

    def backward(ctx, *grads):
        raise RuntimeError(
            f"{name}: the kernels give first-order gradients only; for gradients of "
            "gradients, run it on the torch backend (fused_inpaint.use_backend('torch'))"
        )

    return backward


def _on_one_device(op_name: str, fake: Callable) -> Callable:
    """``fake``, run once every tensor argument is on one device. With a meta tensor among
    CPU or CUDA ones the dispatcher picks the meta kernel (the fake), whose outputs would
    be uninitialised memory on the other tensors' device; torch's own ops refuse, and so
    do the kernels: "<argument> must be on the same device as <first tensor>"."""
    schema = getattr(torch.ops.fused_inpaint, op_name).default._schema
    names = [argument.name for argument in schema.arguments]

    @functools.wraps(fake)
    def checked(*args, **kwargs):
        named = [*zip(names, args, strict=False), *kwargs.items()]
        tensors = [(name, value) for name, value in named if isinstance(value, torch.Tensor)]
        (first_name, first), *others = tensors
        for name, tensor in others:
            if tensor.device != first.device:
                raise RuntimeError(
                    f"fused_inpaint::{op_name}: {name} must be on the same device as {first_name}"
                )
        return fake(*args, **kwargs)

    return checked


def define_kernel_op(
    name: str,
    schema: str,
    fake: Callable,
    *,
    backward_schema: str | None = None,
    backward_fake: Callable | None = None,
    setup_context: Callable | None = None,
    backward: Callable | None = None,
) -> dict[str, Callable]:
    """Defines ``name`` for every kernel family; returns the forward op of each backend.

    ``backward(backward_op, ctx, *grads)`` receives the backward op of its own family, or
    the forward op itself when there is no ``backward_schema`` (an op that is its own
    adjoint, like a shift reversed).
    """
    triton_module = f"fused_inpaint.triton.{name}"
    ops = {}
    for suffix in sorted(set(VARIANTS.values())):
        forward_name = f"{name}{suffix}"
        LIB.define(forward_name + schema)
        torch.library.register_fake(
            f"fused_inpaint::{forward_name}", _on_one_device(forward_name, fake), lib=LIB
        )
        if suffix == "_triton":
            _register_triton(forward_name, triton_module, "forward")
        backward_op = None
        if backward_schema is not None:
            backward_name = f"{name}_backward{suffix}"
            LIB.define(backward_name + backward_schema)
            torch.library.register_fake(
                f"fused_inpaint::{backward_name}",
                _on_one_device(backward_name, backward_fake),
                lib=LIB,
            )
            if suffix == "_triton":
                _register_triton(backward_name, triton_module, "backward")
            backward_op = getattr(torch.ops.fused_inpaint, backward_name).default
            torch.library.register_autograd(
                f"fused_inpaint::{backward_name}", _twice(name), lib=LIB
            )
        elif backward is not None:  # a self-adjoint op: its backward is the op itself
            backward_op = getattr(torch.ops.fused_inpaint, forward_name).default
        if backward is not None:

            def bound_backward(ctx, *grads, _op=backward_op):
                return backward(_op, ctx, *grads)

            torch.library.register_autograd(
                f"fused_inpaint::{forward_name}",
                bound_backward,
                setup_context=setup_context,
                lib=LIB,
            )
        ops[suffix] = getattr(torch.ops.fused_inpaint, forward_name).default
    return {backend: ops[suffix] for backend, suffix in VARIANTS.items()}
