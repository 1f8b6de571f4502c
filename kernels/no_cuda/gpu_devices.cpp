// gpu_devices without the CUDA backend: there is never a GPU.
#include "kernels/gpu_devices.hpp"

namespace troupe {

expected<std::vector<gpu_device>> list_gpus(bool) {
  return make_error(errc::unavailable,
                    "troupe was built without the CUDA backend (TROUPE_CUDA=OFF or no toolkit)");
}

gpu_memory gpu_memory_use(int32_t) { return {}; }

} // namespace troupe
