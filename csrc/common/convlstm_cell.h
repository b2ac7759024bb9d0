// convlstm_cell per-element math and argument checks, shared by the CPU and CUDA kernels
// (SPEC 3.5). Gates come in chunks (i, f, o, g) along channels, Ch channels apart.
#pragma once

#include <torch/headeronly/core/MemoryFormat.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <optional>
#include <tuple>

#include "common/tensor.h"

namespace fused_inpaint {

// Arithmetic runs in float32 whatever the storage dtype, float64 for float64 gates.
template <typename gate_t>
struct CellAccOf {
  using type = float;
};
template <>
struct CellAccOf<double> {
  using type = double;
};

// exp(v) for v <= 0. On the host in float32 without a library call or a branch, so that
// the CPU kernel's loops vectorize: v = n ln2 + r with |r| <= ln2 / 2, exp(r) by its
// Taylor series to degree 7 (truncation error below 1e-8 relative), 2^n written into the
// exponent bits. Below -87 (exp(-87) ~ 1.6e-38, near the smallest normal float) it
// returns 0; NaN passes through.
FI_HOST_DEVICE float exp_nonpositive(float v) {
#if defined(__CUDA_ARCH__)
  return expf(v);
#else
  constexpr float kLowest = -87.0f;
  const bool underflow = v < kLowest;
  v = underflow ? kLowest : v;
  constexpr float kRound = 12582912.0f;  // 1.5 * 2^23: adding it rounds to an integer
  constexpr float kLn2High = 0.693359375f;  // ln2 in 9 bits: n * kLn2High is exact
  constexpr float kLn2Low = -2.12194440054690583e-4f;  // ln2 - kLn2High
  const float shifted = v * 1.44269504088896341f + kRound;
  const float n = shifted - kRound;
  const float r = (v - n * kLn2High) - n * kLn2Low;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  uint32_t shifted_bits, round_bits;
  std::memcpy(&shifted_bits, &shifted, sizeof(float));
  std::memcpy(&round_bits, &kRound, sizeof(float));
  const uint32_t scale_bits = (shifted_bits - round_bits + 127u) << 23;  // 2^n
  float scale;
  std::memcpy(&scale, &scale_bits, sizeof(float));
  return underflow ? 0.0f : p * scale;
#endif
}

FI_HOST_DEVICE double exp_nonpositive(double v) {
#if defined(__CUDA_ARCH__)
  return exp(v);
#else
  return std::exp(v);
#endif
}

// Both only take exp of -|v|: no overflow for saturated gates, full relative precision on
// both tails of the sigmoid. Both sides of each select are computed first, which lets
// the compiler turn the select into a blend.
template <typename T>
FI_HOST_DEVICE T sigmoid_of(T v) {
  const T e = exp_nonpositive(v < T(0) ? v : -v);
  const T r = T(1) / (T(1) + e);
  const T negative = e * r;
  return v >= T(0) ? r : negative;
}

template <typename T>
FI_HOST_DEVICE T tanh_of(T v) {
  const T e = exp_nonpositive(T(2) * (v < T(0) ? v : -v));
  const T t = (T(1) - e) / (T(1) + e);
  return v >= T(0) ? t : -t;
}

// The activated gates and the new cell state of one element.
template <typename acc_t>
struct CellActivations {
  acc_t i, f, o, g;  // sigmoid(i), sigmoid(f), sigmoid(o), tanh(g)
  acc_t c_new, tanh_c_new;
};

// Without a cell state (has_c false) there is no forget term, not a zero one: a NaN
// forget gate then leaves c_new as it is.
template <typename acc_t>
FI_HOST_DEVICE CellActivations<acc_t> cell_activations(acc_t pre_i, acc_t pre_f, acc_t pre_o,
                                                        acc_t pre_g, acc_t c, bool has_c) {
  CellActivations<acc_t> a;
  a.i = sigmoid_of(pre_i);
  a.f = sigmoid_of(pre_f);
  a.o = sigmoid_of(pre_o);
  a.g = tanh_of(pre_g);
  a.c_new = has_c ? a.f * c + a.i * a.g : a.i * a.g;
  a.tanh_c_new = tanh_of(a.c_new);
  return a;
}

// Gradients w.r.t. the four pre-activations and the previous cell state.
template <typename acc_t>
struct CellGrads {
  acc_t i, f, o, g, c;
};

template <typename acc_t>
FI_HOST_DEVICE CellGrads<acc_t> cell_grads(const CellActivations<acc_t>& a, acc_t c,
                                           acc_t grad_h, acc_t grad_c_new, bool has_c) {
  const acc_t one = 1;
  // The cell state reaches the loss directly and through h_new.
  const acc_t dc = grad_c_new + grad_h * a.o * (one - a.tanh_c_new * a.tanh_c_new);
  CellGrads<acc_t> d;
  d.i = dc * a.g * a.i * (one - a.i);
  d.f = has_c ? dc * c * a.f * (one - a.f) : acc_t(0);
  d.o = grad_h * a.tanh_c_new * a.o * (one - a.o);
  d.g = dc * a.i * (one - a.g * a.g);
  d.c = dc * a.f;
  return d;
}

// Pointer to gate chunk 0 (i) of an element; chunk k lies k * step elements further.
template <typename gate_t>
struct GateChunks {
  gate_t* i;
  int64_t step;

