// fb_validity on the CPU: parallel over image rows, both directions in one sweep.
#include "common/fb_validity.h"
#include "cpu/parallel.h"

namespace fused_inpaint {
namespace {

Tensor fb_validity_cpu(const Tensor& flow_fw, const Tensor& flow_bw,
                       std::optional<Tensor> source_fw, std::optional<Tensor> source_bw,
                       double alpha, double beta, bool check_bounds, bool both,
                       std::optional<ScalarType> dtype) {
  check_fb_validity_args(flow_fw, flow_bw, source_fw, source_bw, alpha, beta, both, dtype);
  Tensor out = new_fb_validity_output(flow_fw, both, dtype);
  if (out.numel() == 0) return out;
  const int64_t height = flow_fw.size(2), width = flow_fw.size(3);
  dispatch_fb_validity<false>(flow_fw, out, [&](auto flow_tag, auto out_tag) {
    const auto op = make_fb_validity<decltype(flow_tag), decltype(out_tag)>(
        flow_fw, flow_bw, source_fw, source_bw, out, alpha, beta, check_bounds);
    for_each_pixel(flow_fw.size(0), height, width, 8, [&](int64_t n, int64_t py, int64_t px) {
      op.pixel(n, py, px);
    });
  });
  return out;
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(fused_inpaint, CPU, m) {
  m.impl("fb_validity", TORCH_BOX(&fb_validity_cpu));
}

}  // namespace fused_inpaint
