// gpu_devices: the GPUs this process can use, described without CUDA types, for code above
// kernels/.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kernels/status.hpp"

namespace troupe {

struct gpu_device {
  int32_t index = 0; // the CUDA device ordinal
  std::string name;  // "NVIDIA H200"
  int32_t sm = 0;    // compute capability as major * 10 + minor (90 for sm_90)
  uint64_t total_bytes = 0;
  uint64_t free_bytes = 0; // 0 unless measured
};

/// The visible GPUs, or `unavailable` with the reason there are none (no driver, no device,
/// a build without the CUDA backend). `measure_free` asks the driver for free memory, which
/// creates a context on every device (hundreds of MB each), so listings that only need the
/// model and size leave it off.
expected<std::vector<gpu_device>> list_gpus(bool measure_free = false);

/// What troupe's caching allocator holds on one GPU.
struct gpu_memory {
  uint64_t in_use = 0; // handed out
  uint64_t cached = 0; // freed, kept for reuse
  uint64_t peak = 0;   // the most in use at once
};

/// Zeros for a GPU the allocator has not touched (asking creates nothing).
gpu_memory gpu_memory_use(int32_t index);

} // namespace troupe