  FI_HOST_DEVICE gate_t& operator[](int k) const { return i[k * step]; }
};

template <typename gate_t>
FI_HOST_DEVICE GateChunks<gate_t> gate_chunks(const View4<gate_t>& gates, int64_t hidden,
                                              int64_t n, int64_t ch, int64_t y, int64_t x) {
  return {&gates.at(n, ch, y, x), hidden * gates.stride[1]};
}

// The inputs of one element: the four pre-activations and the previous cell state.
template <typename acc_t>
struct CellInputs {
  acc_t i, f, o, g, c;
};

// gates (N, 4*Ch, H, W) and c (N, Ch, H, W); a null c means a zero cell state.
template <typename gate_t, typename cell_t>
struct CellInputViews {
  using acc_t = typename CellAccOf<gate_t>::type;

  View4<const gate_t> gates;
  View4<const cell_t> c;
  int64_t hidden;

  FI_HOST_DEVICE bool has_c() const { return c.data != nullptr; }

  FI_HOST_DEVICE CellInputs<acc_t> load(int64_t n, int64_t ch, int64_t y, int64_t x) const {
    const GateChunks<const gate_t> pre = gate_chunks(gates, hidden, n, ch, y, x);
    const acc_t c_prev = has_c() ? acc_t(c.at(n, ch, y, x)) : acc_t(0);
    return {acc_t(pre[0]), acc_t(pre[1]), acc_t(pre[2]), acc_t(pre[3]), c_prev};
  }
};

// c_new = sigmoid(f) * c + sigmoid(i) * tanh(g), h_new = sigmoid(o) * tanh(c_new).
template <typename gate_t, typename cell_t>
struct ConvLSTMCellForward {
  using acc_t = typename CellAccOf<gate_t>::type;

  CellInputViews<gate_t, cell_t> inputs;
  View4<gate_t> h_new;
  View4<cell_t> c_new;

  FI_HOST_DEVICE void store(int64_t n, int64_t ch, int64_t y, int64_t x,
                            const CellActivations<acc_t>& a) const {
    h_new.at(n, ch, y, x) = gate_t(a.o * a.tanh_c_new);
    c_new.at(n, ch, y, x) = cell_t(a.c_new);
  }

  FI_HOST_DEVICE void element(int64_t n, int64_t ch, int64_t y, int64_t x) const {
    const CellInputs<acc_t> in = inputs.load(n, ch, y, x);
    store(n, ch, y, x, cell_activations(in.i, in.f, in.o, in.g, in.c, inputs.has_c()));
  }
};

// One pass: recomputes the activations from gates and c, writes the gradients of all four
// gates and (when c is given) of c.
template <typename gate_t, typename cell_t>
struct ConvLSTMCellBackward {
  using acc_t = typename CellAccOf<gate_t>::type;

