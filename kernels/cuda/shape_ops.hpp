// shape ops (CUDA): Transpose, Slice, Split, Concat and Gather on raw device pointers, for
// every dtype of 1, 2, 4 or 8 bytes.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include <cuda_runtime_api.h>

#include "kernels/dtype.hpp"
#include "kernels/shape.hpp"
#include "kernels/status.hpp"

namespace troupe::cuda {

/// out = transpose(in, perm) (empty perm reverses the axes); the last-two-axes swap (after
/// merging adjacent axes) takes a shared-memory tiled kernel, others a strided copy.
status transpose(dtype t, std::span<const int64_t> dims, std::span<const int64_t> perm,
                 const void* in, void* out, cudaStream_t stream);

/// out = in[starts:ends:steps] on `axes` with ONNX Slice semantics (empty axes: 0..n-1,
/// empty steps: 1).
status slice(dtype t, std::span<const int64_t> dims, std::span<const int64_t> starts,
             std::span<const int64_t> ends, std::span<const int64_t> axes,
             std::span<const int64_t> steps, const void* in, void* out, cudaStream_t stream);

/// Splits `in` along `axis` into outs.size() parts of `sizes` elements on that axis.
status split(dtype t, std::span<const int64_t> dims, int64_t axis, std::span<const int64_t> sizes,
             const void* in, std::span<void* const> outs, cudaStream_t stream);

/// out = concat(ins, axis); ins[i] has dims in_dims[i].
status concat(dtype t, std::span<const shape> in_dims, std::span<const void* const> ins,
              int64_t axis, void* out, cudaStream_t stream);

/// out = take(data, indices, axis) with int32 or int64 indices (negative ones count from
/// the end). An index out of range writes zeros and sets *error_flag (device memory, one
/// int the caller zeroes before) to 1: the kernel cannot return an error, so the caller
/// reads the flag when it next synchronizes (gather_error).
status gather(dtype t, std::span<const int64_t> data_dims, const void* data, dtype index_type,
              std::span<const int64_t> index_dims, const void* indices, int64_t axis, void* out,
              int* error_flag, cudaStream_t stream);

/// Waits for `stream` and turns a set gather flag into an out_of_range error.
status gather_error(const int* error_flag, cudaStream_t stream);

} // namespace troupe::cuda
