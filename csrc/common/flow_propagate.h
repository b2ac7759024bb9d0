// flow_propagate per-pixel math, shared by the CPU and CUDA kernels (SPEC 3.5b).
#pragma once

#include <cstdint>
#include <optional>
#include <tuple>

#include "common/fb_validity.h"
#include "common/sampling.h"
#include "common/tensor.h"

namespace fused_inpaint {

// Checks every flow_propagate kernel repeats for direct callers of the registered op.
inline void check_flow_propagate_args(const Tensor& hole, const Tensor& flow_to,
                                      const Tensor& flow_from, const Tensor& src_frame,
                                      const Tensor& src_pos, int64_t t, double alpha,
                                      double beta, std::optional<int64_t> max_age) {
  check_rank(flow_to, "flow_to", 4, "(N, 2, H, W)");
  check_size(flow_to, "flow_to", 1, 2, "(N, 2, H, W)");
  // hole, flow_from, src_frame and src_pos: (N, channels, H, W) on flow_to's device.
  const auto check_like_flow = [&](const Tensor& x, const char* name, int64_t channels,
                                   const char* shape) {
    check_rank(x, name, 4, shape);
    const int64_t expected[4] = {flow_to.size(0), channels, flow_to.size(2), flow_to.size(3)};
    for (int64_t d = 0; d < 4; ++d) check_size(x, name, d, expected[d], shape);
    check_same_device(x, name, flow_to, "flow_to");
  };
  check_like_flow(flow_from, "flow_from", 2, "(N, 2, H, W) like flow_to");
  check_like_flow(hole, "hole", 1, "(N, 1, H, W)");
  check_like_flow(src_frame, "src_frame", 1, "(N, 1, H, W)");
  check_like_flow(src_pos, "src_pos", 2, "(N, 2, H, W)");
  STD_TORCH_CHECK(flow_from.scalar_type() == flow_to.scalar_type(),
                  "flow_from must have the dtype of flow_to");
  STD_TORCH_CHECK(hole.scalar_type() == ScalarType::Byte, "hole must be uint8");
  STD_TORCH_CHECK(src_frame.scalar_type() == ScalarType::Int, "src_frame must be int32");
  STD_TORCH_CHECK(src_pos.scalar_type() == ScalarType::Float, "src_pos must be float32");
  check_frame_index(t, "t");
  check_fb_thresholds(alpha, beta);
  STD_TORCH_CHECK(!max_age.has_value() || max_age.value() >= 0, "max_age must be >= 0");
}

template <typename flow_t>
struct FlowPropagate {
  using coord_t = typename CoordOf<flow_t>::type;

  View4<const uint8_t> hole;
  View4<const flow_t> flow_to, flow_from;
  View4<const int32_t> src_frame;
  View4<const float> src_pos;
  View4<int32_t> frame_out;
  View4<float> pos_out;
  FbTest<coord_t> test;  // with check_bounds: a consistent q is in frame
  int64_t t;
  int64_t max_age;  // INT32_MAX: no limit (frame indices are int32 and >= 0)

  // Known pixel: (t, p). Hole pixel: the neighbour's source at r = round(q), moved by
  // q - r, where the flows agree at p and that source is no older than max_age; else
  // (-1, (0, 0)).
  FI_HOST_DEVICE void pixel(int64_t n, int64_t py, int64_t px) const {
    int32_t frame = static_cast<int32_t>(t);
    float x = float(px), y = float(py);
    if (hole.at(n, 0, py, px) != 0) {
      frame = -1;
      x = y = 0.f;
      const FbSample<coord_t> s = test.at(flow_to, flow_from, n, py, px);
      if (s.consistent) {
        // q is in [0, size - 1] on both axes, and so is its rounding.
        const coord_t rx = fi_round_half_even(s.qx), ry = fi_round_half_even(s.qy);
        const int64_t cx = tap_index(rx), cy = tap_index(ry);
        const int32_t source = src_frame.at(n, 0, cy, cx);
        const int64_t age = source > t ? source - t : t - source;
        if (source >= 0 && age <= max_age) {
          frame = source;
          x = float(coord_t(src_pos.at(n, 0, cy, cx)) + (s.qx - rx));
          y = float(coord_t(src_pos.at(n, 1, cy, cx)) + (s.qy - ry));
        }
      }
    }
    frame_out.at(n, 0, py, px) = frame;
    pos_out.at(n, 0, py, px) = x;
    pos_out.at(n, 1, py, px) = y;
  }
};

// (src_frame_t, src_pos_t): (N, 1, H, W) int32 and (N, 2, H, W) float32, contiguous.
inline std::tuple<Tensor, Tensor> new_flow_propagate_outputs(const Tensor& flow_to) {
  const int64_t n = flow_to.size(0), h = flow_to.size(2), w = flow_to.size(3);
  const int64_t frame_sizes[4] = {n, 1, h, w}, pos_sizes[4] = {n, 2, h, w};
  return {new_output(flow_to, "src_frame_t", frame_sizes, 4, ScalarType::Int),
          new_output(flow_to, "src_pos_t", pos_sizes, 4, ScalarType::Float)};
}

template <typename flow_t>
FlowPropagate<flow_t> make_flow_propagate(const Tensor& hole, const Tensor& flow_to,
                                          const Tensor& flow_from, const Tensor& src_frame,
                                          const Tensor& src_pos, const Tensor& frame_out,
                                          const Tensor& pos_out, int64_t t, double alpha,
                                          double beta, std::optional<int64_t> max_age) {
  using coord_t = typename CoordOf<flow_t>::type;
  return {view4<const uint8_t>(hole),
          view4<const flow_t>(flow_to),
          view4<const flow_t>(flow_from),
          view4<const int32_t>(src_frame),
          view4<const float>(src_pos),
          view4<int32_t>(frame_out),
          view4<float>(pos_out),
          FbTest<coord_t>::make(flow_to.size(2), flow_to.size(3), alpha, beta, true),
          t,
          max_age.value_or(INT32_MAX)};
}

}  // namespace fused_inpaint
