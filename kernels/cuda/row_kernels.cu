// row kernels (CUDA): LayerNorm, Softmax and Reduce. A group of blockDim.x threads (a power
// of two, >= 32) owns one row; a block holds blockDim.y rows. Loops over rows are uniform
// per block so every thread reaches every __syncthreads.
#include <cmath>

#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/launch.hpp"

namespace troupe::cuda::detail {

namespace {

/// Up to 8 rows per block x up to 32 warps per row of partial results.
constexpr int scratch_floats = 256;

enum class combine { sum, max };

/// The combined value of v over the blockDim.x threads of this row, in every one of them.
template <combine C>
__device__ float group_reduce(float v, float* scratch) {
  v = C == combine::sum ? warp_sum(v) : warp_max(v);
  if (blockDim.x <= 32)
    return v;
  const int warps = static_cast<int>(blockDim.x) / 32;
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  float* row = scratch + threadIdx.y * (scratch_floats / blockDim.y);
  if (lane == 0)
    row[warp] = v;
  __syncthreads();
  const float identity = C == combine::sum ? 0.0f : -INFINITY;
  float r = lane < warps ? row[lane] : identity;
  r = C == combine::sum ? warp_sum(r) : warp_max(r);
  __syncthreads(); // the scratch is reused by the next reduction
  return r;
}

template <class T>
__global__ void layer_norm_kernel(const T* x, const T* gamma, const T* beta, T* y, int64_t rows,
                                  int64_t cols, float epsilon) {
  __shared__ float scratch[scratch_floats];
  const auto step = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t first = int64_t{blockIdx.x} * blockDim.y; first < rows; first += step) {
    const int64_t row = first + threadIdx.y;
    const bool active = row < rows;
    const T* in = x + (active ? row : 0) * cols;
    float sum = 0.0f;
    if (active)
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        sum += load_float(in, c);
    const float mean = group_reduce<combine::sum>(sum, scratch) / static_cast<float>(cols);
    // Two passes (mean, then squared deviations) instead of E[x^2] - mean^2, which cancels
    // badly when |mean| >> std; the second read of the row mostly hits L1/L2.
    float sq = 0.0f;
    if (active)
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        const float d = load_float(in, c) - mean;
        sq += d * d;
      }
    const float var = group_reduce<combine::sum>(sq, scratch) / static_cast<float>(cols);
    const float inv_std = rsqrtf(var + epsilon);
    if (active) {
      T* out = y + row * cols;
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x) {
        float v = (load_float(in, c) - mean) * inv_std * load_float(gamma, c);
        if (beta != nullptr)
          v += load_float(beta, c);
        store_float(out, c, v);
      }
    }
  }
}

template <class T>
__global__ void softmax_kernel(const T* x, T* y, int64_t rows, int64_t cols) {
  __shared__ float scratch[scratch_floats];
  const auto step = static_cast<int64_t>(gridDim.x) * blockDim.y;
  for (int64_t first = int64_t{blockIdx.x} * blockDim.y; first < rows; first += step) {
    const int64_t row = first + threadIdx.y;
    const bool active = row < rows;
    const T* in = x + (active ? row : 0) * cols;
    float m = -INFINITY;
    if (active)
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        m = fmaxf(m, load_float(in, c));
    m = group_reduce<combine::max>(m, scratch);
    float sum = 0.0f;
    if (active)
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        sum += expf(load_float(in, c) - m);
    const float inv_sum = 1.0f / group_reduce<combine::sum>(sum, scratch);
    if (active) {
      T* out = y + row * cols;
      for (int64_t c = threadIdx.x; c < cols; c += blockDim.x)
        store_float(out, c, expf(load_float(in, c) - m) * inv_sum);
    }
  }
}

template <class T>
__global__ void reduce_kernel(reduce_op op, const T* x, T* y, strided_walk kept,
                              strided_walk reduced, bool inner_contiguous) {
  __shared__ float scratch[scratch_floats];
  const auto step = static_cast<int64_t>(gridDim.x) * blockDim.y;
  const int64_t count = reduced.total;
  for (int64_t first = int64_t{blockIdx.x} * blockDim.y; first < kept.total; first += step) {
    const int64_t out = first + threadIdx.y;
    const bool active = out < kept.total;
    int64_t base = 0, unused = 0;
    if (active)
      kept.offsets(out, base, unused);
    float acc = op == reduce_op::max ? -INFINITY : 0.0f;
    if (active)
      for (int64_t j = threadIdx.x; j < count; j += blockDim.x) {
        int64_t at = j;
        if (!inner_contiguous)
          reduced.offsets(j, at, unused);
        const float v = load_float(x, base + at);
        acc = op == reduce_op::max ? nan_max(acc, v) : acc + v;
      }
    acc = op == reduce_op::max ? group_reduce<combine::max>(acc, scratch)
                               : group_reduce<combine::sum>(acc, scratch);
    if (active && threadIdx.x == 0)
      store_float(y, out, op == reduce_op::mean ? acc / static_cast<float>(count) : acc);
  }
}

dim3 row_block(int64_t cols) {
  const auto b = row_blocks_for(cols);
  return dim3(static_cast<unsigned>(b.threads), static_cast<unsigned>(b.rows_per_block));
}

unsigned row_grid(int64_t rows, const dim3& block) {
  return grid_for(rows, static_cast<int>(block.y));
}

} // namespace

cudaError_t launch_layer_norm(dtype t, const void* x, const void* gamma, const void* beta,
                              void* y, row_plan rows, float epsilon, cudaStream_t stream) {
  clear_stale_error();
  return dispatch_float(t, [&]<class T>() {
    const dim3 block = row_block(rows.cols);
    layer_norm_kernel<T><<<row_grid(rows.rows, block), block, 0, stream>>>(
        static_cast<const T*>(x), static_cast<const T*>(gamma), static_cast<const T*>(beta),
        static_cast<T*>(y), rows.rows, rows.cols, epsilon);
    return cudaGetLastError();
  });
}

cudaError_t launch_softmax(dtype t, const void* x, void* y, row_plan rows, cudaStream_t stream) {
  clear_stale_error();
  return dispatch_float(t, [&]<class T>() {
    const dim3 block = row_block(rows.cols);
    softmax_kernel<T><<<row_grid(rows.rows, block), block, 0, stream>>>(
        static_cast<const T*>(x), static_cast<T*>(y), rows.rows, rows.cols);
    return cudaGetLastError();
  });
}

cudaError_t launch_reduce(reduce_op op, dtype t, const void* x, void* y, const strided_walk& kept,
                          const strided_walk& reduced, bool inner_contiguous, cudaStream_t stream) {
  clear_stale_error();
  return dispatch_float(t, [&]<class T>() {
    const dim3 block = row_block(reduced.total);
    reduce_kernel<T><<<row_grid(kept.total, block), block, 0, stream>>>(
        op, static_cast<const T*>(x), static_cast<T*>(y), kept, reduced, inner_contiguous);
    return cudaGetLastError();
  });
}

} // namespace troupe::cuda::detail
