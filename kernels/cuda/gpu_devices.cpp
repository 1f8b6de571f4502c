// gpu_devices with the CUDA backend: the runtime's device list and the caching allocators' use.
#include "kernels/gpu_devices.hpp"

#include "kernels/cuda/cuda_device.hpp"
#include "kernels/cuda/device_allocator.hpp"

namespace troupe {

expected<std::vector<gpu_device>> list_gpus(bool measure_free) {
  return cuda::list_devices(measure_free);
}

gpu_memory gpu_memory_use(int32_t index) {
  const auto* cache = cuda::existing_device_cache(index);
  if (!cache)
    return {};
  const auto s = cache->stats();
  return gpu_memory{s.in_use, s.cached, s.peak_in_use};
}

} // namespace troupe
