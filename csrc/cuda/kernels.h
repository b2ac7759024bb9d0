// The CUDA kernels' launchers (csrc/cuda/*.cu). They take arguments that
// csrc/cuda/register.cpp has checked, on a CUDA device made current: each allocates its
// outputs and launches, and checks nothing of its arguments.
#pragma once

#include <cstdint>
#include <optional>
#include <tuple>

#include "common/tensor.h"

namespace fused_inpaint {

Tensor flow_warp_cuda(const Tensor& x, const Tensor& flow, int64_t mode, int64_t padding_mode,
                      bool align_corners);
std::tuple<Tensor, Tensor> flow_warp_backward_cuda(const Tensor& grad_out, const Tensor& x,
                                                   const Tensor& flow, int64_t mode,
                                                   int64_t padding_mode, bool align_corners);

Tensor fb_validity_cuda(const Tensor& flow_fw, const Tensor& flow_bw,
                        const std::optional<Tensor>& source_fw,
                        const std::optional<Tensor>& source_bw, double alpha, double beta,
                        bool check_bounds, bool both, std::optional<ScalarType> dtype);

std::tuple<Tensor, Tensor> flow_propagate_cuda(const Tensor& hole, const Tensor& flow_to,
                                               const Tensor& flow_from, const Tensor& src_frame,
                                               const Tensor& src_pos, int64_t t, double alpha,
                                               double beta, std::optional<int64_t> max_age);

std::tuple<Tensor, Tensor> propagation_gather_cuda(const Tensor& frames, const Tensor& holes,
                                                   const Tensor& src_frame,
                                                   const Tensor& src_pos, int64_t t0);

Tensor temporal_shift_cuda(const Tensor& x, int64_t fold, bool reverse);

Tensor temporal_shift_align_cuda(const Tensor& x, const Tensor& flow_fw, const Tensor& flow_bw,
                                 const std::optional<Tensor>& valid_fw,
                                 const std::optional<Tensor>& valid_bw, int64_t fold,
                                 bool causal);
std::tuple<Tensor, Tensor, Tensor> temporal_shift_align_backward_cuda(
    const Tensor& grad_out, const Tensor& x, const Tensor& flow_fw, const Tensor& flow_bw,
    const std::optional<Tensor>& valid_fw, const std::optional<Tensor>& valid_bw, int64_t fold,
    bool causal, bool flow_grads);

std::tuple<Tensor, Tensor> convlstm_cell_cuda(const Tensor& gates, const std::optional<Tensor>& c);
std::tuple<Tensor, Tensor> convlstm_cell_backward_cuda(const Tensor& grad_h,
                                                       const Tensor& grad_c_new,
                                                       const Tensor& gates,
                                                       const std::optional<Tensor>& c);

}  // namespace fused_inpaint
