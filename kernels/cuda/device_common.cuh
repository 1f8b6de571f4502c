// device_common: what every troupe .cu file shares: float conversions of the storage types,
// launch geometry, warp reductions and dtype dispatch. .cu files format no messages (fmt's
// compile-time format strings do not build under nvcc): launchers return cudaError_t.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>

#include "kernels/dtype.hpp"

namespace troupe::cuda {

/// Storage <-> FP32: every kernel loads as float, computes in float and rounds once on store.
__device__ __forceinline__ float load_float(const float* p, int64_t i) { return p[i]; }
__device__ __forceinline__ float load_float(const __half* p, int64_t i) { return __half2float(p[i]); }
__device__ __forceinline__ float load_float(const __nv_bfloat16* p, int64_t i) {
  return __bfloat162float(p[i]);
}
__device__ __forceinline__ void store_float(float* p, int64_t i, float v) { p[i] = v; }
__device__ __forceinline__ void store_float(__half* p, int64_t i, float v) { p[i] = __float2half_rn(v); }
__device__ __forceinline__ void store_float(__nv_bfloat16* p, int64_t i, float v) {
  p[i] = __float2bfloat16_rn(v);
}

constexpr int default_block = 256;

/// Blocks for a grid-stride loop over n items: enough to fill the GPU, never more than the
/// grid limit (the loop covers the rest).
inline unsigned grid_for(int64_t n, int block = default_block) {
  const int64_t blocks = (n + block - 1) / block;
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, 65535LL * 8));
}

/// Sum and max over the `width` lanes of a warp group (width a power of two <= 32).
__device__ __forceinline__ float warp_sum(float v, int width = 32) {
  for (int offset = width / 2; offset > 0; offset /= 2)
    v += __shfl_xor_sync(0xffffffffu, v, offset, width);
  return v;
}
/// A launcher reports its own launch's error: this clears what an earlier call left as the
/// thread's last error after its caller handled it (cudaEventQuery's "not ready", a failed
/// call whose result was ignored), so that is not blamed on the next kernel.
inline void clear_stale_error() { (void)cudaGetLastError(); }

/// max and min that keep a NaN operand, as the CPU backend (and numpy) do; fmaxf/fminf would
/// drop it.
__device__ __forceinline__ float nan_max(float a, float b) {
  return a != a ? a : (b != b ? b : fmaxf(a, b));
}
__device__ __forceinline__ float nan_min(float a, float b) {
  return a != a ? a : (b != b ? b : fminf(a, b));
}
__device__ __forceinline__ float warp_max(float v, int width = 32) {
  for (int offset = width / 2; offset > 0; offset /= 2)
    v = nan_max(v, __shfl_xor_sync(0xffffffffu, v, offset, width));
  return v;
}

/// Calls f.template operator()<T>() with T the CUDA storage type of `t` (float, __half,
/// __nv_bfloat16); the host side has checked t, anything else is an invalid value.
template <class F>
cudaError_t dispatch_float(dtype t, F&& f) {
  switch (t) {
  case dtype::f32:
    return f.template operator()<float>();
  case dtype::f16:
    return f.template operator()<__half>();
  case dtype::bf16:
    return f.template operator()<__nv_bfloat16>();
  default:
    return cudaErrorInvalidValue;
  }
}

/// Same over element sizes for the dtype-agnostic copy kernels (1, 2, 4, 8 bytes).
template <class F>
cudaError_t dispatch_size(size_t bytes, F&& f) {
  switch (bytes) {
  case 1:
    return f.template operator()<uint8_t>();
  case 2:
    return f.template operator()<uint16_t>();
  case 4:
    return f.template operator()<uint32_t>();
  case 8:
    return f.template operator()<uint64_t>();
  default:
    return cudaErrorInvalidValue;
  }
}

} // namespace troupe::cuda
