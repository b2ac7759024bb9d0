// Qualifiers for code compiled for both the CPU and the GPU.
#pragma once

#if defined(__CUDACC__)
#define FI_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FI_HOST_DEVICE inline
#endif

// Unrolls a loop with a compile-time trip count (nvcc; host compilers do it at -O3).
#if defined(__CUDACC__)
#define FI_UNROLL _Pragma("unroll")
#else
#define FI_UNROLL
#endif
