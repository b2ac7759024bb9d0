// flow_warp on CUDA: one thread per output pixel computes its taps once, then walks the
// channels. For smooth flows neighbouring threads gather neighbouring pixels, so loads
// coalesce like the stores. The backward is one pass: the feature gradient is an
// atomic scatter (into a float32 workspace under half precision, then one cast), the
// flow gradient a per-thread sum over channels.
#include <cuda_runtime.h>

#include <tuple>
#include <type_traits>

#include "common/flow_warp.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace fused_inpaint {
namespace {

// Unbounded, ptxas gave the backward 147 registers a thread (168 in float64): one block of
// 256 threads per SM. Bounded for two blocks it takes 76-78 (104 in float64) without
// spilling, so three blocks fit (two in float64); three as the bound spilled in float64.
constexpr int kBackwardMinBlocksPerSM = 2;

// The whole backward of one pixel: flow gradient summed over channels, the feature
// gradient scattered with atomics.
template <typename Backward, typename acc_t>
struct FlowWarpBackwardAtomic {
  Backward backward;

  __device__ void pixel(int64_t n, int64_t py, int64_t px) const {
    backward.template pixel<true, true>(
        n, py, px, 0, backward.channels, [](acc_t& ref, typename Backward::coord_t value) {
          atomicAdd(&ref, static_cast<acc_t>(value));
        });
  }
};

}  // namespace

Tensor flow_warp_cuda(const Tensor& x, const Tensor& flow, int64_t mode, int64_t padding_mode,
                      bool align_corners) {
  Tensor out = output_like(x, "flow_warp's output");
  const int64_t n_batch = x.size(0), channels = x.size(1), height = x.size(2),
                width = x.size(3);
  if (out.numel() == 0) return out;
  dispatch_with_companion<true>(x, "x", flow, [&](auto x_tag, auto flow_tag) {
    using scalar_t = decltype(x_tag);
    using flow_t = decltype(flow_tag);
    using Op = FlowWarpForward<scalar_t, flow_t>;
    const Op op{view4<const scalar_t>(x), view4<const flow_t>(flow), view4<scalar_t>(out),
                channels,
                WarpGeometry<typename Op::coord_t>::make(height, width, mode, padding_mode,
                                                         align_corners)};
    launch_per_pixel(op, n_batch, height, width, x, "flow_warp forward");
  });
  return out;
}

std::tuple<Tensor, Tensor> flow_warp_backward_cuda(const Tensor& grad_out, const Tensor& x,
                                                   const Tensor& flow, int64_t mode,
                                                   int64_t padding_mode, bool align_corners) {
  Tensor grad_x = output_like(x, "grad_x");
  Tensor grad_flow = output_like(flow, "grad_flow");
  const int64_t n_batch = x.size(0), channels = x.size(1), height = x.size(2),
                width = x.size(3);
  if (channels == 0) torch::stable::zero_(grad_flow);
  if (x.numel() == 0) return {grad_x, grad_flow};
  // Half-precision atomics are slow and lose low bits: accumulate in float32.
  const bool half = is_half_precision(x.scalar_type());
  Tensor accum = grad_x;
  if (half) {
    accum = allocate_output("grad_x's float32 workspace", x.numel(), ScalarType::Float,
                            [&] { return torch::stable::new_zeros(x, x.sizes(), ScalarType::Float); });
  }
  if (!half) torch::stable::zero_(grad_x);
  dispatch_with_companion<true>(x, "x", flow, [&](auto x_tag, auto flow_tag) {
    using scalar_t = decltype(x_tag);
    using flow_t = decltype(flow_tag);
    using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
    using Op = FlowWarpBackward<scalar_t, flow_t, acc_t>;
    const Op op{view4<const scalar_t>(grad_out), view4<const scalar_t>(x),
                view4<const flow_t>(flow),      view4<acc_t>(accum),
                view4<flow_t>(grad_flow),       channels,
                WarpGeometry<typename Op::coord_t>::make(height, width, mode, padding_mode,
                                                         align_corners)};
    launch_per_pixel<kBackwardMinBlocksPerSM>(FlowWarpBackwardAtomic<Op, acc_t>{op}, n_batch,
                                              height, width, x, "flow_warp backward");
  });
  if (half) torch::stable::copy_(grad_x, accum);
  return {grad_x, grad_flow};
}

}  // namespace fused_inpaint
