"""convlstm_cell (SPEC 3.5) on every backend against the float64 reference, and the
ConvLSTM modules built on it (SPEC 3.6)."""

from __future__ import annotations

import math

import pytest
import torch
from support import (
    DTYPE_CASES,
    HAS_GPU,
    MAIN_CASE,
    assert_matches_reference,
    backend_params,
    check_second_order,
    dtype_cases,
    interpreted,
    own_process_on_cuda,
    sanitized_params,
    with_layout,
)

import fused_inpaint as fi
from fused_inpaint import reference
from fused_inpaint.ops.convlstm_cell import OPS

BACKENDS = backend_params("convlstm_cell")
KERNEL_BACKENDS = backend_params("convlstm_cell", backends=("cpu", "cuda", "triton"))
HALF_BACKENDS = backend_params("convlstm_cell", backends=("cuda", "triton"))
GPU_BACKENDS = [p for p in HALF_BACKENDS if p.values[1] == "cuda"]

# name: (hidden shape (N, Ch, H, W), layout, gates kind, with c)
CASES = {
    "odd": ((2, 3, 3, 7), "contiguous", "normal", True),
    "one_channel": ((1, 1, 4, 6), "contiguous", "normal", True),
    "row": ((2, 2, 1, 9), "contiguous", "normal", True),
    "column": ((1, 3, 5, 1), "contiguous", "normal", True),
    "channels_last": ((2, 5, 2, 3), "channels_last", "normal", True),
    "strided": ((2, 3, 3, 4), "strided", "normal", True),
    "no_state": ((2, 3, 2, 7), "contiguous", "normal", False),
    "no_state_channels_last": ((1, 4, 3, 5), "channels_last", "normal", False),
    "saturating": ((2, 3, 2, 5), "contiguous", "saturating", True),
    "saturating_no_state": ((1, 2, 3, 4), "strided", "saturating", False),
}
# The CUDA kernels' extreme inputs, besides the saturating cases of CASES: gates of +-1e30
# and +-inf on a 1x1 frame, and no channels.
EXTREMES = {
    "pixel": ((1, 3, 1, 1), "contiguous", "infinite", True),
    "no_channels": ((2, 0, 3, 4), "contiguous", "normal", True),
}


def make_gates(kind: str, n: int, ch: int, h: int, w: int) -> torch.Tensor:
    """Float64 pre-activations (N, 4*Ch, H, W); "saturating": half of them at +-30 or beyond;
    "infinite": half of them +-1e30 or +-inf."""
    gates = torch.randn(n, 4 * ch, h, w, dtype=torch.float64) * 2
    if kind != "normal":
        far = torch.rand(gates.shape) < 0.5
        signs = torch.where(torch.rand(gates.shape) < 0.5, -1.0, 1.0).double()
        if kind == "saturating":
            magnitudes = 30 + 10 * torch.rand(gates.shape).double()
        else:
            magnitudes = torch.where(torch.rand(gates.shape) < 0.5, 1e30, float("inf")).double()
        gates = torch.where(far, signs * magnitudes, gates)
    return gates


def make_inputs(case: str, dtype_case: str, device: str):
    """(gates, c or None, grad_h, grad_c_new), in the case's layout and dtypes."""
    (n, ch, h, w), layout, kind, with_c = (CASES | EXTREMES)[case]
    dtype, cell_dtype = DTYPE_CASES[dtype_case]
    if not with_c:
        cell_dtype = dtype
    gates = make_gates(kind, n, ch, h, w).to(device=device, dtype=dtype)
    c = (torch.randn(n, ch, h, w, dtype=torch.float64) * 2).to(device=device, dtype=cell_dtype)
    grad_h = torch.randn(n, ch, h, w, device=device).to(dtype)
    grad_c_new = torch.randn(n, ch, h, w, device=device).to(cell_dtype)
    gates, c, grad_h, grad_c_new = (with_layout(t, layout) for t in (gates, c, grad_h, grad_c_new))
    return gates, (c if with_c else None), grad_h, grad_c_new


def run(backend, gates, c):
    with fi.use_backend(backend):
        return fi.convlstm_cell(gates, c)


def reference_outputs(gates, c, grad_h, grad_c_new):
    """(h_new, c_new, grad_gates, grad_c) of the reference in float64 and in the inputs' own
    dtypes (grad_c None without c)."""
    results = []
    for cast in (lambda t: t.detach().double(), lambda t: t.detach().clone()):
        rg = cast(gates).requires_grad_()
        rc = None if c is None else cast(c).requires_grad_()
        h_new, c_new = reference.convlstm_cell(rg, rc)
        inputs = (rg,) if c is None else (rg, rc)
        grads = torch.autograd.grad((h_new, c_new), inputs, (cast(grad_h), cast(grad_c_new)))
        results.append((h_new, c_new, grads[0], grads[1] if c is not None else None))
    return results


