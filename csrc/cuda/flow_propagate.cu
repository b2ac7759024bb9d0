// flow_propagate on CUDA: one thread per pixel. A known pixel writes (t, p) without
// reading a flow; a hole pixel reads its flow_to vector, gathers flow_from's four taps
// at q (neighbouring threads hit the same lines for smooth flows), tests them, then reads
// the neighbour's state at round(q). Registers hold one pixel's taps and test values only.
#include "common/flow_propagate.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace fused_inpaint {

std::tuple<Tensor, Tensor> flow_propagate_cuda(const Tensor& hole, const Tensor& flow_to,
                                               const Tensor& flow_from, const Tensor& src_frame,
                                               const Tensor& src_pos, int64_t t, double alpha,
                                               double beta, std::optional<int64_t> max_age) {
  Tensor frame_out, pos_out;
  std::tie(frame_out, pos_out) = new_flow_propagate_outputs(flow_to);
  if (frame_out.numel() == 0) return {frame_out, pos_out};
  dispatch_floating<true>(flow_to.scalar_type(), "flow_to", [&](auto flow_tag) {
    const auto op = make_flow_propagate<decltype(flow_tag)>(
        hole, flow_to, flow_from, src_frame, src_pos, frame_out, pos_out, t, alpha, beta,
        max_age);
    launch_per_pixel(op, flow_to.size(0), flow_to.size(2), flow_to.size(3), flow_to,
                     "flow_propagate");
  });
  return {frame_out, pos_out};
}

}  // namespace fused_inpaint
