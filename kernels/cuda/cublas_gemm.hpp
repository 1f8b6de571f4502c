// cublas_gemm: row-major (batched) matrix multiplication through cuBLASLt with FP32
// accumulation, bias/ReLU/GELU epilogues and the heuristic's algorithm cached per shape.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>

#include <cublasLt.h>
#include <cuda_runtime_api.h>

#include "kernels/cuda/algo_cache.hpp"
#include "kernels/dtype.hpp"
#include "kernels/status.hpp"

namespace troupe::cuda {

enum class gemm_epilogue : uint8_t { none, relu, gelu, bias, bias_relu, bias_gelu };

/// C[b] = epilogue(op(A[b]) op(B[b])) for b < batch, all row-major: op(A) is [m, k], op(B)
/// [k, n], C [m, n]; A is stored [k, m] when trans_a, B [n, k] when trans_b. The bias is [n]
/// (one value per output column, shared by all rows and batches). GELU is cuBLASLt's tanh
/// approximation. Batch strides are in elements: -1 packs the matrices back to back, 0
/// shares one matrix across the batch (e.g. weights).
struct gemm_params {
  dtype type = dtype::f32; // A, B, C and bias
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  int64_t batch = 1;
  int64_t stride_a = -1, stride_b = -1, stride_c = -1;
  gemm_epilogue epilogue = gemm_epilogue::none;
  bool allow_tf32 = false; // FP32 only
};

/// Batch strides with -1 resolved to the packed size; an error for negative or zero-size
/// dims, strides below -1, C shared across batches, an unsupported dtype or a batch past
/// int32.
struct gemm_strides {
  int64_t a = 0, b = 0, c = 0;
};
expected<gemm_strides> gemm_check(const gemm_params& p);

/// The cache key: the problem (params), the workspace the heuristic may use and the pointer
/// alignments it may assume (cuBLASLt picks kernels that need aligned operands).
using gemm_key = std::array<int64_t, 16>;
gemm_key gemm_key_of(const gemm_params& p, const gemm_strides& strides, size_t workspace_size,
                     const std::array<uint32_t, 3>& alignments);

/// The largest power of two (<= 256) dividing the address.
uint32_t alignment_of(const void* pointer);

struct gemm_key_hash {
  size_t operator()(const gemm_key& key) const;
};

/// cuBLASLt's chosen algorithm per gemm_key. Thread-safe; one per device.
using gemm_algo_cache = algo_cache<gemm_key, cublasLtMatmulAlgo_t, gemm_key_hash>;

/// Runs p on `stream`. bias must be non-null for the bias epilogues. The workspace (device
/// memory, 32 MiB is plenty on Hopper) bounds the algorithms the heuristic may choose.
status gemm(cublasLtHandle_t handle, gemm_algo_cache& cache, const gemm_params& p, const void* a,
            const void* b, const void* bias, void* c, void* workspace, size_t workspace_size,
            cudaStream_t stream);

} // namespace troupe::cuda