def check_against_reference(backend, device, case, dtype_case, inputs_device):
    """The cell on ``backend`` with the case's inputs moved to ``device``, forward and
    backward, against the reference on ``inputs_device``, in float64 and in the inputs'
    precision."""
    inputs = make_inputs(case, dtype_case, inputs_device)
    gates, c, grad_h, grad_c_new = (None if t is None else t.to(device) for t in inputs)
    gates.requires_grad_()
    leaves = (gates,) if c is None else (gates, c.requires_grad_())
    h_new, c_new = run(backend, gates, c)
    grads = torch.autograd.grad((h_new, c_new), leaves, (grad_h, grad_c_new))
    expected64, expected_lowp = reference_outputs(*inputs)
    tag = f"{dtype_case} {case}"
    assert h_new.dtype == gates.dtype and c_new.dtype == grad_c_new.dtype
    names = ("h_new", "c_new", "grad_gates", "grad_c")
    outputs = zip(names, (h_new, c_new, *grads), expected64, expected_lowp, strict=False)
    for name, actual, e64, elp in outputs:  # no grad_c without c
        assert_matches_reference(actual, e64, elp, f"{name} {tag}")


def repeats_a_plain_case(case: str, dtype_case: str) -> bool:
    """Without c, the float32-c dtype cases repeat the plain ones."""
    with_c = (CASES | EXTREMES)[case][3]
    return not with_c and DTYPE_CASES[dtype_case][1] != DTYPE_CASES[dtype_case][0]


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("case", list(CASES))
def test_forward_and_backward_match_reference(backend, device, case):
    # Under the interpreter every case runs in every dtype, on the GPU the main one.
    every_dtype = device == "cpu" or case == MAIN_CASE[device]
    for dtype_case in dtype_cases(backend, device, every_dtype):
        if not repeats_a_plain_case(case, dtype_case):
            check_against_reference(backend, device, case, dtype_case, device)


@pytest.mark.parametrize("dtype_case", sanitized_params("convlstm_cell"))
def test_cuda_kernels_on_extreme_inputs(dtype_case):
    """Forward and backward, with and without c, on the extreme cases. The reference runs on
    the CPU: under compute-sanitizer, little but the kernels runs on the GPU."""
    for case in ("saturating", "saturating_no_state", *EXTREMES):
        if not repeats_a_plain_case(case, dtype_case):
            check_against_reference("cuda", "cuda", case, dtype_case, "cpu")


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_outputs_follow_the_inputs_memory_format(backend, device):
    gates = with_layout(torch.randn(2, 12, 4, 5, device=device), "channels_last")
    c_last = with_layout(torch.randn(2, 3, 4, 5, device=device), "channels_last")
    h_new, c_new = run(backend, gates, c_last)
    assert h_new.is_contiguous(memory_format=torch.channels_last)
    assert c_new.is_contiguous(memory_format=torch.channels_last)
    h_new, c_new = run(backend, gates, None)
    assert h_new.is_contiguous(memory_format=torch.channels_last)
    assert c_new.is_contiguous(memory_format=torch.channels_last)
    h_new, c_new = run(backend, gates.contiguous(), c_last)
    assert h_new.is_contiguous() and c_new.is_contiguous(memory_format=torch.channels_last)
    if backend != "torch":  # the reference's gradients are autograd's business
        gates.requires_grad_()
        h_new, c_new = run(backend, gates, c_last.requires_grad_())
        grads = torch.autograd.grad(h_new.sum() + c_new.sum(), (gates, c_last))
        assert all(g.is_contiguous(memory_format=torch.channels_last) for g in grads)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("with_c", [True, False], ids=["c", "no_c"])
