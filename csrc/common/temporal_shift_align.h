// temporal_shift_align per-pixel math (SPEC 3.4), shared by the CPU and CUDA kernels.
//
// For a feature pixel p of frame t the shifted channel groups sample the neighbouring
// frame at q = p + F(p), where F is the flow (and trust mask) read inline at its own
// resolution: flow pixel (min(y Hf / H, Hf-1), min(x Wf / W, Wf-1)), vector scaled by
// (W / Wf, H / Hf). Trust w = valid * inframe(q); out = w S(x_neighbour, q) + (1-w) x_t.
#pragma once

#include <optional>

#include "common/channel_loop.h"
#include "common/sampling.h"
#include "common/temporal_shift.h"

namespace fused_inpaint {

// Whether any feature pixel reads the flows: N, T-1, H and W nonzero. Where none does, a
// flow may have no pixels (Hf or Wf zero).
inline bool flows_are_read(const Tensor& x) {
  return x.size(0) > 0 && x.size(1) > 1 && x.size(3) > 0 && x.size(4) > 0;
}

// The scale of flow vectors to feature pixels along one axis: size / flow_size divided in
// double, where both sizes are exact (in float32 they are not past 2^24), then rounded to
// coord_t, as reference.flow_scale and the Triton launcher round it. 0 for a flow without
// pixels, which nothing reads.
template <typename coord_t>
coord_t flow_scale(int64_t size, int64_t flow_size) {
  return flow_size > 0 ? coord_t(double(size) / double(flow_size)) : coord_t(0);
}

inline void check_shift_align_args(const Tensor& x, const Tensor& flow_fw, const Tensor& flow_bw,
                                   const std::optional<Tensor>& valid_fw,
                                   const std::optional<Tensor>& valid_bw, int64_t fold) {
  check_shift_args(x, fold);
  // The flows hold T - 1 frames: no shape fits T = 0.
  STD_TORCH_CHECK(x.size(1) >= 1, "x must have at least one frame, got T = ", x.size(1));
  const char* flow_shape = "(N, T-1, 2, Hf, Wf)";
  for (const auto& [flow, name] : {std::pair{&flow_fw, "flow_fw"}, std::pair{&flow_bw, "flow_bw"}}) {
    check_rank(*flow, name, 5, flow_shape);
    check_size(*flow, name, 0, x.size(0), flow_shape);
    check_size(*flow, name, 1, x.size(1) - 1, flow_shape);
    check_size(*flow, name, 2, 2, flow_shape);
    STD_TORCH_CHECK(!flows_are_read(x) || (flow->size(3) >= 1 && flow->size(4) >= 1), name,
                    " must be at least 1x1 pixels where x has pixels to align (N, T-1, H, W "
                    "nonzero)");
    check_same_device(*flow, name, x, "x");
    check_companion_dtype(*flow, name, x, "x");
    STD_TORCH_CHECK(!is_half_precision(flow->scalar_type()), name, " must be float32 or float64");
  }
  for (int64_t d = 3; d < 5; ++d) check_size(flow_bw, "flow_bw", d, flow_fw.size(d), flow_shape);
  for (const auto* valid : {&valid_fw, &valid_bw}) {
    if (!valid->has_value()) continue;
    const Tensor& mask = valid->value();
    const char* mask_shape = "(N, T-1, 1, Hf, Wf)";
    check_rank(mask, "valid", 5, mask_shape);
    for (int64_t d = 0; d < 5; ++d) {
      check_size(mask, "valid", d, d == 2 ? 1 : flow_fw.size(d), mask_shape);
    }
    check_same_device(mask, "valid", x, "x");
    STD_TORCH_CHECK(mask.scalar_type() == flow_fw.scalar_type(), "valid must have the flows' dtype");
  }
}

// Where a feature pixel samples its neighbour frame, and how much that sample is trusted.
template <typename coord_t, typename flow_t>
struct ShiftAlignGeometry {
  View5<const flow_t> flow_fw, flow_bw, valid_fw, valid_bw;  // valid data == nullptr: all 1
  int64_t frames, height, width, flow_height, flow_width;
  coord_t scale_x, scale_y;  // flow vectors to feature pixels: W / Wf, H / Hf (flow_scale)
  AxisMap<coord_t> mx, my;

  struct Alignment {
    Taps2d<coord_t> taps;
    coord_t weight;   // valid * inframe(q)
    int64_t fy, fx;   // the flow pixel read
  };

