// fb_validity on CUDA: one thread per pixel tests both directions, reading each flow
// once from memory (the bilinear gathers of the other flow hit the same cache lines).
#include "common/fb_validity.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace fused_inpaint {

Tensor fb_validity_cuda(const Tensor& flow_fw, const Tensor& flow_bw,
                        const std::optional<Tensor>& source_fw,
                        const std::optional<Tensor>& source_bw, double alpha, double beta,
                        bool check_bounds, bool both, std::optional<ScalarType> dtype) {
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

}  // namespace fused_inpaint