def test_gradcheck_float64(backend, device, with_c):
    gates = (torch.randn(1, 8, 1, 3, dtype=torch.float64, device=device) * 2).requires_grad_()
    c = torch.randn(1, 2, 1, 3, dtype=torch.float64, device=device, requires_grad=True)
    inputs = (gates, c) if with_c else (gates,)

    def cell(gates, c=None):
        return run(backend, gates, c)

    assert torch.autograd.gradcheck(
        cell, inputs, eps=1e-6, atol=1e-8, fast_mode=interpreted(backend, device)
    )


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_without_a_cell_state_the_forget_gate_is_not_read(backend, device):
    # c=None has no forget term (not a zero one): a NaN or inf forget gate changes nothing.
    gates = torch.randn(1, 12, 2, 3, dtype=torch.float64, device=device)
    gates[:, 3:6, 0] = torch.tensor([math.nan, math.inf, -math.inf], dtype=torch.float64)
    gates.requires_grad_()
    h, c_new = run(backend, gates, None)
    grad = torch.autograd.grad((h + c_new).sum(), gates)[0]
    ref_gates = gates.detach().cpu().requires_grad_()
    ref_h, ref_c = reference.convlstm_cell(ref_gates, None)
    (ref_grad,) = torch.autograd.grad((ref_h + ref_c).sum(), ref_gates)
    for mine, theirs in ((h, ref_h), (c_new, ref_c), (grad, ref_grad)):
        assert torch.isfinite(mine).all()
        torch.testing.assert_close(mine.cpu(), theirs)
    assert torch.equal(grad[:, 3:6], torch.zeros_like(grad[:, 3:6]))


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_gradients_of_gradients(backend, device):
    gates = (torch.randn(1, 8, 1, 3, dtype=torch.float64, device=device) * 2).requires_grad_()
    c = torch.randn(1, 2, 1, 3, dtype=torch.float64, device=device, requires_grad=True)

    def cell(gates, c):
        h, c_new = run(backend, gates, c)
        return h * c_new

    check_second_order(backend, cell, (gates, c))


def backward_op_of(op):
    name = op._schema.name.split("::")[1].replace("convlstm_cell", "convlstm_cell_backward")
    return getattr(torch.ops.fused_inpaint, name).default


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
@pytest.mark.parametrize(
    "layout,with_c,dtype_case",
    [
        ("contiguous", True, "fp32"),
        ("channels_last", False, "fp32"),
        ("strided", True, "fp16-flow32"),
    ],
)
def test_opcheck(backend, device, layout, with_c, dtype_case):
    dtype, cell_dtype = DTYPE_CASES[dtype_case]
    if dtype not in fi._backend.DTYPES[backend]:
        pytest.skip(f"{backend} does not take {dtype}")
    gates = with_layout(torch.randn(2, 12, 3, 4, device=device).to(dtype), layout)
    c = with_layout(torch.randn(2, 3, 3, 4, device=device).to(cell_dtype), layout)
    c = c if with_c else None
    op = OPS[backend]
    torch.library.opcheck(op, (gates.requires_grad_(), c if c is None else c.requires_grad_()))
    grad_h = torch.randn(2, 3, 3, 4, device=device).to(dtype)
    grad_c_new = torch.randn(2, 3, 3, 4, device=device).to(cell_dtype if with_c else dtype)
    args = (grad_h, grad_c_new, gates.detach(), None if c is None else c.detach())
    torch.library.opcheck(backward_op_of(op), args)


@pytest.mark.parametrize("backend,device", BACKENDS)
def test_torch_compile_fullgraph(backend, device):
    torch._dynamo.reset()
    gates = torch.randn(2, 12, 3, 4, device=device, requires_grad=True)
    c = torch.randn(2, 3, 3, 4, device=device, requires_grad=True)

    def loss(gates, c):
        h1, c1 = fi.convlstm_cell(gates, None)
        h2, c2 = fi.convlstm_cell(gates * 0.5, c + c1)
        return (h1 * h2).sum() + (c2**2).sum()

    with fi.use_backend(backend):
        compiled = torch.compile(loss, fullgraph=True)
        value = compiled(gates, c)
        grads = torch.autograd.grad(value, (gates, c))
        expected = loss(gates, c)
        expected_grads = torch.autograd.grad(expected, (gates, c))
    torch.testing.assert_close(value, expected)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e)


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize("with_c", [True, False], ids=["c", "no_c"])
def test_empty_inputs(backend, device, with_c):
    for n, ch, h, w in [(0, 3, 4, 5), (2, 0, 4, 5), (2, 3, 0, 5), (2, 3, 4, 0)]:
        gates = torch.randn(n, 4 * ch, h, w, device=device, requires_grad=True)
        c = torch.randn(n, ch, h, w, device=device, requires_grad=True) if with_c else None
        h_new, c_new = run(backend, gates, c)
        assert h_new.shape == c_new.shape == (n, ch, h, w)
        inputs = (gates, c) if with_c else (gates,)
        grads = torch.autograd.grad((h_new.sum() + c_new.sum()), inputs, allow_unused=True)
        for grad, t in zip(grads, inputs, strict=True):
            assert grad is None or grad.shape == t.shape


