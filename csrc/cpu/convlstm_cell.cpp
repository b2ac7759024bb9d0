// convlstm_cell on the CPU: parallel over lines of elements along the gates' innermost
// dimension (W, or channels when they are channels_last). Each line goes in chunks: a
// strided gather into small arrays, the gate math over them in a loop the compiler
// vectorizes, a strided scatter.

// Floating-point exceptions are never observed here; without this GCC keeps the selects
// of the gate math as branches and those loops scalar (clang assumes it by default).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC optimize("no-trapping-math")
#endif

// The gate math is compute-bound here and the build targets the x86-64 baseline (SSE2):
// the line loops are compiled a second time for AVX2 + FMA, taken where the CPU has them.
#if defined(__x86_64__) && defined(__GNUC__)
#define FI_DISPATCH_AVX2 1
#define FI_TARGET_AVX2 __attribute__((target("avx2,fma")))
#define FI_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define FI_DISPATCH_AVX2 0
#define FI_ALWAYS_INLINE inline
#endif

#include <algorithm>
#include <tuple>

#include "common/convlstm_cell.h"
#include "cpu/parallel.h"

namespace fused_inpaint {
namespace {

constexpr int64_t kChunk = 64;

// Elements (n, ch + k * ch_step, y, x + k * x_step) for k < count.
struct Chunk {
  int64_t n, ch, y, x, ch_step, x_step, count;

  int64_t ch_at(int64_t k) const { return ch + k * ch_step; }
  int64_t x_at(int64_t k) const { return x + k * x_step; }
};

// The chunk's inputs, one array per quantity, so that the math over them vectorizes.
template <typename acc_t>
struct ChunkInputs {
  acc_t i[kChunk], f[kChunk], o[kChunk], g[kChunk], c[kChunk];

  template <typename Views>
  FI_ALWAYS_INLINE void load(const Views& views, const Chunk& e) {
    for (int64_t k = 0; k < e.count; ++k) {
      const CellInputs<acc_t> in = views.load(e.n, e.ch_at(k), e.y, e.x_at(k));
      i[k] = in.i;
      f[k] = in.f;
      o[k] = in.o;
      g[k] = in.g;
      c[k] = in.c;
    }
  }
};

template <typename gate_t, typename cell_t>
FI_ALWAYS_INLINE void run_chunk(const ConvLSTMCellForward<gate_t, cell_t>& op, const Chunk& e) {
  using acc_t = typename CellAccOf<gate_t>::type;
  ChunkInputs<acc_t> in;
  in.load(op.inputs, e);
  CellActivations<acc_t> a[kChunk];
  const bool has_c = op.inputs.has_c();
  for (int64_t k = 0; k < e.count; ++k) {
    a[k] = cell_activations(in.i[k], in.f[k], in.o[k], in.g[k], in.c[k], has_c);
  }
  for (int64_t k = 0; k < e.count; ++k) op.store(e.n, e.ch_at(k), e.y, e.x_at(k), a[k]);
}

template <typename gate_t, typename cell_t>
FI_ALWAYS_INLINE void run_chunk(const ConvLSTMCellBackward<gate_t, cell_t>& op, const Chunk& e) {
  using acc_t = typename CellAccOf<gate_t>::type;
  ChunkInputs<acc_t> in;
  in.load(op.inputs, e);
  acc_t grad_h[kChunk], grad_c_new[kChunk];
  for (int64_t k = 0; k < e.count; ++k) {
    grad_h[k] = acc_t(op.grad_h.at(e.n, e.ch_at(k), e.y, e.x_at(k)));
    grad_c_new[k] = acc_t(op.grad_c_new.at(e.n, e.ch_at(k), e.y, e.x_at(k)));
  }
  CellGrads<acc_t> d[kChunk];
  const bool has_c = op.inputs.has_c();
  for (int64_t k = 0; k < e.count; ++k) {
    const CellActivations<acc_t> a =
        cell_activations(in.i[k], in.f[k], in.o[k], in.g[k], in.c[k], has_c);
    d[k] = cell_grads(a, in.c[k], grad_h[k], grad_c_new[k], has_c);
  }
  for (int64_t k = 0; k < e.count; ++k) op.store(e.n, e.ch_at(k), e.y, e.x_at(k), d[k]);
}

// Lines of an (N, Ch, H, W) grid: along channels when channels_inner, else along W.
struct Lines {
  int64_t n_batch, channels, height, width;
  bool channels_inner;

