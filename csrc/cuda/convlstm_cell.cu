// convlstm_cell on CUDA: one thread per element of (N, Ch, H, W), threads ordered like the
// gates' memory, so each of the four gate chunks, c and the outputs are read and written
// coalesced, once. The backward is the same single pass, recomputing the activations.
#include <cuda_runtime.h>

#include <tuple>

#include "common/convlstm_cell.h"
#include "cuda/launch.cuh"

namespace fused_inpaint {
namespace {

std::tuple<Tensor, Tensor> convlstm_cell_cuda(const Tensor& gates, std::optional<Tensor> c) {
  check_convlstm_cell_args(gates, c);
  check_cuda(gates, "gates");
  const torch::stable::accelerator::DeviceGuard guard(gates.get_device_index());
  const auto outputs = new_convlstm_cell_outputs(gates, c);
  const Tensor &h_new = std::get<0>(outputs), &c_new = std::get<1>(outputs);
  with_convlstm_cell_forward<true>(gates, c, h_new, c_new, [&](const auto& op) {
    launch_per_element(op, gates.size(0), h_new.size(1), gates.size(2), gates.size(3),
                       channels_innermost(gates), gates, "convlstm_cell forward");
  });
  return outputs;
}

std::tuple<Tensor, Tensor> convlstm_cell_backward_cuda(const Tensor& grad_h,
                                                       const Tensor& grad_c_new,
                                                       const Tensor& gates,
                                                       std::optional<Tensor> c) {
  check_convlstm_cell_backward_args(grad_h, grad_c_new, gates, c);
  check_cuda(gates, "gates");
  const torch::stable::accelerator::DeviceGuard guard(gates.get_device_index());
  const auto grads = new_convlstm_cell_grads(gates, c);
  const Tensor &grad_gates = std::get<0>(grads), &grad_c = std::get<1>(grads);
  with_convlstm_cell_backward<true>(
      grad_h, grad_c_new, gates, c, grad_gates, grad_c, [&](const auto& op) {
        launch_per_element(op, gates.size(0), gates.size(1) / 4, gates.size(2), gates.size(3),
                           channels_innermost(gates), gates, "convlstm_cell backward");
      });
  return grads;
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(fused_inpaint, CUDA, m) {
  m.impl("convlstm_cell", TORCH_BOX(&convlstm_cell_cuda));
  m.impl("convlstm_cell_backward", TORCH_BOX(&convlstm_cell_backward_cuda));
}

}  // namespace fused_inpaint