def test_bad_arguments_name_the_argument():
    gates = torch.randn(2, 12, 5, 6)
    c = torch.randn(2, 3, 5, 6)
    cases = [
        ((gates[0], c), ValueError, r"gates must have shape \(N, 4\*Ch, H, W\)"),
        ((gates[:, :10], c), ValueError, "not a multiple of 4"),
        ((gates, c[0]), ValueError, "c must have shape"),
        ((gates, c[:, :2]), ValueError, r"c must have shape \(N, Ch, H, W\)"),
        ((gates, c[:1]), ValueError, "c must have shape"),
        ((gates, c[..., :5]), ValueError, "c must have shape"),
        ((gates.long(), c), TypeError, "gates must be a floating-point tensor"),
        ((gates, c.long()), TypeError, "c must be a floating-point tensor"),
        ((gates, c.double()), TypeError, "c must have the dtype of gates"),
        ((gates.half(), c.double()), TypeError, "c must have the dtype of gates"),
        ((gates, c.to("meta")), ValueError, "c must be on the same device as gates"),
        (("gates", c), TypeError, "gates must be a torch.Tensor"),
        ((gates, "c"), TypeError, "c must be a torch.Tensor"),
    ]
    for args, error, message in cases:
        with pytest.raises(error, match=message):
            fi.convlstm_cell(*args)


@pytest.mark.parametrize("backend,device", KERNEL_BACKENDS)
@own_process_on_cuda
def test_registered_op_rejects_bad_arguments(backend, device):
    """Direct callers of the registered ops get an error, never a crash."""
    gates = torch.randn(2, 12, 5, 6, device=device)
    c = torch.randn(2, 3, 5, 6, device=device)
    op = OPS[backend]
    for args in [(gates[0], c), (gates[:, :10], None), (gates, c[:, :2]), (gates, c.double())]:
        with pytest.raises(RuntimeError, match="gates|c "):
            op(*args)
    backward_op = backward_op_of(op)
    grad = torch.randn(2, 3, 5, 6, device=device)
    for args in [
        (grad[:, :2], grad, gates, c),
        (grad, grad[..., :5], gates, c),
        (grad.double(), grad, gates, c),
        (grad, grad.double(), gates, None),
        (grad, grad, gates[:, :8], c),
    ]:
        with pytest.raises(RuntimeError):
            backward_op(*args)


def test_backend_must_run_on_the_tensors_device():
    gates = torch.randn(1, 4, 3, 4)
    with fi.use_backend("cuda"), pytest.raises(RuntimeError, match="backend 'cuda' cannot run"):
        fi.convlstm_cell(gates)
    if fi.available_backends()["cpu"].available:
        with fi.use_backend("cpu"), pytest.raises(TypeError, match="does not support dtype"):
            fi.convlstm_cell(gates.half())


# Modules


