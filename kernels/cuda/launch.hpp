// launch: the kernel launchers behind the CUDA host wrappers (fmt-free, see kernel_args.hpp). Arguments are validated and
// planned on the host (.cpp); a launcher only picks the instantiation and returns the
// launch's cudaError_t.
#pragma once

#include <cstdint>

#include <cuda_runtime_api.h>

#include "kernels/cuda/kernel_args.hpp"
#include "kernels/dtype.hpp"

namespace troupe::cuda::detail {

cudaError_t launch_binary(binary_op op, dtype t, const void* a, const void* b, void* out,
                          const strided_walk& walk, bool same, cudaStream_t stream);
cudaError_t launch_unary(unary_op op, dtype t, const void* x, void* y, int64_t n, float lo,
                         float hi, cudaStream_t stream);
cudaError_t launch_cast(dtype from, const void* x, dtype to, void* y, int64_t n,
                        cudaStream_t stream);

cudaError_t launch_layer_norm(dtype t, const void* x, const void* gamma, const void* beta,
                              void* y, row_plan rows, float epsilon, cudaStream_t stream);
cudaError_t launch_softmax(dtype t, const void* x, void* y, row_plan rows, cudaStream_t stream);
/// kept walks the outputs, reduced one output's inputs (offsets add up).
cudaError_t launch_reduce(reduce_op op, dtype t, const void* x, void* y, const strided_walk& kept,
                          const strided_walk& reduced, bool inner_contiguous, cudaStream_t stream);

/// out[i] = in[in_offset + walk offset of i], elements of `element_size` bytes.
cudaError_t launch_strided_copy(size_t element_size, const void* in, int64_t in_offset, void* out,
                                const strided_walk& walk, cudaStream_t stream);
/// out[b][c][r] = in[b][r][c] through shared-memory tiles.
cudaError_t launch_transpose_tiled(size_t element_size, const void* in, void* out, int64_t batch,
                                   int64_t rows, int64_t cols, cudaStream_t stream);
/// out[o][column_offset + c] = in[o][c] for o < outer, c < in_columns.
cudaError_t launch_copy_columns(size_t element_size, const void* in, void* out, int64_t outer,
                                int64_t in_columns, int64_t out_columns, int64_t column_offset,
                                cudaStream_t stream);
/// Gather with int32 or int64 indices; an index outside [-axis_dim, axis_dim) writes zeros
/// and sets *error_flag to 1.
/// data is [outer, axis_dim, inner], out [outer, count, inner].
cudaError_t launch_gather(size_t element_size, const void* data, bool int64_indices,
                          const void* indices, void* out, int64_t outer, int64_t axis_dim,
                          int64_t inner, int64_t count, int* error_flag, cudaStream_t stream);

} // namespace troupe::cuda::detail