  static ShiftAlignGeometry make(const Tensor& x, const Tensor& flow_fw, const Tensor& flow_bw,
                                 const std::optional<Tensor>& valid_fw,
                                 const std::optional<Tensor>& valid_bw) {
    const auto mask = [](const std::optional<Tensor>& v) {
      return v.has_value() ? view5<const flow_t>(v.value()) : View5<const flow_t>{};
    };
    const int64_t h = x.size(3), w = x.size(4), hf = flow_fw.size(3), wf = flow_fw.size(4);
    return {view5<const flow_t>(flow_fw),
            view5<const flow_t>(flow_bw),
            mask(valid_fw),
            mask(valid_bw),
            x.size(1),
            h,
            w,
            hf,
            wf,
            flow_scale<coord_t>(w, wf),
            flow_scale<coord_t>(h, hf),
            AxisMap<coord_t>::make(w, true),
            AxisMap<coord_t>::make(h, true)};
  }

  // Pixel (py, px) of frame n sampling along flow frame k of `flow`.
  FI_HOST_DEVICE Alignment align(const View5<const flow_t>& flow, const View5<const flow_t>& valid,
                                 int64_t n, int64_t k, int64_t py, int64_t px) const {
    const int64_t fy = (py * flow_height) / height, fx = (px * flow_width) / width;
    const int64_t ry = fy < flow_height - 1 ? fy : flow_height - 1;
    const int64_t rx = fx < flow_width - 1 ? fx : flow_width - 1;
    // Rounded before p is added (no fused multiply-add on the GPU): q decides the taps.
    const coord_t dx = fi_mul_rn(coord_t(flow.at(n, k, 0, ry, rx)), scale_x);
    const coord_t dy = fi_mul_rn(coord_t(flow.at(n, k, 1, ry, rx)), scale_y);
    Alignment a{{mx.taps(px, dx, kBilinear, kZeros), my.taps(py, dy, kBilinear, kZeros)},
                coord_t(0), ry, rx};
    const coord_t qx = coord_t(px) + dx, qy = coord_t(py) + dy;
    if (mx.contains(qx) && my.contains(qy)) {
      a.weight = valid.data != nullptr ? coord_t(valid.at(n, k, 0, ry, rx)) : coord_t(1);
    }
    return a;
  }
};

template <typename scalar_t, typename flow_t>
struct ShiftAlignForward {
  using coord_t = typename CoordOf<scalar_t>::type;

  View5<const scalar_t> x;
  View5<scalar_t> out;
  ShiftAlignGeometry<coord_t, flow_t> geo;
  int64_t channels;
  ShiftGroups groups;
  bool causal;

  // Channels [c_begin, c_end) of frame t: trusted samples of frame `source`, else own.
  FI_HOST_DEVICE void blend(const typename ShiftAlignGeometry<coord_t, flow_t>::Alignment& a,
                            int64_t n, int64_t t, int64_t source, int64_t py, int64_t px,
                            int64_t c_begin, int64_t c_end) const {
    const coord_t w = a.weight;
    for_channel_chunks(c_begin, c_end, [&](auto count, int64_t c0) {
      constexpr int kCount = decltype(count)::value;
      coord_t own[kCount], sampled[kCount];
      // Skip the reads a weight of exactly 0 or 1 makes useless (the common case).
      FI_UNROLL for (int k = 0; k < kCount; ++k) {
        own[k] = w != coord_t(1) ? coord_t(x.at(n, t, c0 + k, py, px)) : coord_t(0);
        sampled[k] = w != coord_t(0) ? a.taps.blend(a.taps.gather([&](int64_t col, int64_t row) {
          return coord_t(x.at(n, source, c0 + k, row, col));
        }))
                                     : coord_t(0);
      }
      FI_UNROLL for (int k = 0; k < kCount; ++k) {
        const coord_t value = w == coord_t(1)   ? sampled[k]
                              : w == coord_t(0) ? own[k]
                                                : w * sampled[k] + (coord_t(1) - w) * own[k];
        out.at(n, t, c0 + k, py, px) = scalar_t(value);
      }
    });
  }

  FI_HOST_DEVICE void copy(int64_t n, int64_t t, int64_t py, int64_t px, int64_t c_begin,
                           int64_t c_end) const {
    for (int64_t c = c_begin; c < c_end; ++c) out.at(n, t, c, py, px) = x.at(n, t, c, py, px);
  }

  FI_HOST_DEVICE void zero(int64_t n, int64_t t, int64_t py, int64_t px, int64_t c_begin,
                           int64_t c_end) const {
    for (int64_t c = c_begin; c < c_end; ++c) out.at(n, t, c, py, px) = scalar_t(0);
  }