def step_by_step(model: fi.nn.ConvLSTM, x: torch.Tensor, state=None):
    """model's outputs from stepping its cells one frame at a time: x (N, T, C, H, W)."""
    hs, cs = [], []
    for layer, cell in enumerate(model.cells):
        layer_state = None if state is None else (state[0][layer], state[1][layer])
        steps = []
        for t in range(x.size(1)):
            layer_state = cell(x[:, t], layer_state)
            steps.append(layer_state[0])
        x = torch.stack(steps, dim=1)
        hs.append(layer_state[0])
        cs.append(layer_state[1])
    return x, (torch.stack(hs), torch.stack(cs))


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize(
    "batch_first,with_state", [(True, False), (False, True)], ids=["batch_first", "time_first"]
)
def test_convlstm_equals_stepping_its_cells(backend, device, batch_first, with_state):
    kw = dict(dtype=torch.float64, device=device)
    model = fi.nn.ConvLSTM(3, 4, kernel_size=(3, 1), num_layers=2, batch_first=batch_first)
    model = model.to(**kw)
    x = torch.randn(2, 3, 3, 2, 5, **kw)  # (N, T, C, H, W)
    state = None
    if with_state:
        state = (torch.randn(2, 2, 4, 2, 5, **kw), torch.randn(2, 2, 4, 2, 5, **kw))
    with fi.use_backend(backend):
        outputs, (h, c) = model(x if batch_first else x.transpose(0, 1).contiguous(), state)
        expected, (expected_h, expected_c) = step_by_step(model, x, state)
    if not batch_first:
        outputs = outputs.transpose(0, 1)
    assert outputs.shape == (2, 3, 4, 2, 5) and h.shape == c.shape == (2, 2, 4, 2, 5)
    torch.testing.assert_close(outputs, expected, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(h, expected_h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(c, expected_c, rtol=1e-12, atol=1e-12)
    weights = list(model.parameters())
    grads = torch.autograd.grad(outputs.sum() + c.sum(), weights)
    expected_grads = torch.autograd.grad(expected.sum() + expected_c.sum(), weights)
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10)


def test_modules_reject_bad_arguments():
    with pytest.raises(ValueError, match="kernel_size must be an odd int"):
        fi.nn.ConvLSTMCell(3, 4, kernel_size=2)
    with pytest.raises(ValueError, match="hidden_channels must be a positive int"):
        fi.nn.ConvLSTMCell(3, 0)
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        fi.nn.ConvLSTM(3, 4, num_layers=0)
    model = fi.nn.ConvLSTM(3, 4)
    with pytest.raises(ValueError, match=r"x must have shape \(N, T, C, H, W\) with C = 3"):
        model(torch.randn(2, 4, 2, 5, 6))
    with pytest.raises(ValueError, match="at least one time step"):
        model(torch.randn(2, 0, 3, 5, 6))


@pytest.mark.parametrize("backend,device", HALF_BACKENDS)
@pytest.mark.parametrize(
    "dtype,cell_dtype",
    [(torch.float16, torch.float32), (torch.bfloat16, None)],
    ids=["fp16-c32", "bf16-c_half"],
)
def test_long_half_precision_sequence_stays_close_to_float32(backend, device, dtype, cell_dtype):
    """100 steps in half precision: finite, and close to the same model in float32. A
    forget-gate bias of 4 makes the cell state a long memory that grows far from zero."""
    # On CPU the Triton interpreter runs one program per image row: a single row.
    n, channels, h, w = (2, 8, 16, 16) if device == "cuda" else (1, 2, 1, 5)
    model = fi.nn.ConvLSTM(channels, channels, cell_dtype=cell_dtype).to(device)
    with torch.no_grad():
        model.cells[0].conv.bias[channels : 2 * channels] = 4.0
    x = torch.randn(n, 100, channels, h, w, device=device) * 2
    with fi.use_backend("torch" if device == "cpu" else backend), torch.no_grad():
        expected, (_, expected_c) = model(x)
    with fi.use_backend(backend), torch.no_grad():
        outputs, (_, c) = model.to(dtype)(x.to(dtype))
    assert outputs.dtype == dtype and c.dtype == (cell_dtype or dtype)
    assert torch.isfinite(outputs).all() and torch.isfinite(c).all()
    # The float32 run's convolutions may be TF32 on the GPU (cuDNN's default).
    atol = 2e-2 if dtype == torch.float16 else 1.5e-1
    torch.testing.assert_close(outputs.float(), expected, rtol=0, atol=atol)
    c_atol = atol / 2 * expected_c.abs().max().item()
    torch.testing.assert_close(c.float(), expected_c, rtol=0, atol=c_atol)


@pytest.mark.parametrize("backend,device", GPU_BACKENDS)
def test_sequence_replays_in_a_cuda_graph(backend, device):
    model = fi.nn.ConvLSTM(4, 8, num_layers=2).to(device)
    x = torch.randn(2, 6, 4, 16, 16, device=device)
    with fi.use_backend(backend):
        expected, _ = model(x)
        static_x = x.clone()
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream), torch.no_grad():
            model(static_x)  # warm-up outside capture (Triton compiles here)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph), torch.no_grad():
            static_out, _ = model(static_x)
        static_x.copy_(x)
        graph.replay()
    torch.testing.assert_close(static_out, expected.detach())


