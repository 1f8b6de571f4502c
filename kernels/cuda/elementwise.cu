// elementwise kernels (CUDA): one grid-stride kernel per dtype for each of binary, unary and cast;
// the op is a runtime switch (uniform across a launch) so ops do not multiply instantiations.
#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/launch.hpp"

namespace troupe::cuda {

namespace {

__device__ __forceinline__ float apply(binary_op op, float a, float b) {
  switch (op) {
  case binary_op::add: return a + b;
  case binary_op::sub: return a - b;
  case binary_op::mul: return a * b;
  case binary_op::div: return a / b;
  case binary_op::pow: return powf(a, b);
  case binary_op::max: return nan_max(a, b);
  case binary_op::min: return nan_min(a, b);
  }
  return 0.0f;
}

__device__ __forceinline__ float apply(unary_op op, float x, float lo, float hi) {
  switch (op) {
  case unary_op::relu: return x < 0.0f ? 0.0f : x; // NaN stays NaN
  case unary_op::sigmoid: return 1.0f / (1.0f + expf(-x));
  case unary_op::tanh: return tanhf(x);
  case unary_op::exp: return expf(x);
  case unary_op::log: return logf(x);
  case unary_op::sqrt: return sqrtf(x);
  case unary_op::neg: return -x;
  case unary_op::abs: return fabsf(x);
  case unary_op::clip: { // min(max(x, lo), hi), as ONNX: hi when lo > hi; NaN stays NaN
    const float raised = x < lo ? lo : x;
    return raised > hi ? hi : raised;
  }
  case unary_op::erf: return erff(x);
  case unary_op::gelu_erf: return 0.5f * x * (1.0f + erff(x * 0.70710678118654752f));
  case unary_op::gelu_tanh: {
    const float inner = 0.79788456080286536f * (x + 0.044715f * x * x * x);
    return 0.5f * x * (1.0f + tanhf(inner));
  }
  }
  return 0.0f;
}

template <class T>
__global__ void binary_kernel(binary_op op, const T* a, const T* b, T* out, strided_walk walk,
                              bool same) {
  const int64_t stride = int64_t{blockDim.x} * gridDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < walk.total; i += stride) {
    int64_t ia = i, ib = i;
    if (!same)
      walk.offsets(i, ia, ib);
    store_float(out, i, apply(op, load_float(a, ia), load_float(b, ib)));
  }
}

template <class T>
__global__ void unary_kernel(unary_op op, const T* x, T* y, int64_t n, float lo, float hi) {
  const int64_t stride = int64_t{blockDim.x} * gridDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride)
    store_float(y, i, apply(op, load_float(x, i), lo, hi));
}

template <class From, class To>
__global__ void cast_kernel(const From* x, To* y, int64_t n) {
  const int64_t stride = int64_t{blockDim.x} * gridDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < n; i += stride)
    store_float(y, i, load_float(x, i));
}

} // namespace

namespace detail {

cudaError_t launch_binary(binary_op op, dtype t, const void* a, const void* b, void* out,
                          const strided_walk& walk, bool same, cudaStream_t stream) {
  clear_stale_error();
  return dispatch_float(t, [&]<class T>() {
    binary_kernel<T><<<grid_for(walk.total), default_block, 0, stream>>>(
        op, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), walk, same);
    return cudaGetLastError();
  });
}

cudaError_t launch_unary(unary_op op, dtype t, const void* x, void* y, int64_t n, float lo,
                         float hi, cudaStream_t stream) {
  clear_stale_error();
  return dispatch_float(t, [&]<class T>() {
    unary_kernel<T><<<grid_for(n), default_block, 0, stream>>>(op, static_cast<const T*>(x),
                                                               static_cast<T*>(y), n, lo, hi);
    return cudaGetLastError();
  });
}

cudaError_t launch_cast(dtype from, const void* x, dtype to, void* y, int64_t n,
                        cudaStream_t stream) {
  clear_stale_error();
  return dispatch_float(from, [&]<class A>() {
    return dispatch_float(to, [&]<class B>() {
      cast_kernel<A, B><<<grid_for(n), default_block, 0, stream>>>(static_cast<const A*>(x),
                                                                   static_cast<B*>(y), n);
      return cudaGetLastError();
    });
  });
}

} // namespace detail

} // namespace troupe::cuda
