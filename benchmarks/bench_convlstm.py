"""convlstm_cell and ConvLSTM benchmarks: fused kernels against eager PyTorch and torch.compile.

GPU:  python benchmarks/bench_convlstm.py [--quick] [--budget-s S] [--out DIR]
      1. the gate math alone: eager (split + 3 sigmoid + 2 tanh + mul/add), torch.compile of
         it, and fused_inpaint's triton and cuda backends, forward and forward+backward, as
         time, GB/s and fraction of the copy bandwidth;
      2. a whole sequence: nn.ConvLSTM against the eager ndrplz-style module (per step
         torch.cat + Conv2d + the composite gate math), forward and forward+backward, with
         and without CUDA graphs.
      Prints both tables and writes DIR/<device>/convlstm.md (DIR: benchmarks/results).
CPU:  python -m pytest benchmarks --benchmark-only
      the cpu backend against the torch reference backend and the eager composite.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Iterator
from pathlib import Path

import common
import torch

import fused_inpaint

OP = "convlstm"
SHAPES = [(8, 128, 60, 108), (8, 64, 120, 216)]  # (N, Ch, H, W)
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
CHECK = dict(atol=1e-5, rtol=1e-5)
# The sequence: (N, T, C_in, H, W), hidden channels, kernel size.
SEQUENCE = dict(batch=8, steps=16, in_channels=128, hidden=128, height=60, width=108, kernel=3)
SEQUENCE_DTYPES = ("fp32", "bf16")
# cuDNN runs float32 convolutions in TF32 by default, and the fused module splits the
# convolution in two (input once, hidden per step): close, not equal.
SEQUENCE_CHECK = dict(atol=1e-2, rtol=1e-2)
CPU_SHAPE = (2, 32, 48, 64)
CPU_SEQUENCE = dict(batch=1, steps=4, in_channels=16, hidden=16, height=32, width=32, kernel=3)

GATE_NOTES = [
    "gate math: gates (N, 4*Ch, H, W) and c (N, Ch, H, W) in the row's dtype -> h, c_new; "
    "eager: `torch.split` into (i, f, o, g), 3 `torch.sigmoid`, 2 `torch.tanh`, mul/add; "
    "torch.compile: the same function, default mode, static shapes; triton, cuda: "
    "`fused_inpaint.convlstm_cell` on that backend (arithmetic in float32)",
    "bytes: forward = gates + c read, h + c_new written (7 x Ch-plane); forward+backward "
    "adds grad_h, grad_c_new, gates, c read and grad_gates, grad_c written (19 x Ch-plane in "
    "all); forward+backward: `torch.autograd.grad` w.r.t. gates and c from fixed random "
    "grad_h, grad_c_new",
    f"each implementation's forward is checked against eager in float32 before timing "
    f"(allclose atol={CHECK['atol']:g}, rtol={CHECK['rtol']:g}); a mismatch is noted on its rows",
]


def composite(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The usual Python ConvLSTM gate math: gates (N, 4*Ch, H, W), c (N, Ch, H, W)."""
    i, f, o, g = torch.split(gates, c.shape[1], dim=1)
    c_new = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
    return torch.sigmoid(o) * torch.tanh(c_new), c_new


