// flow_propagate on the CPU: parallel over image rows.
#include "common/flow_propagate.h"
#include "cpu/parallel.h"

namespace fused_inpaint {
namespace {

std::tuple<Tensor, Tensor> flow_propagate_cpu(const Tensor& hole, const Tensor& flow_to,
                                              const Tensor& flow_from, const Tensor& src_frame,
                                              const Tensor& src_pos, int64_t t, double alpha,
                                              double beta, std::optional<int64_t> max_age) {
  check_flow_propagate_args(hole, flow_to, flow_from, src_frame, src_pos, t, alpha, beta,
                            max_age);
  Tensor frame_out, pos_out;
  std::tie(frame_out, pos_out) = new_flow_propagate_outputs(flow_to);
  if (frame_out.numel() == 0) return {frame_out, pos_out};
  dispatch_floating<false>(flow_to.scalar_type(), "flow_to", [&](auto flow_tag) {
    const auto op = make_flow_propagate<decltype(flow_tag)>(
        hole, flow_to, flow_from, src_frame, src_pos, frame_out, pos_out, t, alpha, beta,
        max_age);
    for_each_pixel(flow_to.size(0), flow_to.size(2), flow_to.size(3), 16,
                   [&](int64_t n, int64_t py, int64_t px) { op.pixel(n, py, px); });
  });
  return {frame_out, pos_out};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(fused_inpaint, CPU, m) {
  m.impl("flow_propagate", TORCH_BOX(&flow_propagate_cpu));
}

}  // namespace fused_inpaint
