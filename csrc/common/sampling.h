// Bilinear / nearest sampling on pixel centres, shared by the CPU and CUDA kernels.
//
// Convention (SPEC 3): a sample point q is in pixels, integer coordinates hit pixel
// centres, W-1 is the last column. Taps outside the frame are flagged and never read,
// so a huge or non-finite flow can not cause an out-of-bounds access.
#pragma once

#include <cmath>
#include <cstdint>

#include "common/macros.h"

namespace fused_inpaint {

enum SampleMode : int64_t { kBilinear = 0, kNearest = 1 };
enum PaddingMode : int64_t { kZeros = 0, kBorder = 1 };

// Coordinates are float32 whatever the data dtype (fp16 is not exact past 2048 px),
// float64 for float64 data.
template <typename scalar_t>
struct CoordOf {
  using type = float;
};
template <>
struct CoordOf<double> {
  using type = double;
};

template <typename T>
FI_HOST_DEVICE bool fi_isfinite(T v) {
#if defined(__CUDA_ARCH__)
  return isfinite(v);
#else
  return std::isfinite(v);
#endif
}

template <typename T>
FI_HOST_DEVICE T fi_floor(T v) {
#if defined(__CUDA_ARCH__)
  return floor(v);
#else
  return std::floor(v);
#endif
}

// Round half to even, as grid_sample's nearest mode does.
template <typename T>
FI_HOST_DEVICE T fi_round_half_even(T v) {
#if defined(__CUDA_ARCH__)
  return rint(v);
#else
  return std::nearbyint(v);
#endif
}

template <typename T>
FI_HOST_DEVICE T fi_ceil(T v) {
#if defined(__CUDA_ARCH__)
  return ceil(v);
#else
  return std::ceil(v);
#endif
}

// Whether a tap is in frame is decided on its integer index, never by comparing a
// coordinate with coord_t(size - 1): in float32 that rounds up to size once size > 2^24,
// and the tap at index size would count as in frame. The floor (or ceil, or rounding) of a
// finite coordinate is an integer, exact in int64 once clamped to +-2^62 (exact in every
// coord_t, far past any tensor's size): converting a larger value is undefined behaviour.
constexpr int64_t kTapIndexLimit = int64_t(1) << 62;

template <typename coord_t>
FI_HOST_DEVICE int64_t tap_index(coord_t integral) {
  if (integral <= -coord_t(kTapIndexLimit)) return -kTapIndexLimit;
  if (integral >= coord_t(kTapIndexLimit)) return kTapIndexLimit;
  return static_cast<int64_t>(integral);
}

// a * b and a + b, each rounded on its own. nvcc contracts a * b + c into a fused
// multiply-add, whose single rounding would move results near a threshold off the CPU's.
FI_HOST_DEVICE float fi_mul_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fmul_rn(a, b);
#else
  return a * b;
#endif
}

FI_HOST_DEVICE double fi_mul_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dmul_rn(a, b);
#else
  return a * b;
#endif
}

FI_HOST_DEVICE float fi_add_rn(float a, float b) {
#if defined(__CUDA_ARCH__)
  return __fadd_rn(a, b);
#else
  return a + b;
#endif
}

FI_HOST_DEVICE double fi_add_rn(double a, double b) {
#if defined(__CUDA_ARCH__)
  return __dadd_rn(a, b);
#else
  return a + b;
#endif
}

// The two taps of one axis around a sample coordinate.
template <typename coord_t>
struct AxisTaps {
  int64_t i0 = 0;     // first tap; the second is i0 + 1
  bool in0 = false;   // first tap inside the frame
  bool in1 = false;   // second tap inside the frame (never for nearest)
  coord_t w1 = 0;     // weight of the second tap
  coord_t dq = 0;     // d(sample coordinate) / d(flow); 0 where clamped or out
};

// Maps a pixel p and its flow f to the taps of the sample point along one axis.
//   align_corners=True:  q = p + f
//   align_corners=False: q = (p + f) * size / max(size - 1, 1) - 0.5   (mmagic)
template <typename coord_t>
struct AxisMap {
  coord_t scale;
  coord_t shift;
  int64_t size;

  static AxisMap make(int64_t size, bool align_corners) {
    if (align_corners) return {coord_t(1), coord_t(0), size};
    const int64_t denom = size > 1 ? size - 1 : 1;
    return {coord_t(size) / coord_t(denom), coord_t(0.5), size};
  }

  // Whether a sample coordinate lies in [0, size - 1] (false for a non-finite one).
  FI_HOST_DEVICE bool contains(coord_t q) const {
    return fi_isfinite(q) && q >= coord_t(0) && tap_index(fi_ceil(q)) <= size - 1;
  }

