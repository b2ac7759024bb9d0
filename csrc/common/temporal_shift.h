// Temporal shift (TSM, SPEC 3.3): the channel groups shared with temporal_shift_align,
// and the per-pixel shift itself.
#pragma once

#include "common/tensor.h"

namespace fused_inpaint {

// Channels [0, fold) look one frame ahead, [fold, end) one frame back, [end, C) stay.
struct ShiftGroups {
  int64_t fold;
  int64_t end;

  // fold >= 0 (check_shift_args).
  static ShiftGroups make(int64_t channels, int64_t fold) {
    const int64_t f = fold < channels ? fold : channels;
    return {f, 2 * f < channels ? 2 * f : channels};
  }
};

inline void check_shift_args(const Tensor& x, int64_t fold) {
  check_rank(x, "x", 5, "(N, T, C, H, W)");
  STD_TORCH_CHECK(fold >= 0, "fold must be >= 0, got ", fold);
}

// out[t, group ahead] = x[t + step], out[t, group behind] = x[t - step], zero past the
// ends; step = 1, or -1 for the adjoint (the gradient of the shift is the reverse shift).
template <typename scalar_t>
struct TemporalShift {
  View5<const scalar_t> x;
  View5<scalar_t> out;
  int64_t frames, channels;
  ShiftGroups groups;
  int64_t step;

  FI_HOST_DEVICE void pixel(int64_t nt, int64_t py, int64_t px) const {
    const int64_t n = nt / frames, t = nt % frames;
    const auto copy = [&](int64_t c_begin, int64_t c_end, int64_t source) {
      const bool inside = source >= 0 && source < frames;
      for (int64_t c = c_begin; c < c_end; ++c) {
        out.at(n, t, c, py, px) = inside ? x.at(n, source, c, py, px) : scalar_t(0);
      }
    };
    copy(0, groups.fold, t + step);
    copy(groups.fold, groups.end, t - step);
    copy(groups.end, channels, t);
  }
};

}  // namespace fused_inpaint
