// propagation_gather per-pixel math, shared by the CPU and CUDA kernels (SPEC 3.5c).
#pragma once

#include <torch/headeronly/core/MemoryFormat.h>

#include <cstdint>
#include <tuple>

#include "common/channel_loop.h"
#include "common/sampling.h"
#include "common/tensor.h"

namespace fused_inpaint {

// Checks every propagation_gather kernel repeats for direct callers of the registered op.
inline void check_propagation_gather_args(const Tensor& frames, const Tensor& holes,
                                          const Tensor& src_frame, const Tensor& src_pos,
                                          int64_t t0) {
  check_rank(frames, "frames", 5, "(N, T, C, H, W)");
  const int64_t n = frames.size(0), h = frames.size(3), w = frames.size(4);
  check_rank(holes, "holes", 5, "(N, T, 1, H, W)");
  const int64_t hole_sizes[5] = {n, frames.size(1), 1, h, w};
  for (int64_t d = 0; d < 5; ++d) check_size(holes, "holes", d, hole_sizes[d], "(N, T, 1, H, W)");
  check_same_device(holes, "holes", frames, "frames");
  STD_TORCH_CHECK(holes.scalar_type() == ScalarType::Byte, "holes must be uint8");
  for (const auto& [state, name, channels, shape] :
       {std::tuple{&src_frame, "src_frame", int64_t(1), "(N, 1, H, W)"},
        std::tuple{&src_pos, "src_pos", int64_t(2), "(N, 2, H, W)"}}) {
    check_rank(*state, name, 4, shape);
    const int64_t expected[4] = {n, channels, h, w};
    for (int64_t d = 0; d < 4; ++d) check_size(*state, name, d, expected[d], shape);
    check_same_device(*state, name, frames, "frames");
  }
  STD_TORCH_CHECK(src_frame.scalar_type() == ScalarType::Int, "src_frame must be int32");
  STD_TORCH_CHECK(src_pos.scalar_type() == ScalarType::Float, "src_pos must be float32");
  check_frame_index(t0, "t0");
}

template <typename scalar_t>
struct PropagationGather {
  using coord_t = typename CoordOf<scalar_t>::type;

  View5<const scalar_t> frames;
  View5<const uint8_t> holes;
  View4<const int32_t> src_frame;
  View4<const float> src_pos;
  View4<scalar_t> image;
  View4<bool> valid;
  int64_t frames_in_chunk, channels, t0;
  AxisMap<coord_t> mx, my;

