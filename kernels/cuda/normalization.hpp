// normalization (CUDA): LayerNormalization and Softmax over trailing axes, one thread group
// per row with warp/block reductions in FP32.
#pragma once

#include <cstdint>
#include <span>

#include <cuda_runtime_api.h>

#include "kernels/dtype.hpp"
#include "kernels/status.hpp"

namespace troupe::cuda {

/// y = (x - mean) / sqrt(var + epsilon) * gamma + beta over dims[axis:] (ONNX
/// LayerNormalization); gamma and beta (beta may be null) hold the normalized dims' product
/// elements of dtype t.
status layer_norm(dtype t, std::span<const int64_t> dims, int64_t axis, const void* x,
                  const void* gamma, const void* beta, void* y, float epsilon,
                  cudaStream_t stream);

/// y = exp(x - max) / sum(exp(x - max)) along the last axis (numerically stable).
status softmax(dtype t, std::span<const int64_t> dims, const void* x, void* y,
               cudaStream_t stream);

} // namespace troupe::cuda
