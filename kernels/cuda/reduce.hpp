// reduce (CUDA): Sum, Mean and Max over any set of axes, FP32 accumulation.
#pragma once

#include <cstdint>
#include <span>

#include <cuda_runtime_api.h>

#include "kernels/cuda/kernel_args.hpp"
#include "kernels/dtype.hpp"
#include "kernels/status.hpp"

namespace troupe::cuda {

/// y = reduce(x) over `axes` (empty: every axis) of x's `dims`; y holds the kept dims in
/// order (keepdims only changes the shape, not the layout). An empty reduction gives 0 for
/// sum, NaN for mean and -inf for max.
status reduce(reduce_op op, dtype t, std::span<const int64_t> dims, std::span<const int64_t> axes,
              const void* x, void* y, cudaStream_t stream);

} // namespace troupe::cuda
