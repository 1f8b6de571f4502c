// gpu_devices in a build with the CUDA backend: forwarded to the plugin, loaded on first use.
#include "kernels/gpu_devices.hpp"

#include "kernels/cuda_loader/kernels_api_loader.hpp"

namespace troupe {

expected<std::vector<gpu_device>> list_gpus(bool measure_free) {
  auto api = gpu_kernels();
  if (!api)
    return api.error();
  return (*api)->list_gpus(measure_free);
}

gpu_memory gpu_memory_use(int32_t index) {
  // Asking creates nothing: without the plugin no allocator can have touched a GPU.
  auto api = gpu_kernels();
  return api ? (*api)->memory_use(index) : gpu_memory{};
}

} // namespace troupe
