// gpu_plugin: loads the CUDA backend (libtroupe_cuda.so) the first time a GPU is asked for,
// so a process that never uses a GPU never maps cudart, cuBLAS, cuDNN and NCCL (which cost
// over 200 MB of resident memory just by being linked).
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "kernels/status.hpp"

namespace troupe {

/// Why this machine cannot have a usable NVIDIA GPU (no /dev/nvidiactl and no
/// /proc/driver/nvidia), or nothing when the driver is there. Checked before loading the
/// plugin, so CPU-only machines skip it entirely.
std::optional<std::string> missing_nvidia_driver();

/// Where the plugin is looked for: $TROUPE_CUDA_PLUGIN when set, else libtroupe_cuda.so in the
/// folder that holds libtroupe_kernels.so (the build's lib/ folder, or a bundle's).
std::string default_gpu_plugin_path();

/// Loads the library at `path` (once per process; later calls find it loaded) and returns the
/// address of `symbol` in it; `unavailable` ("no usable CUDA device: ...") naming the path
/// when it is missing, cannot be loaded or lacks the symbol.
expected<void*> gpu_plugin_symbol_at(const std::string& path, const char* symbol);

/// `symbol` in the process's plugin (default_gpu_plugin_path()), loaded on first use, or
/// `unavailable` saying why there is none: no NVIDIA driver, or the plugin's own error.
expected<void*> gpu_plugin_symbol(const char* symbol);

/// The `unavailable` error for a plugin whose `what` table has another version than `wanted`.
status stale_gpu_plugin(const char* what, uint32_t found, uint32_t wanted);

/// The table the plugin's `extern "C" const Table* symbol()` returns, checked to come from the
/// same build (its `version` equals `version`); callers keep it in a function-local static.
template <class Table>
expected<const Table*> gpu_plugin_table(const char* symbol, uint32_t version) {
  auto address = gpu_plugin_symbol(symbol);
  if (!address)
    return address.error();
  using getter = const Table* (*)();
  const Table* table = reinterpret_cast<getter>(*address)();
  if (!table || table->version != version)
    return stale_gpu_plugin(symbol, table ? table->version : 0, version);
  return table;
}

} // namespace troupe