  int64_t length() const { return channels_inner ? channels : width; }
  int64_t count() const { return n_batch * height * (channels_inner ? width : channels); }
};

// run_chunk(op, Chunk) over lines [begin, end), kChunk elements at a time.
template <typename Op>
FI_ALWAYS_INLINE void walk_lines(const Op& op, const Lines& lines, int64_t begin, int64_t end) {
  const int64_t length = lines.length();
  for (int64_t line = begin; line < end; ++line) {
    Chunk e{};
    if (lines.channels_inner) {  // line = (n * H + y) * W + x
      e.x = line % lines.width;
      e.y = (line / lines.width) % lines.height;
      e.n = line / lines.width / lines.height;
      e.ch_step = 1;
    } else {  // line = (n * Ch + ch) * H + y
      e.y = line % lines.height;
      e.ch = (line / lines.height) % lines.channels;
      e.n = line / lines.height / lines.channels;
      e.x_step = 1;
    }
    const Chunk first = e;
    for (int64_t start = 0; start < length; start += kChunk) {
      e.ch = first.ch + start * first.ch_step;
      e.x = first.x + start * first.x_step;
      e.count = std::min(kChunk, length - start);
      run_chunk(op, e);
    }
  }
}

template <typename Op>
void walk_lines_baseline(const Op& op, const Lines& lines, int64_t begin, int64_t end) {
  walk_lines(op, lines, begin, end);
}

#if FI_DISPATCH_AVX2
template <typename Op>
FI_TARGET_AVX2 void walk_lines_avx2(const Op& op, const Lines& lines, int64_t begin,
                                    int64_t end) {
  walk_lines(op, lines, begin, end);
}
#endif

// Every line, in parallel.
template <typename Op>
void run(const Op& op, const Lines& lines) {
  constexpr int64_t kWorkPerElement = 8;
#if FI_DISPATCH_AVX2
  static const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
  torch::stable::parallel_for(
      0, lines.count(), rows_per_task(lines.length() * kWorkPerElement),
      [&](int64_t begin, int64_t end) {
#if FI_DISPATCH_AVX2
        if (avx2) return walk_lines_avx2(op, lines, begin, end);
#endif
        walk_lines_baseline(op, lines, begin, end);
      });
}

std::tuple<Tensor, Tensor> convlstm_cell_cpu(const Tensor& gates, std::optional<Tensor> c) {
  check_convlstm_cell_args(gates, c);
  const auto outputs = new_convlstm_cell_outputs(gates, c);
  const Tensor &h_new = std::get<0>(outputs), &c_new = std::get<1>(outputs);
  if (h_new.numel() == 0) return outputs;
  const Lines lines{gates.size(0), h_new.size(1), gates.size(2), gates.size(3),
                    channels_innermost(gates)};
  with_convlstm_cell_forward<false>(gates, c, h_new, c_new,
                                    [&](const auto& op) { run(op, lines); });
  return outputs;
}

std::tuple<Tensor, Tensor> convlstm_cell_backward_cpu(const Tensor& grad_h,
                                                      const Tensor& grad_c_new,
                                                      const Tensor& gates,
                                                      std::optional<Tensor> c) {
  check_convlstm_cell_backward_args(grad_h, grad_c_new, gates, c);
  const auto grads = new_convlstm_cell_grads(gates, c);
  const Tensor &grad_gates = std::get<0>(grads), &grad_c = std::get<1>(grads);
  if (gates.numel() == 0) return grads;
  const Lines lines{gates.size(0), gates.size(1) / 4, gates.size(2), gates.size(3),
                    channels_innermost(gates)};
  with_convlstm_cell_backward<false>(grad_h, grad_c_new, gates, c, grad_gates, grad_c,
                                     [&](const auto& op) { run(op, lines); });
  return grads;
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(fused_inpaint, CPU, m) {
  m.impl("convlstm_cell", TORCH_BOX(&convlstm_cell_cpu));
  m.impl("convlstm_cell_backward", TORCH_BOX(&convlstm_cell_backward_cpu));
}

}  // namespace fused_inpaint
