// shape kernels (CUDA): data movement that does not look at values, instantiated per element
// size (1, 2, 4, 8 bytes) so every dtype shares them: strided copies (Transpose, Slice,
// Split), the tiled last-two-axes transpose, Concat's column copies and Gather.
#include "kernels/cuda/device_common.cuh"
#include "kernels/cuda/launch.hpp"

namespace troupe::cuda::detail {

namespace {

constexpr int tile = 32;
constexpr int tile_rows = 8; // threads per tile column; each copies tile / tile_rows elements

template <class E>
__global__ void strided_copy_kernel(const E* in, int64_t in_offset, E* out, strided_walk walk) {
  const int64_t stride = int64_t{blockDim.x} * gridDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < walk.total; i += stride) {
    int64_t at = 0, unused = 0;
    walk.offsets(i, at, unused);
    out[i] = in[in_offset + at];
  }
}

template <class E>
__global__ void transpose_tiled_kernel(const E* in, E* out, int64_t batch, int64_t rows,
                                       int64_t cols) {
  // +1 column so the transposed read walks different banks.
  __shared__ E buffer[tile][tile + 1];
  const int64_t tiles_x = (cols + tile - 1) / tile, tiles_y = (rows + tile - 1) / tile;
  for (int64_t b = blockIdx.z; b < batch; b += gridDim.z) {
    const E* src = in + b * rows * cols;
    E* dst = out + b * rows * cols;
    for (int64_t ty = blockIdx.y; ty < tiles_y; ty += gridDim.y)
      for (int64_t tx = blockIdx.x; tx < tiles_x; tx += gridDim.x) {
        const int64_t c = tx * tile + threadIdx.x;
        for (int j = static_cast<int>(threadIdx.y); j < tile; j += tile_rows) {
          const int64_t r = ty * tile + j;
          if (r < rows && c < cols)
            buffer[j][threadIdx.x] = src[r * cols + c];
        }
        __syncthreads();
        // Output row = input column, output column = input row: consecutive threads write
        // consecutive input rows, so the stores coalesce too.
        const int64_t r = ty * tile + threadIdx.x;
        for (int j = static_cast<int>(threadIdx.y); j < tile; j += tile_rows) {
          const int64_t oc = tx * tile + j;
          if (oc < cols && r < rows)
            dst[oc * rows + r] = buffer[threadIdx.x][j];
        }
        __syncthreads();
      }
  }
}

template <class E>
__global__ void copy_columns_kernel(const E* in, E* out, int64_t outer, int64_t in_columns,
                                    int64_t out_columns, int64_t column_offset) {
  const int64_t total = outer * in_columns;
  const int64_t stride = int64_t{blockDim.x} * gridDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t o = i / in_columns, c = i - o * in_columns;
    out[o * out_columns + column_offset + c] = in[i];
  }
}

template <class E, class I>
__global__ void gather_kernel(const E* data, const I* indices, E* out, int64_t outer,
                              int64_t axis_dim, int64_t inner, int64_t count, int* error_flag) {
  const int64_t total = outer * count * inner;
  const int64_t stride = int64_t{blockDim.x} * gridDim.x;
  for (int64_t i = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; i < total; i += stride) {
    const int64_t rest = i / inner, k = i - rest * inner;
    const int64_t o = rest / count, j = rest - o * count;
    int64_t index = static_cast<int64_t>(indices[j]);
    if (index < 0)
      index += axis_dim;
    if (index < 0 || index >= axis_dim) {
      // Every offender stores the same value, so the race is benign.
      *error_flag = 1;
      out[i] = E{};
      continue;
    }
    out[i] = data[(o * axis_dim + index) * inner + k];
  }
}

unsigned clamp_grid(int64_t n, int64_t limit) {
  return static_cast<unsigned>(n < 1 ? 1 : (n > limit ? limit : n));
}

} // namespace

cudaError_t launch_strided_copy(size_t element_size, const void* in, int64_t in_offset, void* out,
                                const strided_walk& walk, cudaStream_t stream) {
  clear_stale_error();
  return dispatch_size(element_size, [&]<class E>() {
    strided_copy_kernel<E><<<grid_for(walk.total), default_block, 0, stream>>>(
        static_cast<const E*>(in), in_offset, static_cast<E*>(out), walk);
    return cudaGetLastError();
  });
}

cudaError_t launch_transpose_tiled(size_t element_size, const void* in, void* out, int64_t batch,
                                   int64_t rows, int64_t cols, cudaStream_t stream) {
  clear_stale_error();
  return dispatch_size(element_size, [&]<class E>() {
    const dim3 grid(clamp_grid((cols + tile - 1) / tile, 1 << 20),
                    clamp_grid((rows + tile - 1) / tile, 65535), clamp_grid(batch, 65535));
    transpose_tiled_kernel<E><<<grid, dim3(tile, tile_rows), 0, stream>>>(
        static_cast<const E*>(in), static_cast<E*>(out), batch, rows, cols);
    return cudaGetLastError();
  });
}

cudaError_t launch_copy_columns(size_t element_size, const void* in, void* out, int64_t outer,
                                int64_t in_columns, int64_t out_columns, int64_t column_offset,
                                cudaStream_t stream) {
  clear_stale_error();
  return dispatch_size(element_size, [&]<class E>() {
    copy_columns_kernel<E><<<grid_for(outer * in_columns), default_block, 0, stream>>>(
        static_cast<const E*>(in), static_cast<E*>(out), outer, in_columns, out_columns,
        column_offset);
    return cudaGetLastError();
  });
}

cudaError_t launch_gather(size_t element_size, const void* data, bool int64_indices,
                          const void* indices, void* out, int64_t outer, int64_t axis_dim,
                          int64_t inner, int64_t count, int* error_flag, cudaStream_t stream) {
  clear_stale_error();
  return dispatch_size(element_size, [&]<class E>() {
    const unsigned grid = grid_for(outer * count * inner);
    if (int64_indices)
      gather_kernel<E, int64_t><<<grid, default_block, 0, stream>>>(
          static_cast<const E*>(data), static_cast<const int64_t*>(indices), static_cast<E*>(out),
          outer, axis_dim, inner, count, error_flag);
    else
      gather_kernel<E, int32_t><<<grid, default_block, 0, stream>>>(
          static_cast<const E*>(data), static_cast<const int32_t*>(indices), static_cast<E*>(out),
          outer, axis_dim, inner, count, error_flag);
    return cudaGetLastError();
  });
}

} // namespace troupe::cuda::detail
