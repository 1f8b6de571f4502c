// cuda_error: CUDA-library return codes as troupe statuses.
#include "kernels/cuda/cuda_error.hpp"

namespace troupe::cuda {

status check(cudaError_t code, const char* what) {
  if (code == cudaSuccess)
    return status::ok();
  // Clear the sticky "last error" so one failed call does not poison the next check.
  (void)cudaGetLastError();
  errc kind = errc::internal;
  if (code == cudaErrorNoDevice || code == cudaErrorInsufficientDriver ||
      code == cudaErrorInitializationError || code == cudaErrorDevicesUnavailable ||
      code == cudaErrorStubLibrary || code == cudaErrorInvalidDevice)
    kind = errc::unavailable;
  else if (code == cudaErrorMemoryAllocation)
    kind = errc::resource_exhausted;
  return make_error(kind, "{}: {} ({})", what, cudaGetErrorString(code), cudaGetErrorName(code));
}

status check(cublasStatus_t code, const char* what) {
  if (code == CUBLAS_STATUS_SUCCESS)
    return status::ok();
  const errc kind = code == CUBLAS_STATUS_ALLOC_FAILED     ? errc::resource_exhausted
                    : code == CUBLAS_STATUS_NOT_SUPPORTED ? errc::unsupported
                                                          : errc::internal;
  return make_error(kind, "{}: {}", what, cublasGetStatusString(code));
}

status check(cudnnStatus_t code, const char* what) {
  if (code == CUDNN_STATUS_SUCCESS)
    return status::ok();
  const errc kind = code == CUDNN_STATUS_INTERNAL_ERROR_HOST_ALLOCATION_FAILED ||
                            code == CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED
                        ? errc::resource_exhausted
                    // cuDNN 9 details "not supported" in codes 3001-3999 (graph pattern,
                    // shape, data type, layout, ...): all of them are the same kind.
                    : CUDNN_STATUS_CATEGORY(code) == CUDNN_STATUS_NOT_SUPPORTED
                        ? errc::unsupported
                        : errc::internal;
  return make_error(kind, "{}: {}", what, cudnnGetErrorString(code));
}

status check(ncclResult_t code, const char* what) {
  if (code == ncclSuccess)
    return status::ok();
  return make_error(code == ncclInvalidArgument || code == ncclInvalidUsage
                        ? errc::invalid_argument
                        : errc::internal,
                    "{}: {}", what, ncclGetErrorString(code));
}

} // namespace troupe::cuda
