// Qualifiers for code compiled for both the CPU and the GPU.
#pragma once

#if defined(__CUDACC__)
#define FI_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FI_HOST_DEVICE inline
#endif
