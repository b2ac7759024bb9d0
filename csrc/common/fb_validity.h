// fb_validity per-pixel math, shared by the CPU and CUDA kernels (SPEC 3.2).
#pragma once

#include <cmath>
#include <cstdint>
#include <optional>

#include "common/sampling.h"
#include "common/tensor.h"

namespace fused_inpaint {

// The consistency test's alpha and beta (fb_validity, flow_propagate): finite and >= 0.
inline void check_fb_thresholds(double alpha, double beta) {
  STD_TORCH_CHECK(std::isfinite(alpha) && alpha >= 0, "alpha must be finite and >= 0, got ",
                  alpha);
  STD_TORCH_CHECK(std::isfinite(beta) && beta >= 0, "beta must be finite and >= 0, got ", beta);
}

// Checks every fb_validity kernel repeats for direct callers of the registered op.
inline void check_fb_validity_args(const Tensor& flow_fw, const Tensor& flow_bw,
                                   const std::optional<Tensor>& source_fw,
                                   const std::optional<Tensor>& source_bw, double alpha,
                                   double beta, bool both, std::optional<ScalarType> dtype) {
  // source_bw holds frame t's holes, which only the backward test (both) leans on.
  STD_TORCH_CHECK(both || !source_bw.has_value(),
                  "source_bw is read only with both=True: pass None");
  check_rank(flow_fw, "flow_fw", 4, "(N, 2, H, W)");
  check_size(flow_fw, "flow_fw", 1, 2, "(N, 2, H, W)");
  check_rank(flow_bw, "flow_bw", 4, "(N, 2, H, W)");
  for (int64_t d = 0; d < 4; ++d) check_size(flow_bw, "flow_bw", d, flow_fw.size(d), "like flow_fw");
  check_same_device(flow_bw, "flow_bw", flow_fw, "flow_fw");
  STD_TORCH_CHECK(flow_bw.scalar_type() == flow_fw.scalar_type(),
                  "flow_bw must have the dtype of flow_fw");
  for (const auto* source : {&source_fw, &source_bw}) {
    if (!source->has_value()) continue;
    const Tensor& mask = source->value();
    check_rank(mask, "source_mask", 4, "(N, 1, H, W)");
    const int64_t expected[4] = {flow_fw.size(0), 1, flow_fw.size(2), flow_fw.size(3)};
    for (int64_t d = 0; d < 4; ++d) check_size(mask, "source_mask", d, expected[d], "(N, 1, H, W)");
    check_same_device(mask, "source_mask", flow_fw, "flow_fw");
    STD_TORCH_CHECK(mask.scalar_type() == ScalarType::Byte, "source_mask must be uint8");
  }
  check_fb_thresholds(alpha, beta);
  const ScalarType out_dtype = dtype.value_or(flow_fw.scalar_type());
  STD_TORCH_CHECK(out_dtype == ScalarType::Bool || out_dtype == ScalarType::Byte ||
                      out_dtype == flow_fw.scalar_type(),
                  "dtype must be bool, uint8 or the flow's dtype");
}

// x^2 + y^2, each step rounded on its own.
template <typename T>
FI_HOST_DEVICE T squared_norm(T x, T y) {
  return fi_add_rn(fi_mul_rn(x, x), fi_mul_rn(y, y));
}

// Where fb_validity's test sends a pixel p: q = p + from(p), and whether it passes there.
template <typename coord_t>
struct FbSample {
  coord_t qx = 0, qy = 0;
  Taps2d<coord_t> taps;     // the bilinear taps of q (none where the test stops before)
  bool consistent = false;  // q finite (in frame with check_bounds) and the flows agree
};

// fb_validity's consistency test (SPEC 3.2), also the one flow_propagate applies.
template <typename coord_t>
struct FbTest {
  AxisMap<coord_t> mx, my;
  coord_t alpha, beta;
  bool check_bounds;

  static FbTest make(int64_t height, int64_t width, double alpha, double beta,
                     bool check_bounds) {
    return {AxisMap<coord_t>::make(width, true), AxisMap<coord_t>::make(height, true),
            coord_t(alpha), coord_t(beta), check_bounds};
  }

