// flow_warp on CUDA: one thread per output pixel computes its taps once, then walks the
// channels. Neighbouring threads are neighbouring pixels, so for smooth flows every
// gather and store is coalesced. The backward is one pass: the feature gradient is an
// atomic scatter (into a float32 workspace under half precision, then one cast), the
// flow gradient a per-thread sum over channels.
#include <cuda_runtime.h>

#include <tuple>
#include <type_traits>

#include "common/flow_warp.h"
#include "cuda/launch.cuh"

namespace fused_inpaint {
namespace {

template <typename Op>
__global__ void flow_warp_fwd_kernel(const Op op, int64_t height, int64_t width,
                                     int64_t pixels) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pixels;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t px = i % width, row = i / width;
    op.pixel(row / height, row % height, px);
  }
}

template <typename Op, typename acc_t>
__global__ void flow_warp_bwd_kernel(const Op op, int64_t height, int64_t width,
                                     int64_t pixels) {
  using coord_t = typename Op::coord_t;
  const auto atomic_accumulate = [](acc_t& ref, coord_t value) {
    atomicAdd(&ref, static_cast<acc_t>(value));
  };
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pixels;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t px = i % width, row = i / width;
    op.template pixel<true, true>(row / height, row % height, px, 0, op.channels,
                                  atomic_accumulate);
  }
}

Tensor flow_warp_cuda(const Tensor& x, const Tensor& flow, int64_t mode, int64_t padding_mode,
                      bool align_corners) {
  check_flow_warp_args(x, flow, mode, padding_mode);
  check_cuda(x, "x");
  const torch::stable::accelerator::DeviceGuard guard(x.get_device_index());
  Tensor out = torch::stable::empty_like(x);
  const int64_t n_batch = x.size(0), channels = x.size(1), height = x.size(2),
                width = x.size(3);
  const int64_t pixels = n_batch * height * width;
  if (out.numel() == 0) return out;
  dispatch_with_companion<true>(x, "x", flow, [&](auto x_tag, auto flow_tag) {
    using scalar_t = decltype(x_tag);
    using flow_t = decltype(flow_tag);
    using Op = FlowWarpForward<scalar_t, flow_t>;
    const Op op{view4<const scalar_t>(x), view4<const flow_t>(flow), view4<scalar_t>(out),
                channels,
                WarpGeometry<typename Op::coord_t>::make(height, width, mode, padding_mode,
                                                         align_corners)};
    flow_warp_fwd_kernel<<<grid_for(pixels), kThreadsPerBlock, 0, current_stream(x)>>>(
        op, height, width, pixels);
  });
  check_launch("flow_warp_fwd_kernel");
  return out;
}

std::tuple<Tensor, Tensor> flow_warp_backward_cuda(const Tensor& grad_out, const Tensor& x,
                                                   const Tensor& flow, int64_t mode,
                                                   int64_t padding_mode, bool align_corners) {
  check_flow_warp_args(x, flow, mode, padding_mode);
  check_cuda(x, "x");
  check_rank(grad_out, "grad_out", 4, "(N, C, H, W)");
  for (int64_t d = 0; d < 4; ++d) check_size(grad_out, "grad_out", d, x.size(d), "like x");
  check_same_device(grad_out, "grad_out", x, "x");
  STD_TORCH_CHECK(grad_out.scalar_type() == x.scalar_type(), "grad_out must have x's dtype");
  const torch::stable::accelerator::DeviceGuard guard(x.get_device_index());
  Tensor grad_x = torch::stable::empty_like(x);
  Tensor grad_flow = torch::stable::empty_like(flow);
  const int64_t n_batch = x.size(0), channels = x.size(1), height = x.size(2),
                width = x.size(3);
  const int64_t pixels = n_batch * height * width;
  if (channels == 0) torch::stable::zero_(grad_flow);
  if (x.numel() == 0) return {grad_x, grad_flow};
  // Half-precision atomics are slow and lose low bits: accumulate in float32.
  const bool half = is_half_precision(x.scalar_type());
  Tensor accum = half ? torch::stable::new_zeros(x, x.sizes(), ScalarType::Float) : grad_x;
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
    flow_warp_bwd_kernel<Op, acc_t>
        <<<grid_for(pixels), kThreadsPerBlock, 0, current_stream(x)>>>(op, height, width,
                                                                        pixels);
  });
  check_launch("flow_warp_bwd_kernel");
  if (half) torch::stable::copy_(grad_x, accum);
  return {grad_x, grad_flow};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(fused_inpaint, CUDA, m) {
  m.impl("flow_warp", TORCH_BOX(&flow_warp_cuda));
  m.impl("flow_warp_backward", TORCH_BOX(&flow_warp_backward_cuda));
}

}  // namespace fused_inpaint
