// Tests of device listing and of the mapping from CUDA-library codes to troupe statuses.
#include <doctest/doctest.h>

#include "kernels/cuda/cuda_device.hpp"
#include "kernels/cuda/cuda_error.hpp"
#include "kernels/gpu_devices.hpp"

using namespace troupe;

TEST_CASE("cuda errors map a missing driver or device to unavailable and memory to exhausted") {
  CHECK(cuda::check(cudaSuccess, "x").is_ok());
  for (auto code : {cudaErrorNoDevice, cudaErrorInsufficientDriver, cudaErrorStubLibrary,
                    cudaErrorInvalidDevice})
    CHECK(cuda::check(code, "probe").code() == errc::unavailable);
  const auto oom = cuda::check(cudaErrorMemoryAllocation, "cudaMalloc(&p, n)");
  CHECK(oom.code() == errc::resource_exhausted);
  CHECK(oom.message().find("cudaMalloc(&p, n)") != std::string::npos);
  CHECK(oom.message().find("cudaErrorMemoryAllocation") != std::string::npos);
  CHECK(cuda::check(cudaErrorIllegalAddress, "k").code() == errc::internal);
}

TEST_CASE("cuBLAS, cuDNN and NCCL codes map to the matching troupe codes") {
  CHECK(cuda::check(CUBLAS_STATUS_SUCCESS, "x").is_ok());
  CHECK(cuda::check(CUBLAS_STATUS_ALLOC_FAILED, "x").code() == errc::resource_exhausted);
  CHECK(cuda::check(CUBLAS_STATUS_NOT_SUPPORTED, "x").code() == errc::unsupported);
  CHECK(cuda::check(CUBLAS_STATUS_EXECUTION_FAILED, "x").code() == errc::internal);
  CHECK(cuda::check(CUDNN_STATUS_SUCCESS, "x").is_ok());
  CHECK(cuda::check(CUDNN_STATUS_NOT_SUPPORTED, "x").code() == errc::unsupported);
  // cuDNN 9's detailed "not supported" codes (the fused convolution reports these) too.
  CHECK(cuda::check(CUDNN_STATUS_NOT_SUPPORTED_GRAPH_PATTERN, "x").code() == errc::unsupported);
  CHECK(cuda::check(CUDNN_STATUS_NOT_SUPPORTED_LAYOUT, "x").code() == errc::unsupported);
  CHECK(cuda::check(CUDNN_STATUS_BAD_PARAM, "x").code() == errc::internal);
  CHECK(cuda::check(CUDNN_STATUS_INTERNAL_ERROR_DEVICE_ALLOCATION_FAILED, "x").code() ==
        errc::resource_exhausted);
  CHECK(cuda::check(ncclSuccess, "x").is_ok());
  CHECK(cuda::check(ncclInvalidArgument, "x").code() == errc::invalid_argument);
  const auto nccl = cuda::check(ncclSystemError, "ncclAllReduce");
  CHECK(nccl.code() == errc::internal);
  CHECK(nccl.message().find("ncclAllReduce") != std::string::npos);
}

TEST_CASE("TROUPE_CUDA_TRY returns the failing call's status") {
  auto failing = []() -> status {
    TROUPE_CUDA_TRY(cudaErrorMemoryAllocation);
    return make_error(errc::internal, "not reached");
  };
  CHECK(failing().code() == errc::resource_exhausted);
}

TEST_CASE("the device list has devices or says unavailable with the reason") {
  auto devices = list_gpus();
  if (devices) {
    CHECK_FALSE(devices->empty());
  } else {
    CHECK(devices.error().code() == errc::unavailable);
    CHECK(devices.error().message().find("no usable CUDA device") != std::string::npos);
  }
}

TEST_CASE("an untouched GPU reports no allocator use without starting CUDA") {
  const auto use = gpu_memory_use(31);
  CHECK(use.in_use == 0);
  CHECK(use.cached == 0);
  CHECK(use.peak == 0);
}

TEST_CASE("every device has a name, an sm version and its memory" * doctest::test_suite("gpu")) {
  auto devices = cuda::list_devices(true);
  REQUIRE(devices);
  for (size_t i = 0; i < devices->size(); ++i) {
    const auto& d = (*devices)[i];
    MESSAGE("GPU ", d.index, ": ", d.name, ", sm_", d.sm, ", ", d.total_bytes >> 20, " MiB, ",
            d.free_bytes >> 20, " MiB free");
    CHECK(d.index == static_cast<int32_t>(i));
    CHECK_FALSE(d.name.empty());
    CHECK(d.sm >= 50);
    CHECK(d.total_bytes > 0);
    CHECK(d.free_bytes > 0);
    CHECK(d.free_bytes <= d.total_bytes);
  }
  auto count = cuda::device_count();
  REQUIRE(count);
  CHECK(*count == static_cast<int>(devices->size()));
}

TEST_CASE("device_guard switches the current device and restores it" * doctest::test_suite("gpu")) {
  auto count = cuda::device_count();
  REQUIRE(count);
  int before = -1;
  REQUIRE(cudaGetDevice(&before) == cudaSuccess);
  const int other = *count - 1;
  {
    cuda::device_guard on{other};
    REQUIRE(on.status());
    int now = -1;
    REQUIRE(cudaGetDevice(&now) == cudaSuccess);
    CHECK(now == other);
  }
  int after = -1;
  REQUIRE(cudaGetDevice(&after) == cudaSuccess);
  CHECK(after == before);
  cuda::device_guard bad{*count};
  CHECK(bad.status().code() == errc::unavailable); // cudaErrorInvalidDevice
}
