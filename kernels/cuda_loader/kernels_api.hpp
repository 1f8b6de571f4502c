// kernels_api: the table of kernels-level entry points the CUDA backend plugin
// (libtroupe_cuda.so) exports, shared by the plugin and the loader that forwards to it.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kernels/communicator.hpp"
#include "kernels/gpu_devices.hpp"
#include "kernels/status.hpp"

namespace troupe {

/// Bumped whenever the table changes; plugin and loader come from one build, so a mismatch
/// means a stale plugin file next to a newer library.
inline constexpr uint32_t gpu_kernels_api_version = 1;

struct gpu_kernels_api {
  uint32_t version = gpu_kernels_api_version;
  expected<std::vector<gpu_device>> (*list_gpus)(bool measure_free) = nullptr;
  gpu_memory (*memory_use)(int32_t index) = nullptr;
  expected<std::vector<std::byte>> (*make_nccl_unique_id)() = nullptr;
  expected<std::unique_ptr<communicator>> (*make_nccl_communicator)(std::span<const std::byte> id,
                                                                    int rank, int size,
                                                                    int device) = nullptr;
};

/// The name of the plugin's `extern "C" const gpu_kernels_api* NAME()`.
inline constexpr const char* gpu_kernels_api_symbol = "troupe_cuda_kernels_api";

} // namespace troupe
