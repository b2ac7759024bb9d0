// The channel loop of the per-pixel kernels.
#pragma once

#include <cstdint>
#include <type_traits>

#include "common/macros.h"

namespace fused_inpaint {

// Channels handled together by one thread: their loads are all issued before the first
// store, which keeps enough memory requests in flight to saturate bandwidth.
constexpr int kChannelUnroll = 4;

template <int kCount>
using ChannelCount = std::integral_constant<int, kCount>;

// Calls f(ChannelCount<k>{}, c) over [c_begin, c_end) in chunks of kChannelUnroll
// channels, then one by one.
template <typename F>
FI_HOST_DEVICE void for_channel_chunks(int64_t c_begin, int64_t c_end, const F& f) {
  int64_t c = c_begin;
  for (; c + kChannelUnroll <= c_end; c += kChannelUnroll) f(ChannelCount<kChannelUnroll>{}, c);
  for (; c < c_end; ++c) f(ChannelCount<1>{}, c);
}

}  // namespace fused_inpaint
