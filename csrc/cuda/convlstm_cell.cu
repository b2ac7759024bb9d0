// convlstm_cell on CUDA: one thread per element of (N, Ch, H, W), threads ordered like the
// gates' memory, so each of the four gate chunks, c and the outputs are read and written
// coalesced, once. The backward is the same single pass, recomputing the activations.
#include <cuda_runtime.h>

#include <tuple>

#include "common/convlstm_cell.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace fused_inpaint {

std::tuple<Tensor, Tensor> convlstm_cell_cuda(const Tensor& gates, const std::optional<Tensor>& c) {
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
                                                       const std::optional<Tensor>& c) {
  const auto grads = new_convlstm_cell_grads(gates, c);
  const Tensor &grad_gates = std::get<0>(grads), &grad_c = std::get<1>(grads);
  with_convlstm_cell_backward<true>(
      grad_h, grad_c_new, gates, c, grad_gates, grad_c, [&](const auto& op) {
        launch_per_element(op, gates.size(0), gates.size(1) / 4, gates.size(2), gates.size(3),
                           channels_innermost(gates), gates, "convlstm_cell backward");
      });
  return grads;
}

}  // namespace fused_inpaint
