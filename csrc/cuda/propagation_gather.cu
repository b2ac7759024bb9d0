// propagation_gather on CUDA: one thread per output pixel reads its state, weighs the four
// taps of its source frame (reading a hole byte only for taps of nonzero weight), then
// walks the channels kChannelUnroll at a time, loading only the taps that weigh, and
// writes the renormalised colour. Threads of a warp take neighbouring pixels of a row, so
// the state and output accesses coalesce; the tap gathers coalesce where the sources are
// a shifted copy of the row (the common case of smooth motion).
#include "common/propagation_gather.h"
#include "cuda/kernels.h"
#include "cuda/launch.cuh"

namespace fused_inpaint {

std::tuple<Tensor, Tensor> propagation_gather_cuda(const Tensor& frames, const Tensor& holes,
                                                   const Tensor& src_frame,
                                                   const Tensor& src_pos, int64_t t0) {
  Tensor image, valid;
  std::tie(image, valid) = new_propagation_gather_outputs(frames);
  if (valid.numel() == 0 || gather_without_frames(frames, image, valid)) {
    return {image, valid};
  }
  dispatch_floating<true>(frames.scalar_type(), "frames", [&](auto tag) {
    const auto op = make_propagation_gather<decltype(tag)>(frames, holes, src_frame, src_pos,
                                                           image, valid, t0);
    launch_per_pixel(op, frames.size(0), frames.size(3), frames.size(4), frames,
                     "propagation_gather");
  });
  return {image, valid};
}

}  // namespace fused_inpaint