  FI_HOST_DEVICE void pixel(int64_t n, int64_t py, int64_t px) const {
    const int32_t source = src_frame.at(n, 0, py, px);
    const int64_t k = int64_t(source) - t0;  // the source's frame in the chunk
    // The reference's taps and order: (x0, y0), (x0+1, y0), (x0, y0+1), (x0+1, y0+1), each
    // weighing (x weight) * (y weight); 0 out of frame or in the source frame's hole. Every
    // product and sum is rounded on its own (no fused multiply-add on the GPU), so each
    // backend computes the reference's weights and colours bit for bit.
    coord_t w[4] = {};
    int64_t tap[4] = {};  // offset of each tap's channel 0 in frames; read where w > 0
    coord_t weight = 0;
    if (source >= 0 && k >= 0 && k < frames_in_chunk) {
      // A position is a sample point: pixel 0 moved by it.
      const AxisTaps<coord_t> tx = mx.taps(0, coord_t(src_pos.at(n, 0, py, px)), kBilinear, kZeros);
      const AxisTaps<coord_t> ty = my.taps(0, coord_t(src_pos.at(n, 1, py, px)), kBilinear, kZeros);
      FI_UNROLL for (int i = 0; i < 4; ++i) {
        const int dx = i & 1, dy = i >> 1;
        const int64_t col = tx.i0 + dx, row = ty.i0 + dy;
        if ((dx ? tx.in1 : tx.in0) && (dy ? ty.in1 : ty.in0)) {
          w[i] = fi_mul_rn(dx ? tx.w1 : coord_t(1) - tx.w1, dy ? ty.w1 : coord_t(1) - ty.w1);
          if (w[i] > coord_t(0) && holes.at(n, k, 0, row, col) != 0) w[i] = 0;
          tap[i] = frames.offset(n, k, 0, row, col);
        }
        weight = fi_add_rn(weight, w[i]);
      }
    }
    const bool ok = weight > coord_t(1e-3);  // out of the chunk, weight stays 0
    valid.at(n, 0, py, px) = ok;
    const int64_t channel_stride = frames.stride[2];
    for_channel_chunks(0, channels, [&](auto count, int64_t c0) {
      constexpr int kCount = decltype(count)::value;
      coord_t value[kCount][4] = {};
      // A tap of weight 0 is never read: it adds nothing, whatever its pixel holds.
      FI_UNROLL for (int j = 0; j < kCount; ++j) {
        FI_UNROLL for (int i = 0; i < 4; ++i) {
          if (ok && w[i] > coord_t(0)) {
            value[j][i] = coord_t(frames.data[tap[i] + (c0 + j) * channel_stride]);
          }
        }
      }
      FI_UNROLL for (int j = 0; j < kCount; ++j) {
        coord_t total = 0;
        FI_UNROLL for (int i = 0; i < 4; ++i) total = fi_add_rn(total, fi_mul_rn(w[i], value[j][i]));
        image.at(n, c0 + j, py, px) = scalar_t(ok ? total / weight : coord_t(0));
      }
    });
  }
};

// (image, valid): image (N, C, H, W) in frames' dtype, channels_last when frames[:, 0] is
// (like reference.like_layout), else contiguous (also without frames); valid (N, 1, H, W)
// bool. fused_inpaint/ops/propagation_gather.py allocates the same for the fake and Triton
// kernels.
inline std::tuple<Tensor, Tensor> new_propagation_gather_outputs(const Tensor& frames) {
  using torch::headeronly::MemoryFormat;
  const bool channels_last =
      frames.size(1) > 0 && is_channels_last_contiguous(torch::stable::select(frames, 1, 0));
  const int64_t n = frames.size(0), h = frames.size(3), w = frames.size(4);
  const int64_t image_sizes[4] = {n, frames.size(2), h, w}, valid_sizes[4] = {n, 1, h, w};
  Tensor image = allocate_output("image", n * frames.size(2) * h * w, frames.scalar_type(), [&] {
    return torch::stable::empty(torch::headeronly::IntHeaderOnlyArrayRef(image_sizes, 4),
                                frames.scalar_type(), std::nullopt, frames.device(), std::nullopt,
                                channels_last ? MemoryFormat::ChannelsLast
                                              : MemoryFormat::Contiguous);
  });
  Tensor valid = new_output(frames, "valid", valid_sizes, 4, ScalarType::Bool);
  return {image, valid};
}

// Without frames (T = 0) every source lies outside the chunk: image 0, valid false
// everywhere, and nothing to read. Fills the outputs so and returns true when T = 0.
inline bool gather_without_frames(const Tensor& frames, Tensor& image, Tensor& valid) {
  if (frames.size(1) > 0) return false;
  torch::stable::zero_(image);
  torch::stable::zero_(valid);
  return true;
}

template <typename scalar_t>
PropagationGather<scalar_t> make_propagation_gather(const Tensor& frames, const Tensor& holes,
                                                    const Tensor& src_frame,
                                                    const Tensor& src_pos, const Tensor& image,
                                                    const Tensor& valid, int64_t t0) {
  using coord_t = typename CoordOf<scalar_t>::type;
  return {view5<const scalar_t>(frames),
          view5<const uint8_t>(holes),
          view4<const int32_t>(src_frame),
          view4<const float>(src_pos),
          view4<scalar_t>(image),
          view4<bool>(valid),
          frames.size(1),
          frames.size(2),
          t0,
          AxisMap<coord_t>::make(frames.size(4), true),
          AxisMap<coord_t>::make(frames.size(3), true)};
}

}  // namespace fused_inpaint