  FI_HOST_DEVICE void pixel(int64_t nt, int64_t py, int64_t px) const {
    const int64_t n = nt / geo.frames, t = nt % geo.frames;
    if (causal) {
      copy(n, t, py, px, 0, groups.fold);
    } else if (t + 1 < geo.frames) {
      blend(geo.align(geo.flow_fw, geo.valid_fw, n, t, py, px), n, t, t + 1, py, px, 0,
            groups.fold);
    } else {
      zero(n, t, py, px, 0, groups.fold);
    }
    if (t > 0) {
      blend(geo.align(geo.flow_bw, geo.valid_bw, n, t - 1, py, px), n, t, t - 1, py, px,
            groups.fold, groups.end);
    } else {
      zero(n, t, py, px, groups.fold, groups.end);
    }
    copy(n, t, py, px, groups.end, channels);
  }
};

// The shifted channels' gradient [0, end) accumulates in acc_t through add(ref, value)
// (atomics on the GPU); the other channels' gradient is grad_out, written once. Flow
// gradients accumulate at flow resolution (several feature pixels may read one flow
// pixel); grad_flow_*.data == nullptr skips them.
template <typename scalar_t, typename flow_t, typename acc_t>
struct ShiftAlignBackward {
  using coord_t = typename CoordOf<scalar_t>::type;
  using Alignment = typename ShiftAlignGeometry<coord_t, flow_t>::Alignment;

  View5<const scalar_t> grad_out, x;
  View5<acc_t> grad_shifted;
  View5<scalar_t> grad_x;
  View5<flow_t> grad_flow_fw, grad_flow_bw;
  ShiftAlignGeometry<coord_t, flow_t> geo;
  int64_t channels;
  ShiftGroups groups;
  bool causal;

  template <bool kGradX, bool kGradFlow, typename Add>
  FI_HOST_DEVICE void group(const Alignment& a, int64_t n, int64_t t, int64_t source, int64_t py,
                            int64_t px, int64_t c_begin, int64_t c_end,
                            const View5<flow_t>& grad_flow, int64_t k, const Add& add) const {
    if (c_begin >= c_end) return;
    const coord_t w = a.weight;
    coord_t gx = 0, gy = 0;
    for (int64_t c = c_begin; c < c_end; ++c) {
      const coord_t g = coord_t(grad_out.at(n, t, c, py, px));
      if constexpr (kGradX) {
        if (w != coord_t(1)) add(grad_shifted.at(n, t, c, py, px), (coord_t(1) - w) * g);
        if (w != coord_t(0)) {
          a.taps.scatter(w * g, [&](int64_t col, int64_t row, coord_t value) {
            add(grad_shifted.at(n, source, c, row, col), value);
          });
        }
      }
      if constexpr (kGradFlow) {
        if (w != coord_t(0)) {
          const Corners<coord_t> v = a.taps.gather(
              [&](int64_t col, int64_t row) { return coord_t(x.at(n, source, c, row, col)); });
          a.taps.flow_grad(v, w * g, gx, gy);
        }
      }
    }
    if constexpr (kGradFlow) {
      if (grad_flow.data != nullptr && (gx != coord_t(0) || gy != coord_t(0))) {
        add(grad_flow.at(n, k, 0, a.fy, a.fx), gx * geo.scale_x);
        add(grad_flow.at(n, k, 1, a.fy, a.fx), gy * geo.scale_y);
      }
    }
  }

  // Channels [c_begin, c_end) of one pixel of flattened frame nt = n * T + t.
  template <bool kGradX, bool kGradFlow, typename Add>
  FI_HOST_DEVICE void pixel(int64_t nt, int64_t py, int64_t px, int64_t c_begin, int64_t c_end,
                            const Add& add) const {
    const int64_t n = nt / geo.frames, t = nt % geo.frames;
    const auto clip = [&](int64_t lo, int64_t hi, int64_t& b, int64_t& e) {
      b = c_begin > lo ? c_begin : lo;
      e = c_end < hi ? c_end : hi;
    };
    int64_t b, e;
    clip(0, groups.fold, b, e);
    if (causal) {
      if constexpr (kGradX) {
        for (int64_t c = b; c < e; ++c) {
          add(grad_shifted.at(n, t, c, py, px), coord_t(grad_out.at(n, t, c, py, px)));
        }
      }
    } else if (t + 1 < geo.frames && b < e) {
      group<kGradX, kGradFlow>(geo.align(geo.flow_fw, geo.valid_fw, n, t, py, px), n, t, t + 1,
                               py, px, b, e, grad_flow_fw, t, add);
    }
    clip(groups.fold, groups.end, b, e);
    if (t > 0 && b < e) {
      group<kGradX, kGradFlow>(geo.align(geo.flow_bw, geo.valid_bw, n, t - 1, py, px), n, t,
                               t - 1, py, px, b, e, grad_flow_bw, t - 1, add);
    }
    if constexpr (kGradX) {
      clip(groups.end, channels, b, e);
      for (int64_t c = b; c < e; ++c) grad_x.at(n, t, c, py, px) = grad_out.at(n, t, c, py, px);
    }
  }
};

// The backward's outputs: grad_x, grad_flow_fw, grad_flow_bw (the flow gradients zeroed,
// or empty when not asked for: causal mode has none for flow_fw), and the zeroed
// accumulator of grad_x's shifted channels (a float32 workspace under half precision).
struct ShiftAlignGrads {
  Tensor grad_x, grad_flow_fw, grad_flow_bw, shifted;
  bool shifted_is_workspace;

