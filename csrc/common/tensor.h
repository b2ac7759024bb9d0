// Host-side helpers shared by the CPU and CUDA launchers: argument checks that name
// the argument, strided views of tensors, and dtype dispatch.
#pragma once

#include <torch/csrc/stable/library.h>
#include <torch/csrc/stable/ops.h>
#include <torch/csrc/stable/tensor.h>
#include <torch/headeronly/core/ScalarType.h>
#include <torch/headeronly/util/BFloat16.h>
#include <torch/headeronly/util/Half.h>

#include <cstdint>
#include <exception>
#include <type_traits>

#include "common/macros.h"

namespace fused_inpaint {

using torch::stable::Tensor;
using ScalarType = torch::headeronly::ScalarType;
using Half = torch::headeronly::Half;
using BFloat16 = torch::headeronly::BFloat16;

// A strided view: data pointer plus element strides, indexed like the tensor.
template <typename T, int kRank>
struct StridedView {
  T* data = nullptr;
  int64_t stride[kRank] = {};

  // The element offset of an index from data; forms no pointer, so it is defined even on
  // an empty tensor's null data.
  template <typename... Index>
  FI_HOST_DEVICE int64_t offset(Index... index) const {
    static_assert(sizeof...(Index) == kRank, "one index per dimension");
    const int64_t indices[kRank] = {static_cast<int64_t>(index)...};
    int64_t offset = 0;
    FI_UNROLL for (int d = 0; d < kRank; ++d) offset += indices[d] * stride[d];
    return offset;
  }