class PeerConvLSTM(torch.nn.Module):
    """The ndrplz/ConvLSTM_pytorch composite, rewritten: per step torch.cat + Conv2d over
    [input, h], split into (i, f, o, g), sigmoid/tanh; zero initial state; outputs and
    states of every layer, or of the last one."""

    def __init__(self, input_dim, hidden_dims, kernel_sizes, batch_first, bias, return_all_layers):
        super().__init__()
        self.hidden_dims = hidden_dims
        self.batch_first = batch_first
        self.return_all_layers = return_all_layers
        self.cell_list = torch.nn.ModuleList()
        for layer, (hidden, (kh, kw)) in enumerate(zip(hidden_dims, kernel_sizes, strict=True)):
            cell = torch.nn.Module()
            in_dim = input_dim if layer == 0 else hidden_dims[layer - 1]
            cell.conv = torch.nn.Conv2d(
                in_dim + hidden, 4 * hidden, (kh, kw), padding=(kh // 2, kw // 2), bias=bias
            )
            self.cell_list.append(cell)

    def forward(self, x):
        if not self.batch_first:
            x = x.permute(1, 0, 2, 3, 4)
        n, steps, _, height, width = x.shape
        outputs, states = [], []
        for hidden, cell in zip(self.hidden_dims, self.cell_list, strict=True):
            h = torch.zeros(n, hidden, height, width, dtype=x.dtype, device=x.device)
            c = torch.zeros_like(h)
            seq = []
            for t in range(steps):
                gates = cell.conv(torch.cat([x[:, t], h], dim=1))
                i, f, o, g = torch.split(gates, hidden, dim=1)
                c = torch.sigmoid(f) * c + torch.sigmoid(i) * torch.tanh(g)
                h = torch.sigmoid(o) * torch.tanh(c)
                seq.append(h)
            x = torch.stack(seq, dim=1)
            outputs.append(x)
            states.append([h, c])
        if not self.return_all_layers:
            return outputs[-1:], states[-1:]
        return outputs, states


@pytest.mark.parametrize("backend,device", BACKENDS)
@pytest.mark.parametrize(
    "batch_first,bias,return_all_layers",
    [(False, True, False), (True, False, True)],
)
def test_compat_convlstm_matches_the_peer(backend, device, batch_first, bias, return_all_layers):
    hidden, kernels = [4, 3], [(3, 3), (1, 3)]
    module = fi.compat.ConvLSTM(3, hidden, kernels, 2, batch_first, bias, return_all_layers)
    module = module.to(device=device, dtype=torch.float64)
    peer = PeerConvLSTM(3, hidden, kernels, batch_first, bias, return_all_layers)
    peer = peer.to(device=device, dtype=torch.float64)
    peer.load_state_dict(module.state_dict())
    x = torch.randn(3, 2, 3, 3, 4, dtype=torch.float64, device=device)  # (T or B, B or T, ...)
    with fi.use_backend(backend):
        outputs, states = module(x)
    expected_outputs, expected_states = peer(x)
    assert len(outputs) == len(states) == (2 if return_all_layers else 1)
    assert isinstance(states[0], list)
    actual = [*outputs, *(t for s in states for t in s)]
    expected = [*expected_outputs, *(t for s in expected_states for t in s)]
    for a, e in zip(actual, expected, strict=True):
        torch.testing.assert_close(a, e, rtol=1e-12, atol=1e-12)
    loss = sum((a * torch.cos(e.detach())).sum() for a, e in zip(actual, expected, strict=True))
    expected_loss = sum((e * torch.cos(e.detach())).sum() for e in expected)
    grads = torch.autograd.grad(loss, list(module.parameters()))
    expected_grads = torch.autograd.grad(expected_loss, list(peer.parameters()))
    for g, e in zip(grads, expected_grads, strict=True):
        torch.testing.assert_close(g, e, rtol=1e-10, atol=1e-10)


def test_compat_convlstm_checks_arguments_like_the_peer():
    with pytest.raises(ValueError, match="`kernel_size` must be tuple or list of tuples"):
        fi.compat.ConvLSTM(3, 4, 3, 1)
    with pytest.raises(ValueError, match="`kernel_size` must be tuple or list of tuples"):
        fi.compat.ConvLSTM(3, 4, [3, 3], 2)
    with pytest.raises(ValueError, match="Inconsistent list length"):
        fi.compat.ConvLSTM(3, [4, 4], (3, 3), 3)
    module = fi.compat.ConvLSTM(3, 4, (3, 3), 1)
    assert set(module.state_dict()) == {"cell_list.0.conv.weight", "cell_list.0.conv.bias"}
    assert module.state_dict()["cell_list.0.conv.weight"].shape == (16, 7, 3, 3)
    x = torch.randn(2, 1, 3, 4, 4)
    with pytest.raises(NotImplementedError):
        module(x, hidden_state=[(torch.zeros(1, 4, 4, 4), torch.zeros(1, 4, 4, 4))])


def test_nan_poisoning_is_active():
    assert torch.isnan(torch.empty(8)).all()
    if HAS_GPU:
        assert torch.isnan(torch.empty(8, device="cuda")).all()