def fused(backend: str):
    """``fused_inpaint.convlstm_cell(gates, c)`` on ``backend``."""

    def cell(gates: torch.Tensor, c: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        with fused_inpaint.use_backend(backend):
            return fused_inpaint.convlstm_cell(gates, c)

    return cell


def make_inputs(shape: tuple, dtype: torch.dtype, device: str = "cuda") -> dict:
    """gates (N, 4*Ch, H, W), c, grad_h, grad_c_new (N, Ch, H, W), all in ``dtype``."""
    n, ch, h, w = shape
    return {
        "gates": torch.randn(n, 4 * ch, h, w, device=device, dtype=dtype) * 2,
        "c": torch.randn(shape, device=device, dtype=dtype),
        "grad_h": torch.randn(shape, device=device, dtype=dtype),
        "grad_c_new": torch.randn(shape, device=device, dtype=dtype),
    }


def arguments(inputs: dict, pass_: str) -> tuple:
    if pass_ == "forward":
        return inputs["gates"], inputs["c"]
    # Fresh leaves over the same data, so that forward-only runs record no graph.
    leaves = (inputs["gates"].detach().requires_grad_(), inputs["c"].detach().requires_grad_())
    return *leaves, inputs["grad_h"], inputs["grad_c_new"]


def traffic(args: tuple, pass_: str) -> int:
    """Bytes moved by ``pass_``: out, grad and state tensors are c-sized, grad_gates gates-sized."""
    gates_bytes, c_bytes = common.nbytes(args[0]), common.nbytes(args[1])
    if pass_ == "forward":
        return gates_bytes + 3 * c_bytes
    return 3 * gates_bytes + 7 * c_bytes


def bench_gate_case(shape: tuple, dtype: str, impls: dict, checks: dict) -> Iterator[common.Row]:
    """Times every implementation, forward and forward+backward, on one shape and dtype."""
    sets = common.input_sets(lambda: make_inputs(shape, DTYPES[dtype]))
    return common.bench_passes(
        "N={}, Ch={}, {}x{}".format(*shape),
        dtype,
        impls,
        lambda name, pass_: [arguments(inputs, pass_) for inputs in sets],
        traffic,
        functools.partial(common.forward_backward, n_outputs=2),
        checks,
    )


def bench_gates(shape: tuple, impls: dict) -> Iterator[common.Row]:
    """The gate math on one shape: every dtype, pass and implementation."""
    inputs = make_inputs(shape, torch.float32)
    checks = common.check_against_eager(impls, (inputs["gates"], inputs["c"]), **CHECK)
    return (row for dtype in DTYPES for row in bench_gate_case(shape, dtype, impls, checks))


# The whole sequence.


class EagerConvLSTM(torch.nn.Module):
    """One ndrplz-style ConvLSTM layer: per step, a convolution over cat([x_t, h]) and the
    composite gate math; zero initial state. forward(x (N, T, C, H, W)) -> (N, T, Ch, H, W)."""

    def __init__(self, in_channels: int, hidden: int, kernel: int) -> None:
        super().__init__()
        self.hidden = hidden
        self.conv = torch.nn.Conv2d(in_channels + hidden, 4 * hidden, kernel, padding=kernel // 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, steps, _, height, width = x.shape
        h = x.new_zeros(n, self.hidden, height, width)
        c = torch.zeros_like(h)
        outputs = []
        for t in range(steps):
            h, c = composite(self.conv(torch.cat([x[:, t], h], dim=1)), c)
            outputs.append(h)
        return torch.stack(outputs, dim=1)


class FusedConvLSTM(torch.nn.Module):
    """nn.ConvLSTM on one backend, returning only the outputs (N, T, Ch, H, W)."""

    def __init__(self, model: fused_inpaint.nn.ConvLSTM, backend: str) -> None:
        super().__init__()
        self.model = model
        self.backend = backend

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with fused_inpaint.use_backend(self.backend):
            return self.model(x)[0]


def sequence_modules(dtype: torch.dtype, cfg: dict, device: str) -> dict:
    """name -> module(x) -> outputs, sharing one set of weights; unavailable ones as reasons."""
    eager = EagerConvLSTM(cfg["in_channels"], cfg["hidden"], cfg["kernel"])
    model = fused_inpaint.nn.ConvLSTM(cfg["in_channels"], cfg["hidden"], cfg["kernel"])
    model.cells[0].conv.load_state_dict(eager.conv.state_dict())
    modules = {"eager": eager.to(device, dtype)}
    status = fused_inpaint.available_backends()
    for backend in ("cuda", "triton") if device == "cuda" else ("cpu",):
        if status[backend].available:
            modules[f"nn.ConvLSTM ({backend})"] = FusedConvLSTM(model, backend).to(device, dtype)
        else:
            modules[f"nn.ConvLSTM ({backend})"] = status[backend].detail
    return modules


def sequence_input(cfg: dict, dtype: torch.dtype, device: str) -> torch.Tensor:
    shape = (cfg["batch"], cfg["steps"], cfg["in_channels"], cfg["height"], cfg["width"])
    return torch.randn(shape, device=device, dtype=dtype)


def graphed_forward(module: torch.nn.Module, x: torch.Tensor):
    """A function that replays ``module(x)`` captured in a CUDA graph (no autograd)."""
    static_x = x.clone()
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    with torch.cuda.stream(stream), torch.no_grad():
        for _ in range(2):  # warm-up off the capture: Triton compiles, cuDNN picks algorithms
            module(static_x)
    torch.cuda.current_stream().wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph), torch.no_grad():
        static_out = module(static_x)

    def replay(x: torch.Tensor) -> torch.Tensor:
        static_x.copy_(x)
        graph.replay()
        return static_out

    return replay


def sequence_runs(module: torch.nn.Module, x: torch.Tensor, graphed: bool) -> dict:
    """pass -> fn(x, grad_out): the forward alone, and forward + backward to x and weights."""
    weights = list(module.parameters())
    forward, step = module, module
    if graphed:
        forward = graphed_forward(module, x)
        # Forward and backward, each replayed from its own CUDA graph.
        step = torch.cuda.make_graphed_callables(module, (x.detach().requires_grad_(),))

    def forward_only(x, grad_out):
        with torch.no_grad():
            return forward(x)

    def forward_backward(x, grad_out):
        return torch.autograd.grad(step(x), [x, *weights], grad_out)

    return {"forward": forward_only, "forward+backward": forward_backward}


def bench_sequence(cfg: dict) -> Iterator[common.Row]:
    label = "N={batch}, T={steps}, {in_channels}->{hidden}, {height}x{width}, k={kernel}".format(
        **cfg
    )
    for dtype in SEQUENCE_DTYPES:
        modules = sequence_modules(DTYPES[dtype], cfg, "cuda")
        x = sequence_input(cfg, DTYPES[dtype], "cuda")
        out_shape = (*x.shape[:2], cfg["hidden"], *x.shape[3:])
        grad_out = torch.randn(out_shape, device="cuda", dtype=x.dtype)
        with torch.no_grad():
            expected = modules["eager"](x)
        for name, module in modules.items():
            note = ""
            if dtype == "fp32" and not isinstance(module, str) and name != "eager":
                with torch.no_grad():
                    note = common.mismatch(expected, module, (x,), "eager", **SEQUENCE_CHECK)
            for graphed in (False, True):
                impl = name + (" + CUDA graph" if graphed else "")
                if isinstance(module, str):
                    runs = f"unavailable: {module}"
                elif common.budget_spent():  # capturing the graphs alone takes a while
                    runs = common.NOT_MEASURED
                else:
                    try:
                        runs = sequence_runs(module, x, graphed)
                    except Exception as error:  # a failing capture is a row, not a crash
                        runs = common.failure(error)
                for pass_ in common.PASSES:
                    if isinstance(runs, str):
                        row = common.Row(label, dtype, pass_, impl, note=runs)
                    else:
                        args = [(x.detach().requires_grad_(pass_ != "forward"), grad_out)]
                        row = common.measure(label, dtype, pass_, impl, runs[pass_], args, 0)
                    row.note = "; ".join(filter(None, (note, row.note)))
                    common.print_row(row)
                    yield row
        del modules
        torch.cuda.empty_cache()


def sequence_table(rows: list[common.Row]) -> str:
    """Times in ms and speed-up against eager in the same dtype and pass (no GB/s: the
    convolutions dominate)."""
    base = {(r.dtype, r.pass_): r.ms for r in rows if r.impl == "eager"}
    lines = [
        "| sequence | dtype | pass | implementation | time (ms) | vs eager | note |",
        "|---|---|---|---|--:|--:|---|",
    ]
    for r in rows:
        ref = base.get((r.dtype, r.pass_))
        time = f"{r.ms:.2f}" if r.ms is not None else "—"
        speedup = f"{ref / r.ms:.2f}x" if r.ms is not None and ref is not None else "—"
        lines.append(common.table_line([r.shape, r.dtype, r.pass_, r.impl, time, speedup, r.note]))
    return "\n".join(lines)


SEQUENCE_NOTES = [
    "sequence: one layer, zero initial state; eager: `EagerConvLSTM` (per step torch.cat "
    "+ Conv2d over [x_t, h] + the eager gate math, ndrplz/ConvLSTM_pytorch style); "
    "nn.ConvLSTM: the input convolution once for all T, per step the hidden convolution "
    "and the fused cell on that backend; same weights, module cast to the row's dtype",
    "forward: under `torch.no_grad()`; forward+backward: `torch.autograd.grad` of the "
    "outputs w.r.t. x and the weights from a fixed random grad_out; + CUDA graph: the "
    "forward captured with `torch.cuda.graph`, forward+backward with "
    "`torch.cuda.make_graphed_callables`",
    f"before timing, each fused module's float32 forward is checked against eager (allclose "
    f"atol={SEQUENCE_CHECK['atol']:g}, rtol={SEQUENCE_CHECK['rtol']:g}: cuDNN's default TF32 "
    "convolutions, split differently); a mismatch is noted on its float32 rows",
    "GB/s are not given: the convolutions, not memory traffic, set these times",
]


def run_gpu(shapes: list[tuple], out_dir: Path) -> None:
    env, copy_gbps = common.environment_and_copy_bandwidth()
    impls = common.gpu_implementations(composite, fused)
    gate_rows: list[common.Row] = []
    sequence_rows: list[common.Row] = []

    def measure_part(part: tuple[str, dict | tuple]) -> Iterator[None]:
        kind, case = part
        if kind == "sequence":
            rows, measured = sequence_rows, bench_sequence(case)
        else:
            rows, measured = gate_rows, bench_gates(case, impls)
        for row in measured:
            rows.append(row)
            yield

    def render() -> str:
        text = common.report("convlstm_cell", env, copy_gbps, GATE_NOTES, gate_rows)
        if sequence_rows:
            table = sequence_table(sequence_rows)
            text += common.section("nn.ConvLSTM sequence", SEQUENCE_NOTES, table)
        return text

    # The sequence comes second, before the other gate shapes.
    parts = [("gates", shapes[0]), ("sequence", SEQUENCE)]
    parts += [("gates", shape) for shape in shapes[1:]]
    common.measure_and_write(OP, env, out_dir, parts, measure_part, render)


def main(argv: list[str] | None = None) -> int:
    description = "convlstm_cell and ConvLSTM GPU benchmark"
    return common.gpu_main(argv, OP, description, SHAPES, run_gpu)


# CPU figures (pytest-benchmark): cpu backend vs torch reference backend vs eager composite.


def pytest_generate_tests(metafunc):
    impls = common.cpu_implementations(fused, composite)
    common.parametrize_implementations(metafunc, "cpu_impl", impls)
    modules = sequence_modules(torch.float32, CPU_SEQUENCE, "cpu")
    common.parametrize_implementations(metafunc, "cpu_sequence", modules)


def cpu_inputs() -> dict:
    torch.manual_seed(0)
    return make_inputs(CPU_SHAPE, torch.float32, "cpu")


def test_cpu_forward(benchmark, cpu_impl):
    inputs = cpu_inputs()
    benchmark.group = f"convlstm_cell forward {CPU_SHAPE} float32"
    benchmark(cpu_impl, *arguments(inputs, "forward"))


def test_cpu_forward_backward(benchmark, cpu_impl):
    inputs = cpu_inputs()
    benchmark.group = f"convlstm_cell forward+backward {CPU_SHAPE} float32"
    run = common.forward_backward(cpu_impl, n_outputs=2)
    benchmark(run, *arguments(inputs, "forward+backward"))


def test_cpu_sequence_forward(benchmark, cpu_sequence):
    torch.manual_seed(0)
    x = sequence_input(CPU_SEQUENCE, torch.float32, "cpu")
    benchmark.group = f"ConvLSTM sequence forward {CPU_SEQUENCE} float32"
    with torch.no_grad():
        benchmark(cpu_sequence, x)


if __name__ == "__main__":
    sys.exit(main())