  CellInputViews<gate_t, cell_t> inputs;
  View4<const gate_t> grad_h;
  View4<const cell_t> grad_c_new;
  View4<gate_t> grad_gates;
  View4<cell_t> grad_c;

  FI_HOST_DEVICE void store(int64_t n, int64_t ch, int64_t y, int64_t x,
                            const CellGrads<acc_t>& d) const {
    const GateChunks<gate_t> out = gate_chunks(grad_gates, inputs.hidden, n, ch, y, x);
    out[0] = gate_t(d.i);
    out[1] = gate_t(d.f);
    out[2] = gate_t(d.o);
    out[3] = gate_t(d.g);
    if (grad_c.data != nullptr) grad_c.at(n, ch, y, x) = cell_t(d.c);
  }

  FI_HOST_DEVICE void element(int64_t n, int64_t ch, int64_t y, int64_t x) const {
    const CellInputs<acc_t> in = inputs.load(n, ch, y, x);
    const acc_t gh = acc_t(grad_h.at(n, ch, y, x)), gc = acc_t(grad_c_new.at(n, ch, y, x));
    const bool has_c = inputs.has_c();
    const CellActivations<acc_t> a = cell_activations(in.i, in.f, in.o, in.g, in.c, has_c);
    store(n, ch, y, x, cell_grads(a, in.c, gh, gc, has_c));
  }
};

template <typename T>
View4<T> optional_view4(const std::optional<Tensor>& t) {
  return t.has_value() ? view4<T>(t.value()) : View4<T>{};
}

// Both kernels walk the elements in the memory order of the gates: channels innermost
// when the gates are channels_last.
inline bool channels_innermost(const Tensor& gates) { return gates.stride(1) < gates.stride(3); }

// Checks every convlstm_cell kernel repeats for direct callers of the registered op.
inline void check_convlstm_cell_args(const Tensor& gates, const std::optional<Tensor>& c) {
  check_rank(gates, "gates", 4, "(N, 4*Ch, H, W)");
  STD_TORCH_CHECK(gates.size(1) % 4 == 0,
                  "gates must have shape (N, 4*Ch, H, W): its channel count ", gates.size(1),
                  " is not a multiple of 4");
  if (!c.has_value()) return;
  const Tensor& cell = c.value();
  check_rank(cell, "c", 4, "(N, Ch, H, W)");
  const int64_t expected[4] = {gates.size(0), gates.size(1) / 4, gates.size(2), gates.size(3)};
  for (int64_t d = 0; d < 4; ++d) check_size(cell, "c", d, expected[d], "(N, Ch, H, W)");
  check_same_device(cell, "c", gates, "gates");
  check_companion_dtype(cell, "c", gates, "gates");
}

inline void check_convlstm_cell_backward_args(const Tensor& grad_h, const Tensor& grad_c_new,
                                              const Tensor& gates,
                                              const std::optional<Tensor>& c) {
  check_convlstm_cell_args(gates, c);
  const int64_t expected[4] = {gates.size(0), gates.size(1) / 4, gates.size(2), gates.size(3)};
  check_rank(grad_h, "grad_h", 4, "(N, Ch, H, W)");
  check_rank(grad_c_new, "grad_c_new", 4, "(N, Ch, H, W)");
  for (int64_t d = 0; d < 4; ++d) {
    check_size(grad_h, "grad_h", d, expected[d], "(N, Ch, H, W)");
    check_size(grad_c_new, "grad_c_new", d, expected[d], "(N, Ch, H, W)");
  }
  check_same_device(grad_h, "grad_h", gates, "gates");
  check_same_device(grad_c_new, "grad_c_new", gates, "gates");
  STD_TORCH_CHECK(grad_h.scalar_type() == gates.scalar_type(), "grad_h must have gates' dtype");
  const ScalarType cell_dtype = c.has_value() ? c.value().scalar_type() : gates.scalar_type();
  STD_TORCH_CHECK(grad_c_new.scalar_type() == cell_dtype,
                  "grad_c_new must have the dtype of c (of gates when c is None)");
}

// (h_new, c_new): h_new (N, Ch, H, W) in gates' dtype, channels_last when the gates are
// (and are not also contiguous), else contiguous; c_new like c, or like h_new without c.
// fused_inpaint/ops/convlstm_cell.py allocates the same for the fake and Triton kernels.
inline std::tuple<Tensor, Tensor> new_convlstm_cell_outputs(const Tensor& gates,
                                                            const std::optional<Tensor>& c) {
  using torch::headeronly::MemoryFormat;
  const bool channels_last = !gates.is_contiguous() && is_channels_last_contiguous(gates);
  const int64_t sizes[4] = {gates.size(0), gates.size(1) / 4, gates.size(2), gates.size(3)};
  const auto new_hidden = [&](const char* name) {
    return allocate_output(name, sizes[0] * sizes[1] * sizes[2] * sizes[3], gates.scalar_type(),
                           [&] {
                             return torch::stable::empty(
                                 torch::headeronly::IntHeaderOnlyArrayRef(sizes, 4),
                                 gates.scalar_type(), std::nullopt, gates.device(), std::nullopt,
                                 channels_last ? MemoryFormat::ChannelsLast
                                               : MemoryFormat::Contiguous);
                           });
  };
  Tensor h_new = new_hidden("h_new");
  Tensor c_new = c.has_value() ? output_like(c.value(), "c_new") : new_hidden("c_new");
  return {h_new, c_new};
}

// (grad_gates like gates, grad_c like c); without c, grad_c is an empty (0,) tensor.
inline std::tuple<Tensor, Tensor> new_convlstm_cell_grads(const Tensor& gates,
                                                          const std::optional<Tensor>& c) {
  const int64_t empty_size[1] = {0};
  const torch::headeronly::IntHeaderOnlyArrayRef empty(empty_size, 1);
  Tensor grad_c = c.has_value() ? output_like(c.value(), "grad_c")
                                : torch::stable::new_empty(gates, empty);
  return {output_like(gates, "grad_gates"), grad_c};
}

// Calls f(gate_t{}, cell_t{}): cell_t is gate_t, or float for a float32 c under
// half-precision gates.
template <bool kWithHalf, typename F>
void dispatch_convlstm_cell(const Tensor& gates, const std::optional<Tensor>& c, const F& f) {
  dispatch_with_companion<kWithHalf>(gates, "gates", c.has_value() ? c.value() : gates, f);
}

// The CPU and CUDA entry points differ only in how they walk the elements: these build the
// op for the dtypes of gates and c and hand it to run(op).
template <bool kWithHalf, typename Run>
void with_convlstm_cell_forward(const Tensor& gates, const std::optional<Tensor>& c,
                                const Tensor& h_new, const Tensor& c_new, const Run& run) {
  dispatch_convlstm_cell<kWithHalf>(gates, c, [&](auto gate_tag, auto cell_tag) {
    using gate_t = decltype(gate_tag);
    using cell_t = decltype(cell_tag);
    run(ConvLSTMCellForward<gate_t, cell_t>{
        {view4<const gate_t>(gates), optional_view4<const cell_t>(c), h_new.size(1)},
        view4<gate_t>(h_new),
        view4<cell_t>(c_new)});
  });
}

template <bool kWithHalf, typename Run>
void with_convlstm_cell_backward(const Tensor& grad_h, const Tensor& grad_c_new,
                                 const Tensor& gates, const std::optional<Tensor>& c,
                                 const Tensor& grad_gates, const Tensor& grad_c, const Run& run) {
  dispatch_convlstm_cell<kWithHalf>(gates, c, [&](auto gate_tag, auto cell_tag) {
    using gate_t = decltype(gate_tag);
    using cell_t = decltype(cell_tag);
    run(ConvLSTMCellBackward<gate_t, cell_t>{
        {view4<const gate_t>(gates), optional_view4<const cell_t>(c), gates.size(1) / 4},
        view4<const gate_t>(grad_h),
        view4<const cell_t>(grad_c_new),
        view4<gate_t>(grad_gates),
        c.has_value() ? view4<cell_t>(grad_c) : View4<cell_t>{}});
  });
}

}  // namespace fused_inpaint
