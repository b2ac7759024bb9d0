// temporal_shift_align on the CPU. Forward: parallel over (frame, row). Backward: the
// feature gradient parallel over (batch, channel) planes, which own every write, then
// the flow gradients parallel over frames, which own their flow frames.
#include <tuple>

#include "common/temporal_shift_align.h"
#include "cpu/parallel.h"

namespace fused_inpaint {
namespace {

Tensor temporal_shift_align_cpu(const Tensor& x, const Tensor& flow_fw, const Tensor& flow_bw,
                                std::optional<Tensor> valid_fw, std::optional<Tensor> valid_bw,
                                int64_t fold, bool causal) {
  check_shift_align_args(x, flow_fw, flow_bw, valid_fw, valid_bw, fold);
  const ShiftGroups groups = ShiftGroups::make(x.size(2), fold);
  Tensor out = output_like(x, "temporal_shift_align's output");
  if (out.numel() == 0) return out;
  dispatch_with_companion<false>(x, "x", flow_fw, [&](auto x_tag, auto flow_tag) {
    using scalar_t = decltype(x_tag);
    using flow_t = decltype(flow_tag);
    using Op = ShiftAlignForward<scalar_t, flow_t>;
    const Op op{view5<const scalar_t>(x), view5<scalar_t>(out),
                ShiftAlignGeometry<typename Op::coord_t, flow_t>::make(x, flow_fw, flow_bw,
                                                                       valid_fw, valid_bw),
                x.size(2), groups, causal};
    for_each_pixel(x.size(0) * x.size(1), x.size(3), x.size(4), x.size(2),
                   [&](int64_t nt, int64_t py, int64_t px) { op.pixel(nt, py, px); });
  });
  return out;
}

std::tuple<Tensor, Tensor, Tensor> temporal_shift_align_backward_cpu(
    const Tensor& grad_out, const Tensor& x, const Tensor& flow_fw, const Tensor& flow_bw,
    std::optional<Tensor> valid_fw, std::optional<Tensor> valid_bw, int64_t fold, bool causal,
    bool flow_grads) {
  check_shift_align_args(x, flow_fw, flow_bw, valid_fw, valid_bw, fold);
  check_shift_align_grad_out(grad_out, x);
  const ShiftGroups groups = ShiftGroups::make(x.size(2), fold);
  ShiftAlignGrads grads =
      ShiftAlignGrads::make(x, flow_fw, flow_bw, groups.end, causal, flow_grads);
  const int64_t n_batch = x.size(0), frames = x.size(1), channels = x.size(2),
                height = x.size(3), width = x.size(4);
  if (x.numel() > 0) {
    dispatch_with_companion<false>(x, "x", flow_fw, [&](auto x_tag, auto flow_tag) {
      using scalar_t = decltype(x_tag);
      using flow_t = decltype(flow_tag);
      const auto op = make_shift_align_backward<scalar_t, flow_t, scalar_t>(
          grad_out, x, flow_fw, flow_bw, valid_fw, valid_bw, grads, groups, causal);
      const auto accumulate = [](auto& ref, auto value) {
        ref += static_cast<std::remove_reference_t<decltype(ref)>>(value);
      };
      torch::stable::parallel_for(0, n_batch * channels, 1, [&](int64_t begin, int64_t end) {
        for (int64_t plane = begin; plane < end; ++plane) {
          const int64_t n = plane / channels, c = plane % channels;
          for (int64_t t = 0; t < frames; ++t) {
            for (int64_t py = 0; py < height; ++py) {
              for (int64_t px = 0; px < width; ++px) {
                op.template pixel<true, false>(n * frames + t, py, px, c, c + 1, accumulate);
              }
            }
          }
        }
      });
      if (!flow_grads) return;
      torch::stable::parallel_for(0, n_batch * frames, 1, [&](int64_t begin, int64_t end) {
        for (int64_t nt = begin; nt < end; ++nt) {
          for (int64_t py = 0; py < height; ++py) {
            for (int64_t px = 0; px < width; ++px) {
              op.template pixel<false, true>(nt, py, px, 0, channels, accumulate);
            }
          }
        }
      });
    });
  }
  grads.finish();
  return {grads.grad_x, grads.grad_flow_fw, grads.grad_flow_bw};
}

}  // namespace

STABLE_TORCH_LIBRARY_IMPL(fused_inpaint, CPU, m) {
  m.impl("temporal_shift_align", TORCH_BOX(&temporal_shift_align_cpu));
  m.impl("temporal_shift_align_backward", TORCH_BOX(&temporal_shift_align_backward_cpu));
}

}  // namespace fused_inpaint
