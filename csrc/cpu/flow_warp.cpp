// flow_warp on the CPU: parallel over image rows (forward, flow gradient) and over
// (batch, channel) planes (the scatter of the feature gradient, which needs no atomics
// when every plane has one owner).
#include <tuple>

#include "common/flow_warp.h"
#include "cpu/parallel.h"

namespace fused_inpaint {
namespace {

Tensor flow_warp_cpu(const Tensor& x, const Tensor& flow, int64_t mode, int64_t padding_mode,
                     bool align_corners) {
  check_flow_warp_args(x, flow, mode, padding_mode);
  Tensor out = output_like(x, "flow_warp's output");
  const int64_t n_batch = x.size(0), channels = x.size(1), height = x.size(2),
                width = x.size(3);
  if (out.numel() == 0) return out;
  dispatch_with_companion<false>(x, "x", flow, [&](auto x_tag, auto flow_tag) {
    using scalar_t = decltype(x_tag);
    using flow_t = decltype(flow_tag);
    using coord_t = typename CoordOf<scalar_t>::type;
    const FlowWarpForward<scalar_t, flow_t> op{
        view4<const scalar_t>(x), view4<const flow_t>(flow), view4<scalar_t>(out), channels,
        WarpGeometry<coord_t>::make(height, width, mode, padding_mode, align_corners)};
    for_each_pixel(n_batch, height, width, channels,
                   [&](int64_t n, int64_t py, int64_t px) { op.pixel(n, py, px); });
  });
  return out;
}

std::tuple<Tensor, Tensor> flow_warp_backward_cpu(const Tensor& grad_out, const Tensor& x,
                                                  const Tensor& flow, int64_t mode,
                                                  int64_t padding_mode, bool align_corners) {
  check_flow_warp_backward_args(grad_out, x, flow, mode, padding_mode);
  Tensor grad_x = output_like(x, "grad_x");
  Tensor grad_flow = output_like(flow, "grad_flow");
  torch::stable::zero_(grad_x);
  const int64_t n_batch = x.size(0), channels = x.size(1), height = x.size(2),
                width = x.size(3);
  if (channels == 0) torch::stable::zero_(grad_flow);
  if (x.numel() == 0) return {grad_x, grad_flow};
  dispatch_with_companion<false>(x, "x", flow, [&](auto x_tag, auto flow_tag) {
    using scalar_t = decltype(x_tag);
    using flow_t = decltype(flow_tag);
    using coord_t = typename CoordOf<scalar_t>::type;
    const FlowWarpBackward<scalar_t, flow_t, scalar_t> op{
        view4<const scalar_t>(grad_out), view4<const scalar_t>(x), view4<const flow_t>(flow),
        view4<scalar_t>(grad_x), view4<flow_t>(grad_flow), channels,
        WarpGeometry<coord_t>::make(height, width, mode, padding_mode, align_corners)};
    const auto no_scatter = [](scalar_t&, coord_t) {};
    for_each_pixel(n_batch, height, width, channels, [&](int64_t n, int64_t py, int64_t px) {
      op.template pixel<false, true>(n, py, px, 0, channels, no_scatter);
    });
    const auto accumulate = [](scalar_t& ref, coord_t value) { ref += scalar_t(value); };
    torch::stable::parallel_for(
        0, n_batch * channels, 1, [&](int64_t begin, int64_t end) {
          for (int64_t plane = begin; plane < end; ++plane) {
            const int64_t n = plane / channels, c = plane % channels;
            for (int64_t py = 0; py < height; ++py) {
              for (int64_t px = 0; px < width; ++px) {
                op.template pixel<true, false>(n, py, px, c, c + 1, accumulate);
              }
            }
          }
        });
  });
  return {grad_x, grad_flow};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(fused_inpaint, CPU, m) {
  m.impl("flow_warp", TORCH_BOX(&flow_warp_cpu));
  m.impl("flow_warp_backward", TORCH_BOX(&flow_warp_backward_cpu));
}

}  // namespace fused_inpaint
