// temporal_shift on CUDA: one thread per (frame, pixel) walks the channels.
#include "common/temporal_shift.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace fused_inpaint {

Tensor temporal_shift_cuda(const Tensor& x, int64_t fold, bool reverse) {
  const int64_t frames = x.size(1), channels = x.size(2);
  const ShiftGroups groups = ShiftGroups::make(channels, fold);
  Tensor out = output_like(x, "temporal_shift's output");
  if (out.numel() == 0) return out;
  dispatch_floating<true>(x.scalar_type(), "x", [&](auto tag) {
    using scalar_t = decltype(tag);
    const TemporalShift<scalar_t> op{view5<const scalar_t>(x), view5<scalar_t>(out), frames,
                                     channels, groups, reverse ? -1 : 1};
    launch_per_pixel(op, x.size(0) * frames, x.size(3), x.size(4), x, "temporal_shift");
  });
  return out;
}

}  // namespace fused_inpaint
