// Launch helpers shared by the CUDA kernels.
#pragma once

#include <cuda_runtime.h>
#include <torch/csrc/inductor/aoti_torch/c/shim.h>
#include <torch/csrc/stable/accelerator.h>

#include <algorithm>
#include <cstdint>
#include <type_traits>

#include "common/tensor.h"

namespace fused_inpaint {

constexpr int kThreadsPerBlock = 256;

// Grid-stride loops cover the rest: cap the grid at a few waves of a large GPU.
inline unsigned grid_for(int64_t work_items) {
  constexpr int64_t kMaxBlocks = int64_t(1) << 20;
  return static_cast<unsigned>(
      std::min((work_items + kThreadsPerBlock - 1) / kThreadsPerBlock, kMaxBlocks));
}

inline cudaStream_t current_stream(const Tensor& t) {
  void* stream = nullptr;
  TORCH_ERROR_CODE_CHECK(aoti_torch_get_current_cuda_stream(t.get_device_index(), &stream));
  return static_cast<cudaStream_t>(stream);
}

inline void check_launch(const char* kernel) {
  const cudaError_t error = cudaGetLastError();
  STD_TORCH_CHECK(error == cudaSuccess, kernel, " failed to launch: ", cudaGetErrorString(error));
}

// One thread per pixel of an (N, H, W) grid: op.pixel(n, y, x). Neighbouring threads take
// neighbouring pixels of a row, so loads and stores along x coalesce.
template <typename Op>
__device__ __forceinline__ void for_each_pixel(const Op& op, int64_t height, int64_t width,
                                               int64_t pixels) {
  for (int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x; i < pixels;
       i += int64_t(gridDim.x) * blockDim.x) {
    const int64_t px = i % width, row = i / width;
    op.pixel(row / height, row % height, px);
  }
}

template <typename Op>
__global__ void per_pixel_kernel(const Op op, int64_t height, int64_t width, int64_t pixels) {
  for_each_pixel(op, height, width, pixels);
}

// The same under __launch_bounds__, which caps the registers per thread so that
// kMinBlocksPerSM blocks fit on an SM. Opt-in per kernel: any bound, even (256, 1), changes
// what ptxas allocates, and most kernels here came out with more registers under one.
template <int kMinBlocksPerSM, typename Op>
__global__ void __launch_bounds__(kThreadsPerBlock, kMinBlocksPerSM)
    bounded_per_pixel_kernel(const Op op, int64_t height, int64_t width, int64_t pixels) {
  for_each_pixel(op, height, width, pixels);
}

// kMinBlocksPerSM = 0: no launch bounds.
template <int kMinBlocksPerSM = 0, typename Op>
void launch_per_pixel(const Op& op, int64_t n_batch, int64_t height, int64_t width,
                      const Tensor& like, const char* name) {
  const int64_t pixels = n_batch * height * width;
  if (pixels == 0) return;
  const unsigned blocks = grid_for(pixels);
  const cudaStream_t stream = current_stream(like);
  if constexpr (kMinBlocksPerSM == 0) {
    per_pixel_kernel<<<blocks, kThreadsPerBlock, 0, stream>>>(op, height, width, pixels);
  } else {
    bounded_per_pixel_kernel<kMinBlocksPerSM>
        <<<blocks, kThreadsPerBlock, 0, stream>>>(op, height, width, pixels);
  }
  check_launch(name);
}

// One thread per element of an (N, C, H, W) grid: op.element(n, c, y, x). Neighbouring
// threads take neighbouring elements along W, or along C when kChannelsInner (the memory
// order of channels_last), so that loads and stores coalesce.
template <bool kChannelsInner, typename index_t, typename Op>
__global__ void per_element_kernel(const Op op, index_t channels, index_t height,
                                   index_t width, index_t numel) {
  for (index_t i = blockIdx.x * index_t(blockDim.x) + threadIdx.x; i < numel;
       i += index_t(gridDim.x) * blockDim.x) {
    index_t rest = i, c = 0, x = 0;
    if constexpr (kChannelsInner) {
      c = rest % channels;
      rest /= channels;
    }
    x = rest % width;
    rest /= width;
    const index_t y = rest % height;
    rest /= height;
    if constexpr (!kChannelsInner) {
      c = rest % channels;
      rest /= channels;
    }
    op.element(rest, c, y, x);
  }
}

template <typename Op>
void launch_per_element(const Op& op, int64_t n_batch, int64_t channels, int64_t height,
                        int64_t width, bool channels_inner, const Tensor& like,
                        const char* name) {
  const int64_t numel = n_batch * channels * height * width;
  if (numel == 0) return;
  const cudaStream_t stream = current_stream(like);
  const auto launch = [&](auto inner, auto index_tag) {
    using index_t = decltype(index_tag);
    per_element_kernel<decltype(inner)::value, index_t>
        <<<grid_for(numel), kThreadsPerBlock, 0, stream>>>(
            op, index_t(channels), index_t(height), index_t(width), index_t(numel));
  };
  const auto launch_in_order = [&](auto index_tag) {
    if (channels_inner) {
      launch(std::true_type{}, index_tag);
    } else {
      launch(std::false_type{}, index_tag);
    }
  };
  // 32-bit index arithmetic (its divisions are several times cheaper) wherever the
  // grid-stride loop cannot overflow it.
  if (numel < (int64_t(1) << 31)) {
    launch_in_order(uint32_t{});
  } else {
    launch_in_order(int64_t{});
  }
  check_launch(name);
}

}  // namespace fused_inpaint
