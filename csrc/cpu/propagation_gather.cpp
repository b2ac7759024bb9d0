// propagation_gather on the CPU: parallel over image rows.
#include "common/propagation_gather.h"
#include "cpu/parallel.h"

namespace fused_inpaint {
namespace {

std::tuple<Tensor, Tensor> propagation_gather_cpu(const Tensor& frames, const Tensor& holes,
                                                  const Tensor& src_frame,
                                                  const Tensor& src_pos, int64_t t0) {
  check_propagation_gather_args(frames, holes, src_frame, src_pos, t0);
  Tensor image, valid;
  std::tie(image, valid) = new_propagation_gather_outputs(frames);
  if (valid.numel() == 0 || gather_without_frames(frames, image, valid)) {
    return {image, valid};
  }
  const int64_t channels = frames.size(2);
  dispatch_floating<false>(frames.scalar_type(), "frames", [&](auto tag) {
    const auto op = make_propagation_gather<decltype(tag)>(frames, holes, src_frame, src_pos,
                                                           image, valid, t0);
    for_each_pixel(frames.size(0), frames.size(3), frames.size(4), 4 * channels + 8,
                   [&](int64_t n, int64_t py, int64_t px) { op.pixel(n, py, px); });
  });
  return {image, valid};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(fused_inpaint, CPU, m) {
  m.impl("propagation_gather", TORCH_BOX(&propagation_gather_cpu));
}

}  // namespace fused_inpaint