  static ShiftAlignGrads make(const Tensor& x, const Tensor& flow_fw, const Tensor& flow_bw,
                              int64_t end, bool causal, bool flow_grads) {
    const auto zeros_or_empty = [](const Tensor& like, const char* name, bool wanted) {
      if (!wanted) {
        const int64_t empty[1] = {0};
        return torch::stable::new_empty(like, torch::headeronly::IntHeaderOnlyArrayRef(empty, 1));
      }
      Tensor t = output_like(like, name);
      torch::stable::zero_(t);
      return t;
    };
    ShiftAlignGrads g{output_like(x, "grad_x"), zeros_or_empty(flow_fw, "grad_flow_fw", flow_grads && !causal),
                      zeros_or_empty(flow_bw, "grad_flow_bw", flow_grads), Tensor(), false};
    g.shifted_is_workspace = is_half_precision(x.scalar_type());
    if (g.shifted_is_workspace) {
      const int64_t sizes[5] = {x.size(0), x.size(1), end, x.size(3), x.size(4)};
      g.shifted = allocate_output(
          "grad_x's float32 workspace", sizes[0] * sizes[1] * sizes[2] * sizes[3] * sizes[4],
          ScalarType::Float, [&] {
            return torch::stable::new_zeros(
                x, torch::headeronly::IntHeaderOnlyArrayRef(sizes, 5), ScalarType::Float);
          });
    } else {
      g.shifted = torch::stable::narrow(g.grad_x, 2, 0, end);
      torch::stable::zero_(g.shifted);
    }
    return g;
  }

  // Copies the float32 workspace into grad_x once the kernels are done.
  void finish() {
    if (!shifted_is_workspace) return;
    Tensor target = torch::stable::narrow(grad_x, 2, 0, shifted.size(2));
    torch::stable::copy_(target, shifted);
  }
};

template <typename scalar_t, typename flow_t, typename acc_t>
ShiftAlignBackward<scalar_t, flow_t, acc_t> make_shift_align_backward(
    const Tensor& grad_out, const Tensor& x, const Tensor& flow_fw, const Tensor& flow_bw,
    const std::optional<Tensor>& valid_fw, const std::optional<Tensor>& valid_bw,
    const ShiftAlignGrads& grads, ShiftGroups groups, bool causal) {
  const auto flow_grad = [](const Tensor& g) {
    return g.numel() > 0 ? view5<flow_t>(g) : View5<flow_t>{};
  };
  return {view5<const scalar_t>(grad_out),
          view5<const scalar_t>(x),
          view5<acc_t>(grads.shifted),
          view5<scalar_t>(grads.grad_x),
          flow_grad(grads.grad_flow_fw),
          flow_grad(grads.grad_flow_bw),
          ShiftAlignGeometry<typename CoordOf<scalar_t>::type, flow_t>::make(x, flow_fw, flow_bw,
                                                                            valid_fw, valid_bw),
          x.size(2),
          groups,
          causal};
}

inline void check_shift_align_grad_out(const Tensor& grad_out, const Tensor& x) {
  check_rank(grad_out, "grad_out", 5, "(N, T, C, H, W)");
  for (int64_t d = 0; d < 5; ++d) check_size(grad_out, "grad_out", d, x.size(d), "like x");
  check_same_device(grad_out, "grad_out", x, "x");
  STD_TORCH_CHECK(grad_out.scalar_type() == x.scalar_type(), "grad_out must have x's dtype");
}

}  // namespace fused_inpaint

