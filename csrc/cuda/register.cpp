// Registers the CUDA kernels with the dispatcher. This file is compiled by the host compiler,
// not nvcc: every argument of a direct call (torch.ops.fused_inpaint.*) is checked here, by
// the checks the CPU kernels run, on the operand's device made current, before any code
// that nvcc compiled is entered. A bad argument is then thrown as the CPU kernels throw it,
// from the same kind of code, and raises RuntimeError; the launchers (cuda/kernels.h) only
// allocate and launch.
#include <torch/csrc/stable/accelerator.h>

#include "common/convlstm_cell.h"
#include "common/fb_validity.h"
#include "common/flow_propagate.h"
#include "common/flow_warp.h"
#include "common/propagation_gather.h"
#include "common/temporal_shift.h"
#include "common/temporal_shift_align.h"
#include "cuda/kernels.h"

namespace fused_inpaint {
namespace {

using torch::stable::accelerator::DeviceGuard;

// The checks every entry ends with: a dtype the launcher dispatches on, `t` a CUDA tensor
// (the other tensors are on its device: the op's own checks).
void check_cuda_operand(const Tensor& t, const char* name) {
  check_floating<true>(t, name);
  check_cuda(t, name);
}

Tensor flow_warp(const Tensor& x, const Tensor& flow, int64_t mode, int64_t padding_mode,
                 bool align_corners) {
  check_flow_warp_args(x, flow, mode, padding_mode);
  check_cuda_operand(x, "x");
  const DeviceGuard guard(x.get_device_index());
  return flow_warp_cuda(x, flow, mode, padding_mode, align_corners);
}

std::tuple<Tensor, Tensor> flow_warp_backward(const Tensor& grad_out, const Tensor& x,
                                              const Tensor& flow, int64_t mode,
                                              int64_t padding_mode, bool align_corners) {
  check_flow_warp_backward_args(grad_out, x, flow, mode, padding_mode);
  check_cuda_operand(x, "x");
  const DeviceGuard guard(x.get_device_index());
  return flow_warp_backward_cuda(grad_out, x, flow, mode, padding_mode, align_corners);
}

Tensor fb_validity(const Tensor& flow_fw, const Tensor& flow_bw, std::optional<Tensor> source_fw,
                   std::optional<Tensor> source_bw, double alpha, double beta, bool check_bounds,
                   bool both, std::optional<ScalarType> dtype) {
  check_fb_validity_args(flow_fw, flow_bw, source_fw, source_bw, alpha, beta, both, dtype);
  check_cuda_operand(flow_fw, "flow_fw");
  const DeviceGuard guard(flow_fw.get_device_index());
  return fb_validity_cuda(flow_fw, flow_bw, source_fw, source_bw, alpha, beta, check_bounds,
                          both, dtype);
}

std::tuple<Tensor, Tensor> flow_propagate(const Tensor& hole, const Tensor& flow_to,
                                          const Tensor& flow_from, const Tensor& src_frame,
                                          const Tensor& src_pos, int64_t t, double alpha,
                                          double beta, std::optional<int64_t> max_age) {
  check_flow_propagate_args(hole, flow_to, flow_from, src_frame, src_pos, t, alpha, beta,
                            max_age);
  check_cuda_operand(flow_to, "flow_to");
  const DeviceGuard guard(flow_to.get_device_index());
  return flow_propagate_cuda(hole, flow_to, flow_from, src_frame, src_pos, t, alpha, beta,
                             max_age);
}

std::tuple<Tensor, Tensor> propagation_gather(const Tensor& frames, const Tensor& holes,
                                              const Tensor& src_frame, const Tensor& src_pos,
                                              int64_t t0) {
  check_propagation_gather_args(frames, holes, src_frame, src_pos, t0);
  check_cuda_operand(frames, "frames");
  const DeviceGuard guard(frames.get_device_index());
  return propagation_gather_cuda(frames, holes, src_frame, src_pos, t0);
}

Tensor temporal_shift(const Tensor& x, int64_t fold, bool reverse) {
  check_shift_args(x, fold);
  check_cuda_operand(x, "x");
  const DeviceGuard guard(x.get_device_index());
  return temporal_shift_cuda(x, fold, reverse);
}

Tensor temporal_shift_align(const Tensor& x, const Tensor& flow_fw, const Tensor& flow_bw,
                            std::optional<Tensor> valid_fw, std::optional<Tensor> valid_bw,
                            int64_t fold, bool causal) {
  check_shift_align_args(x, flow_fw, flow_bw, valid_fw, valid_bw, fold);
  check_cuda_operand(x, "x");
  const DeviceGuard guard(x.get_device_index());
  return temporal_shift_align_cuda(x, flow_fw, flow_bw, valid_fw, valid_bw, fold, causal);
}

std::tuple<Tensor, Tensor, Tensor> temporal_shift_align_backward(
    const Tensor& grad_out, const Tensor& x, const Tensor& flow_fw, const Tensor& flow_bw,
    std::optional<Tensor> valid_fw, std::optional<Tensor> valid_bw, int64_t fold, bool causal,
    bool flow_grads) {
  check_shift_align_args(x, flow_fw, flow_bw, valid_fw, valid_bw, fold);
  check_shift_align_grad_out(grad_out, x);
  check_cuda_operand(x, "x");
  const DeviceGuard guard(x.get_device_index());
  return temporal_shift_align_backward_cuda(grad_out, x, flow_fw, flow_bw, valid_fw, valid_bw,
                                            fold, causal, flow_grads);
}

std::tuple<Tensor, Tensor> convlstm_cell(const Tensor& gates, std::optional<Tensor> c) {
  check_convlstm_cell_args(gates, c);
  check_cuda_operand(gates, "gates");
  const DeviceGuard guard(gates.get_device_index());
  return convlstm_cell_cuda(gates, c);
}

std::tuple<Tensor, Tensor> convlstm_cell_backward(const Tensor& grad_h, const Tensor& grad_c_new,
                                                  const Tensor& gates, std::optional<Tensor> c) {
  check_convlstm_cell_backward_args(grad_h, grad_c_new, gates, c);
  check_cuda_operand(gates, "gates");
  const DeviceGuard guard(gates.get_device_index());
  return convlstm_cell_backward_cuda(grad_h, grad_c_new, gates, c);
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(fused_inpaint, CUDA, m) {
  m.impl("flow_warp", TORCH_BOX(&flow_warp));
  m.impl("flow_warp_backward", TORCH_BOX(&flow_warp_backward));
  m.impl("fb_validity", TORCH_BOX(&fb_validity));
  m.impl("flow_propagate", TORCH_BOX(&flow_propagate));
  m.impl("propagation_gather", TORCH_BOX(&propagation_gather));
  m.impl("temporal_shift", TORCH_BOX(&temporal_shift));
  m.impl("temporal_shift_align", TORCH_BOX(&temporal_shift_align));
  m.impl("temporal_shift_align_backward", TORCH_BOX(&temporal_shift_align_backward));
  m.impl("convlstm_cell", TORCH_BOX(&convlstm_cell));
  m.impl("convlstm_cell_backward", TORCH_BOX(&convlstm_cell_backward));
}

}  // namespace fused_inpaint
