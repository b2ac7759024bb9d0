// Parallel loops of the CPU kernels, on PyTorch's intra-op thread pool.
#pragma once

#include <torch/csrc/stable/ops.h>

#include <cstdint>

namespace fused_inpaint {

// Rows per task: enough work to amortise the thread pool's dispatch.
inline int64_t rows_per_task(int64_t row_work) {
  constexpr int64_t kWorkPerTask = 1 << 15;
  return row_work >= kWorkPerTask ? 1 : kWorkPerTask / (row_work > 0 ? row_work : 1);
}

// f(n, y, x) for every pixel of an (N, H, W) grid, parallel over rows; work_per_pixel
// sizes the tasks.
template <typename F>
void for_each_pixel(int64_t n_batch, int64_t height, int64_t width, int64_t work_per_pixel,
                    const F& f) {
  torch::stable::parallel_for(
      0, n_batch * height, rows_per_task(width * work_per_pixel),
      [&](int64_t begin, int64_t end) {
        for (int64_t row = begin; row < end; ++row) {
          for (int64_t px = 0; px < width; ++px) f(row / height, row % height, px);
        }
      });
}

}  // namespace fused_inpaint