  template <typename... Index>
  FI_HOST_DEVICE T& at(Index... index) const {
    return data[offset(index...)];
  }
};

template <typename T>
using View4 = StridedView<T, 4>;
template <typename T>
using View5 = StridedView<T, 5>;

template <typename T, int kRank>
StridedView<T, kRank> strided_view(const Tensor& t) {
  StridedView<T, kRank> v;
  v.data = static_cast<T*>(t.data_ptr());
  for (int d = 0; d < kRank; ++d) v.stride[d] = t.stride(d);
  return v;
}

template <typename T>
View4<T> view4(const Tensor& t) {
  return strided_view<T, 4>(t);
}

template <typename T>
View5<T> view5(const Tensor& t) {
  return strided_view<T, 5>(t);
}

inline void check_rank(const Tensor& t, const char* name, int64_t rank, const char* shape) {
  STD_TORCH_CHECK(t.dim() == rank, name, " must have shape ", shape, ", got a ", t.dim(),
                  "-d tensor");
}

inline void check_size(const Tensor& t, const char* name, int64_t dim, int64_t expected,
                       const char* shape) {
  STD_TORCH_CHECK(t.size(dim) == expected, name, " must have shape ", shape, ": size ",
                  t.size(dim), " at dim ", dim, " should be ", expected);
}

inline void check_cuda(const Tensor& t, const char* name) {
  STD_TORCH_CHECK(t.is_cuda(), name, " must be a CUDA tensor");
}

inline void check_same_device(const Tensor& t, const char* name, const Tensor& ref,
                              const char* ref_name) {
  STD_TORCH_CHECK(t.is_cuda() == ref.is_cuda() &&
                      t.get_device_index() == ref.get_device_index(),
                  name, " must be on the same device as ", ref_name);
}

// torch's is_contiguous(memory_format=torch.channels_last) of a 4-d tensor.
inline bool is_channels_last_contiguous(const Tensor& t) {
  int64_t expected = 1;
  for (const int64_t d : {1, 3, 2, 0}) {
    if (t.size(d) == 1) continue;
    if (t.stride(d) != expected) return false;
    expected *= t.size(d);
  }
  return true;
}

// A frame index of a propagation state (int32, >= 0): the range the Python functions check.
inline void check_frame_index(int64_t value, const char* name) {
  STD_TORCH_CHECK(value >= 0 && value <= INT32_MAX, name,
                  " must be a frame index in [0, 2^31), got ", value);
}

inline int64_t element_size(ScalarType t) {
  switch (t) {
    case ScalarType::Double:
    case ScalarType::Long:
      return 8;
    case ScalarType::Float:
    case ScalarType::Int:
      return 4;
    case ScalarType::Half:
    case ScalarType::BFloat16:
      return 2;
    default:
      return 1;
  }
}

// allocate() -> Tensor, an op's output of `numel` elements of `dtype`. A failure (out of
// memory) names the output and its size: the stable ABI's own message only says which of
// its calls failed.
template <typename F>
Tensor allocate_output(const char* name, int64_t numel, ScalarType dtype, const F& allocate) {
  try {
    return allocate();
  } catch (const std::exception&) {
    const int64_t size = element_size(dtype);
    if (numel > INT64_MAX / size) {
      STD_TORCH_CHECK(false, "could not allocate ", name, ": ", numel, " elements of ", size,
                      " bytes, more than 2^63 bytes");
    }
    STD_TORCH_CHECK(false, "could not allocate ", name, ": ", numel * size, " bytes (", numel,
                    " elements of ", size, " bytes)");
  }
}

// empty_like(like) and new_empty(like, sizes, dtype), named in an allocation failure.
inline Tensor output_like(const Tensor& like, const char* name) {
  return allocate_output(name, like.numel(), like.scalar_type(),
                         [&] { return torch::stable::empty_like(like); });
}

inline Tensor new_output(const Tensor& like, const char* name, const int64_t* sizes, int rank,
                         ScalarType dtype) {
  int64_t numel = 1;
  for (int d = 0; d < rank; ++d) numel *= sizes[d];
  return allocate_output(name, numel, dtype, [&] {
    return torch::stable::new_empty(like, torch::headeronly::IntHeaderOnlyArrayRef(sizes, rank),
                                    dtype);
  });
}

inline bool is_half_precision(ScalarType t) {
  return t == ScalarType::Half || t == ScalarType::BFloat16;
}

// A flow (or mask) may share the features' dtype, or be float32 under half-precision
// features.
inline void check_companion_dtype(const Tensor& t, const char* name, const Tensor& ref,
                                  const char* ref_name) {
  const ScalarType a = t.scalar_type(), b = ref.scalar_type();
  STD_TORCH_CHECK(a == b || (a == ScalarType::Float && is_half_precision(b)), name,
                  " must have the dtype of ", ref_name, " (or float32 when ", ref_name,
                  " is float16/bfloat16)");
}

// Calls f(scalar_t{}) for the floating dtypes a backend supports; half precision only
// where kWithHalf (the CUDA kernels).
template <bool kWithHalf, typename F>
void dispatch_floating(ScalarType t, const char* name, const F& f) {
  switch (t) {
    case ScalarType::Float:
      return f(float{});
    case ScalarType::Double:
      return f(double{});
    case ScalarType::Half:
      if constexpr (kWithHalf) return f(Half{});
      break;
    case ScalarType::BFloat16:
      if constexpr (kWithHalf) return f(BFloat16{});
      break;
    default:
      break;
  }
  STD_TORCH_CHECK(false, name, ": unsupported dtype for this backend (",
                  kWithHalf ? "float16, bfloat16, float32, float64" : "float32, float64",
                  " are supported)");
}

// dispatch_floating's dtype check on its own, for an entry point that checks everything
// before it calls a kernel's launcher.
template <bool kWithHalf>
void check_floating(const Tensor& t, const char* name) {
  dispatch_floating<kWithHalf>(t.scalar_type(), name, [](auto) {});
}

// Calls f(scalar_t{}, companion_t{}) where companion_t is scalar_t, or float when the
// companion tensor (a flow) is float32 under half-precision data.
template <bool kWithHalf, typename F>
void dispatch_with_companion(const Tensor& data, const char* name, const Tensor& companion,
                             const F& f) {
  dispatch_floating<kWithHalf>(data.scalar_type(), name, [&](auto tag) {
    using scalar_t = decltype(tag);
    if (companion.scalar_type() == data.scalar_type()) {
      f(scalar_t{}, scalar_t{});
    } else if constexpr (kWithHalf && !std::is_same_v<scalar_t, double>) {
      f(scalar_t{}, float{});
    }
  });
}

}  // namespace fused_inpaint
