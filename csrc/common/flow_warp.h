// flow_warp per-pixel math, shared by the CPU and CUDA kernels (SPEC 3.1).
#pragma once

#include "common/channel_loop.h"
#include "common/sampling.h"
#include "common/tensor.h"

namespace fused_inpaint {

// The checks every flow_warp kernel repeats for direct callers of the registered op.
inline void check_flow_warp_args(const Tensor& x, const Tensor& flow, int64_t mode,
                                 int64_t padding_mode) {
  check_rank(x, "x", 4, "(N, C, H, W)");
  check_rank(flow, "flow", 4, "(N, 2, H, W)");
  check_size(flow, "flow", 0, x.size(0), "(N, 2, H, W)");
  check_size(flow, "flow", 1, 2, "(N, 2, H, W)");
  check_size(flow, "flow", 2, x.size(2), "(N, 2, H, W)");
  check_size(flow, "flow", 3, x.size(3), "(N, 2, H, W)");
  check_same_device(flow, "flow", x, "x");
  check_companion_dtype(flow, "flow", x, "x");
  STD_TORCH_CHECK(mode == kBilinear || mode == kNearest,
                  "mode must be 0 (bilinear) or 1 (nearest), got ", mode);
  STD_TORCH_CHECK(padding_mode == kZeros || padding_mode == kBorder,
                  "padding_mode must be 0 (zeros) or 1 (border), got ", padding_mode);
}

inline void check_flow_warp_backward_args(const Tensor& grad_out, const Tensor& x,
                                          const Tensor& flow, int64_t mode,
                                          int64_t padding_mode) {
  check_flow_warp_args(x, flow, mode, padding_mode);
  check_rank(grad_out, "grad_out", 4, "(N, C, H, W)");
  for (int64_t d = 0; d < 4; ++d) check_size(grad_out, "grad_out", d, x.size(d), "like x");
  check_same_device(grad_out, "grad_out", x, "x");
  STD_TORCH_CHECK(grad_out.scalar_type() == x.scalar_type(), "grad_out must have x's dtype");
}

template <typename scalar_t, typename flow_t>
struct FlowWarpForward {
  using coord_t = typename CoordOf<scalar_t>::type;

  View4<const scalar_t> x;
  View4<const flow_t> flow;
  View4<scalar_t> out;
  int64_t channels;
  WarpGeometry<coord_t> geo;

  FI_HOST_DEVICE void pixel(int64_t n, int64_t py, int64_t px) const {
    const Taps2d<coord_t> t = geo.taps(px, py, coord_t(flow.at(n, 0, py, px)),
                                       coord_t(flow.at(n, 1, py, px)));
    for_channel_chunks(0, channels, [&](auto count, int64_t c0) {
      constexpr int kCount = decltype(count)::value;
      Corners<coord_t> v[kCount];
      FI_UNROLL for (int k = 0; k < kCount; ++k) {
        v[k] = t.gather([&](int64_t col, int64_t row) {
          return coord_t(x.at(n, c0 + k, row, col));
        });
      }
      FI_UNROLL for (int k = 0; k < kCount; ++k) {
        out.at(n, c0 + k, py, px) = scalar_t(t.blend(v[k]));
      }
    });
  }
};

// grad_x accumulates in acc_t (float32 under half-precision x) through add(ref, value),
// an atomic add on the GPU; grad_flow is written once per pixel.
template <typename scalar_t, typename flow_t, typename acc_t>
struct FlowWarpBackward {
  using coord_t = typename CoordOf<scalar_t>::type;

  View4<const scalar_t> grad_out;
  View4<const scalar_t> x;
  View4<const flow_t> flow;
  View4<acc_t> grad_x;
  View4<flow_t> grad_flow;
  int64_t channels;
  WarpGeometry<coord_t> geo;

  // Channels [c_begin, c_end) of one output pixel.
  template <bool kGradX, bool kGradFlow, typename Add>
  FI_HOST_DEVICE void pixel(int64_t n, int64_t py, int64_t px, int64_t c_begin,
                            int64_t c_end, const Add& add) const {
    const Taps2d<coord_t> t = geo.taps(px, py, coord_t(flow.at(n, 0, py, px)),
                                       coord_t(flow.at(n, 1, py, px)));
    coord_t gx = 0, gy = 0;
    for_channel_chunks(c_begin, c_end, [&](auto count, int64_t c0) {
      constexpr int kCount = decltype(count)::value;
      coord_t g[kCount];
      Corners<coord_t> v[kCount];
      FI_UNROLL for (int k = 0; k < kCount; ++k) {
        g[k] = coord_t(grad_out.at(n, c0 + k, py, px));
        if constexpr (kGradFlow) {
          v[k] = t.gather([&](int64_t col, int64_t row) {
            return coord_t(x.at(n, c0 + k, row, col));
          });
        }
      }
      FI_UNROLL for (int k = 0; k < kCount; ++k) {
        if constexpr (kGradFlow) t.flow_grad(v[k], g[k], gx, gy);
        if constexpr (kGradX) {
          t.scatter(g[k], [&](int64_t col, int64_t row, coord_t value) {
            add(grad_x.at(n, c0 + k, row, col), value);
          });
        }
      }
    });
    if constexpr (kGradFlow) {
      grad_flow.at(n, 0, py, px) = flow_t(gx);
      grad_flow.at(n, 1, py, px) = flow_t(gy);
    }
  }
};

}  // namespace fused_inpaint
