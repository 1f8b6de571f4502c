// cuda_main: the entry point of test_cuda, which skips the GPU test cases (suite "gpu") with one
// message when there is no usable device.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "kernels/cuda/cuda_device.hpp"

// `--gpu` runs only the GPU cases and exits with 77 (CTest's SKIP_RETURN_CODE for this binary)
// when there is no device; without it the host cases run and the GPU ones are left out.
int main(int argc, char** argv) {
  std::vector<char*> args;
  bool gpu_only = false;
  for (int i = 0; i < argc; ++i) {
    if (std::strcmp(argv[i], "--gpu") == 0)
      gpu_only = true;
    else
      args.push_back(argv[i]);
  }
  doctest::Context context;
  context.applyCommandLine(static_cast<int>(args.size()), args.data());
  if (gpu_only)
    context.addFilter("test-suite", "gpu");
  if (auto devices = troupe::cuda::list_devices(false); !devices) {
    std::printf("test_cuda: GPU test cases skipped: %s\n", devices.error().message().c_str());
    if (gpu_only)
      return 77;
    context.addFilter("test-suite-exclude", "gpu");
  }
  return context.run();
}
