// elementwise (CUDA): broadcast binary ops, unary ops (activations, GELU, Erf, Clip) and casts
// between the float storage types, FP32 arithmetic inside.
#pragma once

#include <cstdint>
#include <span>

#include <cuda_runtime_api.h>

#include "kernels/cuda/kernel_args.hpp"
#include "kernels/dtype.hpp"
#include "kernels/status.hpp"

namespace troupe::cuda {

/// out = a op b with numpy broadcasting (up to rank 6 after collapsing); a, b and out share
/// dtype t (f32, f16, bf16) and out has the broadcast shape.
status binary(binary_op op, dtype t, std::span<const int64_t> a_dims, const void* a,
              std::span<const int64_t> b_dims, const void* b, void* out, cudaStream_t stream);

/// y = op(x) over n elements of dtype t; lo and hi are Clip's bounds (ignored otherwise).
status unary(unary_op op, dtype t, const void* x, void* y, int64_t n, cudaStream_t stream,
             float lo = 0.0f, float hi = 0.0f);

/// y = x converted from `from` to `to` (f32, f16, bf16; round to nearest even), n elements.
status cast(dtype from, const void* x, dtype to, void* y, int64_t n, cudaStream_t stream);

} // namespace troupe::cuda
