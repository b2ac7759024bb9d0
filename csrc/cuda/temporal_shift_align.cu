// temporal_shift_align on CUDA: one thread per (frame, pixel) reads its flow and mask
// once, then walks the channels of each group. The backward is one pass: atomics scatter
// the shifted channels' gradient (into a float32 workspace under half precision) and
// the flow gradient at flow resolution.
#include <tuple>
#include <type_traits>

#include "common/temporal_shift_align.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace fused_inpaint {
namespace {

template <typename Backward>
struct ShiftAlignBackwardAtomic {
  Backward backward;

  __device__ void pixel(int64_t nt, int64_t py, int64_t px) const {
    backward.template pixel<true, true>(nt, py, px, 0, backward.channels, [](auto& ref, auto value) {
      atomicAdd(&ref, static_cast<std::remove_reference_t<decltype(ref)>>(value));
    });
  }
};

}  // namespace

Tensor temporal_shift_align_cuda(const Tensor& x, const Tensor& flow_fw, const Tensor& flow_bw,
                                 const std::optional<Tensor>& valid_fw,
                                 const std::optional<Tensor>& valid_bw, int64_t fold,
                                 bool causal) {
  const ShiftGroups groups = ShiftGroups::make(x.size(2), fold);
  Tensor out = output_like(x, "temporal_shift_align's output");
  if (out.numel() == 0) return out;
  dispatch_with_companion<true>(x, "x", flow_fw, [&](auto x_tag, auto flow_tag) {
    using scalar_t = decltype(x_tag);
    using flow_t = decltype(flow_tag);
    if constexpr (std::is_same_v<flow_t, float> || std::is_same_v<flow_t, double>) {
      using Op = ShiftAlignForward<scalar_t, flow_t>;
      const Op op{view5<const scalar_t>(x), view5<scalar_t>(out),
                  ShiftAlignGeometry<typename Op::coord_t, flow_t>::make(x, flow_fw, flow_bw,
                                                                         valid_fw, valid_bw),
                  x.size(2), groups, causal};
      launch_per_pixel(op, x.size(0) * x.size(1), x.size(3), x.size(4), x,
                       "temporal_shift_align forward");
    }
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor> temporal_shift_align_backward_cuda(
    const Tensor& grad_out, const Tensor& x, const Tensor& flow_fw, const Tensor& flow_bw,
    const std::optional<Tensor>& valid_fw, const std::optional<Tensor>& valid_bw, int64_t fold,
    bool causal, bool flow_grads) {
  const ShiftGroups groups = ShiftGroups::make(x.size(2), fold);
  ShiftAlignGrads grads =
      ShiftAlignGrads::make(x, flow_fw, flow_bw, groups.end, causal, flow_grads);
  if (x.numel() > 0) {
    dispatch_with_companion<true>(x, "x", flow_fw, [&](auto x_tag, auto flow_tag) {
      using scalar_t = decltype(x_tag);
      using flow_t = decltype(flow_tag);
      if constexpr (std::is_same_v<flow_t, float> || std::is_same_v<flow_t, double>) {
        using acc_t = std::conditional_t<std::is_same_v<scalar_t, double>, double, float>;
        const auto op = make_shift_align_backward<scalar_t, flow_t, acc_t>(
            grad_out, x, flow_fw, flow_bw, valid_fw, valid_bw, grads, groups, causal);
        launch_per_pixel(ShiftAlignBackwardAtomic<decltype(op)>{op}, x.size(0) * x.size(1),
                         x.size(3), x.size(4), x, "temporal_shift_align backward");
      }
    });
  }
  grads.finish();
  return {grads.grad_x, grads.grad_flow_fw, grads.grad_flow_bw};
}

}  // namespace fused_inpaint