  FI_HOST_DEVICE AxisTaps<coord_t> taps(int64_t p, coord_t f, int64_t mode,
                                        int64_t padding) const {
    AxisTaps<coord_t> t;
    // Rounded step by step: a fused multiply-add here moves q across a pixel boundary
    // where its ulp reaches 1 (a side near 2^24), and the GPU would pick other taps.
    const coord_t q = fi_add_rn(fi_mul_rn(coord_t(p) + f, scale), -shift);
    if (!fi_isfinite(q)) return t;  // a non-finite flow samples nothing
    const int64_t last = size - 1;
    if (mode == kNearest) {
      int64_t r = tap_index(fi_round_half_even(q));
      // Rounding commutes with the clamp to [0, last], whose ends are integers.
      if (padding == kBorder) r = r < 0 ? 0 : r > last ? last : r;
      if (r >= 0 && r <= last) {
        t.i0 = r;
        t.in0 = true;
      }
      return t;
    }
    const coord_t f0 = fi_floor(q);
    int64_t i0 = tap_index(f0);
    coord_t w1 = q - f0;
    coord_t dq = scale;
    if (padding == kBorder) {
      // q clamped to [0, last]; like grid_sample, the border itself counts as clamped for
      // the gradient. q >= last exactly when floor(q) >= last.
      if (q <= coord_t(0) || i0 >= last) {
        i0 = q <= coord_t(0) ? 0 : last;
        w1 = coord_t(0);
        dq = coord_t(0);
      }
    }
    if (i0 < -1 || i0 > last) return t;
    t.i0 = i0;
    t.in0 = i0 >= 0;
    t.in1 = i0 < last;
    t.w1 = w1;
    t.dq = dq;
    return t;
  }
};

// The four corner values around a sample point (v<row><col>), zero outside the frame.
template <typename coord_t>
struct Corners {
  coord_t v00 = 0, v01 = 0, v10 = 0, v11 = 0;
};

// The taps of one sample point in both axes, and the bilinear algebra on them.
template <typename coord_t>
struct Taps2d {
  AxisTaps<coord_t> x, y;

  // load(col, row) -> coord_t; only called for taps inside the frame.
  template <typename Load>
  FI_HOST_DEVICE Corners<coord_t> gather(const Load& load) const {
    Corners<coord_t> c;
    if (y.in0) {
      if (x.in0) c.v00 = load(x.i0, y.i0);
      if (x.in1) c.v01 = load(x.i0 + 1, y.i0);
    }
    if (y.in1) {
      if (x.in0) c.v10 = load(x.i0, y.i0 + 1);
      if (x.in1) c.v11 = load(x.i0 + 1, y.i0 + 1);
    }
    return c;
  }

  FI_HOST_DEVICE coord_t blend(const Corners<coord_t>& c) const {
    // Weighted sum rather than lerp: a zero weight must not turn an inf tap into NaN
    // (nearest mode copies values exactly). Each step is rounded on its own, so the GPU
    // samples what the CPU does: fb_validity thresholds these values.
    const coord_t wx0 = coord_t(1) - x.w1;
    const coord_t top = fi_add_rn(fi_mul_rn(c.v00, wx0), fi_mul_rn(c.v01, x.w1));
    const coord_t bottom = fi_add_rn(fi_mul_rn(c.v10, wx0), fi_mul_rn(c.v11, x.w1));
    return fi_add_rn(fi_mul_rn(top, coord_t(1) - y.w1), fi_mul_rn(bottom, y.w1));
  }

  // add(col, row, value) for every tap inside the frame: the adjoint of blend.
  template <typename Add>
  FI_HOST_DEVICE void scatter(coord_t g, const Add& add) const {
    const coord_t gy0 = g * (coord_t(1) - y.w1);
    const coord_t gy1 = g * y.w1;
    if (y.in0) {
      if (x.in0) add(x.i0, y.i0, gy0 * (coord_t(1) - x.w1));
      if (x.in1) add(x.i0 + 1, y.i0, gy0 * x.w1);
    }
    if (y.in1) {
      if (x.in0) add(x.i0, y.i0 + 1, gy1 * (coord_t(1) - x.w1));
      if (x.in1) add(x.i0 + 1, y.i0 + 1, gy1 * x.w1);
    }
  }

  // Gradient of g * blend(c) with respect to the flow (dx, dy).
  FI_HOST_DEVICE void flow_grad(const Corners<coord_t>& c, coord_t g, coord_t& gx,
                                coord_t& gy) const {
    const coord_t dblend_dqx =
        (c.v01 - c.v00) * (coord_t(1) - y.w1) + (c.v11 - c.v10) * y.w1;
    const coord_t dblend_dqy =
        (c.v10 - c.v00) * (coord_t(1) - x.w1) + (c.v11 - c.v01) * x.w1;
    gx += g * dblend_dqx * x.dq;
    gy += g * dblend_dqy * y.dq;
  }
};

// Everything a warp kernel needs to turn (pixel, flow) into taps.
template <typename coord_t>
struct WarpGeometry {
  AxisMap<coord_t> mx, my;
  int64_t mode;
  int64_t padding;

  static WarpGeometry make(int64_t height, int64_t width, int64_t mode, int64_t padding,
                           bool align_corners) {
    return {AxisMap<coord_t>::make(width, align_corners),
            AxisMap<coord_t>::make(height, align_corners), mode, padding};
  }

  FI_HOST_DEVICE Taps2d<coord_t> taps(int64_t px, int64_t py, coord_t fx,
                                      coord_t fy) const {
    return {mx.taps(px, fx, mode, padding), my.taps(py, fy, mode, padding)};
  }
};

}  // namespace fused_inpaint
