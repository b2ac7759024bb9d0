// temporal_shift on the CPU: parallel over (frame, row).
#include "common/temporal_shift.h"
#include "cpu/parallel.h"

namespace fused_inpaint {
namespace {

Tensor temporal_shift_cpu(const Tensor& x, int64_t fold, bool reverse) {
  check_shift_args(x, fold);
  const int64_t frames = x.size(1), channels = x.size(2);
  const ShiftGroups groups = ShiftGroups::make(channels, fold);
  Tensor out = output_like(x, "temporal_shift's output");
  if (out.numel() == 0) return out;
  dispatch_floating<false>(x.scalar_type(), "x", [&](auto tag) {
    using scalar_t = decltype(tag);
    const TemporalShift<scalar_t> op{view5<const scalar_t>(x), view5<scalar_t>(out), frames,
                                     channels, groups, reverse ? -1 : 1};
    for_each_pixel(x.size(0) * frames, x.size(3), x.size(4), channels,
                   [&](int64_t nt, int64_t py, int64_t px) { op.pixel(nt, py, px); });
  });
  return out;
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(fused_inpaint, CPU, m) {
  m.impl("temporal_shift", TORCH_BOX(&temporal_shift_cpu));
}

}  // namespace fused_inpaint