  // Pixel p of the frame of `from`: q = p + from(p), b = to(q) (bilinear, zero padding).
  template <typename flow_t>
  FI_HOST_DEVICE FbSample<coord_t> at(const View4<const flow_t>& from,
                                      const View4<const flow_t>& to, int64_t n, int64_t py,
                                      int64_t px) const {
    FbSample<coord_t> s;
    const coord_t fx = coord_t(from.at(n, 0, py, px)), fy = coord_t(from.at(n, 1, py, px));
    s.qx = coord_t(px) + fx;
    s.qy = coord_t(py) + fy;
    if (!fi_isfinite(s.qx) || !fi_isfinite(s.qy)) return s;
    if (check_bounds && !(mx.contains(s.qx) && my.contains(s.qy))) return s;
    s.taps = {mx.taps(px, fx, kBilinear, kZeros), my.taps(py, fy, kBilinear, kZeros)};
    const auto sample_to = [&](int64_t channel) {
      return s.taps.blend(s.taps.gather(
          [&](int64_t c, int64_t r) { return coord_t(to.at(n, channel, r, c)); }));
    };
    const coord_t bx = sample_to(0), by = sample_to(1);
    // ProPainter's order of operations, so float32 results match its composite; each
    // step rounded on its own, so the GPU decides as the CPU does.
    const coord_t lhs = squared_norm(fx + bx, fy + by);
    const coord_t magnitude = squared_norm(fx, fy) + squared_norm(bx, by);
    s.consistent = lhs < fi_add_rn(fi_mul_rn(alpha, magnitude), beta);
    return s;
  }
};

// out_t: uint8 (also the storage of bool masks) or the flow's dtype.
template <typename flow_t, typename out_t>
struct FbValidity {
  using coord_t = typename CoordOf<flow_t>::type;

  View4<const flow_t> flow_fw, flow_bw;
  View4<const uint8_t> source_fw, source_bw;  // data == nullptr: no hole mask
  View4<out_t> valid_fw, valid_bw;            // valid_bw.data == nullptr: one direction
  FbTest<coord_t> test;

  // Pixel p of the frame of `from`: consistent with `to`, and not leaning on the holes of
  // to's frame.
  FI_HOST_DEVICE bool valid(const View4<const flow_t>& from, const View4<const flow_t>& to,
                            const View4<const uint8_t>& holes, int64_t n, int64_t py,
                            int64_t px) const {
    const FbSample<coord_t> s = test.at(from, to, n, py, px);
    if (!s.consistent) return false;
    if (holes.data != nullptr) {
      const coord_t hole = s.taps.blend(s.taps.gather([&](int64_t c, int64_t r) {
        return coord_t(holes.at(n, 0, r, c) != 0 ? 1 : 0);
      }));
      if (hole > coord_t(0.1)) return false;
    }
    return true;
  }

  FI_HOST_DEVICE void pixel(int64_t n, int64_t py, int64_t px) const {
    valid_fw.at(n, 0, py, px) = out_t(valid(flow_fw, flow_bw, source_fw, n, py, px) ? 1 : 0);
    if (valid_bw.data != nullptr) {
      valid_bw.at(n, 0, py, px) = out_t(valid(flow_bw, flow_fw, source_bw, n, py, px) ? 1 : 0);
    }
  }
};

// The op's output: (D, N, 1, H, W), D = 2 with both directions; bool, uint8 or (default)
// the flow's dtype (check_fb_validity_args).
inline Tensor new_fb_validity_output(const Tensor& flow_fw, bool both,
                                     std::optional<ScalarType> dtype) {
  const int64_t sizes[5] = {both ? 2 : 1, flow_fw.size(0), 1, flow_fw.size(2), flow_fw.size(3)};
  return new_output(flow_fw, "fb_validity's output", sizes, 5,
                    dtype.value_or(flow_fw.scalar_type()));
}

// Calls f(flow_t{}, out_t{}) for the flow's dtype and the output's.
template <bool kWithHalf, typename F>
void dispatch_fb_validity(const Tensor& flow_fw, const Tensor& out, const F& f) {
  dispatch_floating<kWithHalf>(flow_fw.scalar_type(), "flow_fw", [&](auto tag) {
    using flow_t = decltype(tag);
    if (out.scalar_type() == ScalarType::Bool) {
      f(flow_t{}, bool{});
    } else if (out.scalar_type() == ScalarType::Byte) {
      f(flow_t{}, uint8_t{});
    } else {
      f(flow_t{}, flow_t{});
    }
  });
}

template <typename flow_t, typename out_t>
FbValidity<flow_t, out_t> make_fb_validity(const Tensor& flow_fw, const Tensor& flow_bw,
                                           const std::optional<Tensor>& source_fw,
                                           const std::optional<Tensor>& source_bw,
                                           const Tensor& out, double alpha, double beta,
                                           bool check_bounds) {
  using coord_t = typename CoordOf<flow_t>::type;
  const auto source = [](const std::optional<Tensor>& mask) {
    return mask.has_value() ? view4<const uint8_t>(mask.value()) : View4<const uint8_t>{};
  };
  const auto direction = [&](int64_t d) {
    if (d >= out.size(0)) return View4<out_t>{};
    return View4<out_t>{static_cast<out_t*>(out.data_ptr()) + d * out.stride(0),
                        {out.stride(1), out.stride(2), out.stride(3), out.stride(4)}};
  };
  return {view4<const flow_t>(flow_fw),
          view4<const flow_t>(flow_bw),
          source(source_fw),
          source(source_bw),
          direction(0),
          direction(1),
          FbTest<coord_t>::make(flow_fw.size(2), flow_fw.size(3), alpha, beta, check_bounds)};
}

}  // namespace fused_inpaint
