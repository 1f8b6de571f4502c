// cuda_error: turns CUDA runtime, cuBLAS, cuDNN and NCCL return codes into troupe statuses.
#pragma once

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>
#include <nccl.h>

#include "kernels/status.hpp"

namespace troupe::cuda {

/// ok, or an error naming `what` and the library's own message. A missing driver or device
/// maps to `unavailable` (the caller may fall back to the CPU), memory to
/// `resource_exhausted`, everything else to `internal`.
status check(cudaError_t code, const char* what);
status check(cublasStatus_t code, const char* what);
status check(cudnnStatus_t code, const char* what);
status check(ncclResult_t code, const char* what);

} // namespace troupe::cuda

/// Returns the status from the enclosing function when a CUDA-library call fails.
#define TROUPE_CUDA_TRY(call)                                                                  \
  do {                                                                                         \
    if (auto troupe_cuda_status_ = ::troupe::cuda::check((call), #call); !troupe_cuda_status_) \
      return troupe_cuda_status_;                                                              \
  } while (false)
