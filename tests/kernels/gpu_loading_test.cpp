// Without an NVIDIA driver, asking for GPUs must not load the CUDA libraries: a CPU-only
// process stays small (linking them cost over 200 MB of resident memory per process).
#include <doctest/doctest.h>

#include <sys/stat.h>

#include <fstream>
#include <string>

#include "kernels/gpu_collectives.hpp"
#include "kernels/gpu_devices.hpp"

using namespace troupe;

namespace {

bool exists(const char* path) {
  struct stat st{};
  return ::stat(path, &st) == 0;
}

/// The first mapped file of this process whose name holds one of the CUDA libraries.
std::string mapped_cuda_library() {
  std::ifstream maps("/proc/self/maps");
  std::string line;
  while (std::getline(maps, line))
    for (const char* lib : {"libcudart", "libcublas", "libcudnn", "libnccl", "libtroupe_cuda"})
      if (line.find(lib) != std::string::npos)
        return line;
  return {};
}

} // namespace

TEST_CASE("asking for GPUs on a machine without an NVIDIA driver maps no CUDA library") {
  if (exists("/dev/nvidiactl") || exists("/proc/driver/nvidia"))
    return; // a GPU machine loads the backend on purpose
  auto gpus = list_gpus(true);
  REQUIRE_FALSE(gpus.has_value());
  CHECK(gpus.error().code() == errc::unavailable);
  CHECK(gpu_memory_use(0).in_use == 0);
  auto id = make_nccl_unique_id();
  REQUIRE_FALSE(id.has_value());
  CHECK(id.error().code() == errc::unavailable);
  CHECK(mapped_cuda_library() == "");
}
