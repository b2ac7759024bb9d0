// fb_validity on CUDA: one thread per pixel tests both directions, reading each flow
// once from memory (the bilinear gathers of the other flow hit the same cache lines).
#include "common/fb_validity.h"
#include "cuda/launch.cuh"

namespace fused_inpaint {
namespace {

Tensor fb_validity_cuda(const Tensor& flow_fw, const Tensor& flow_bw,
                        std::optional<Tensor> source_fw, std::optional<Tensor> source_bw,
                        double alpha, double beta, bool check_bounds, bool both,
                       std::optional<ScalarType> dtype) {
  check_fb_validity_args(flow_fw, flow_bw, source_fw, source_bw);
  check_cuda(flow_fw, "flow_fw");
  const torch::stable::accelerator::DeviceGuard guard(flow_fw.get_device_index());
  Tensor out = new_fb_validity_output(flow_fw, both, dtype);
  if (out.numel() == 0) return out;
  dispatch_fb_validity<true>(flow_fw, out, [&](auto flow_tag, auto out_tag) {
    const auto op = make_fb_validity<decltype(flow_tag), decltype(out_tag)>(
        flow_fw, flow_bw, source_fw, source_bw, out, alpha, beta, check_bounds);
    launch_per_pixel(op, flow_fw.size(0), flow_fw.size(2), flow_fw.size(3), flow_fw,
                     "fb_validity");
  });
  return out;
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(fused_inpaint, CUDA, m) {
  m.impl("fb_validity", TORCH_BOX(&fb_validity_cuda));
}

}  // namespace fused_inpaint
