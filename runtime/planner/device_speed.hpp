// device_speed: a CPU device's measured GEMM rate and memory bandwidth, cached on disk.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "kernels/cpu/cpu_context.hpp"
#include "runtime/planner/cost_model.hpp"

namespace troupe::planner {

struct measured_speed {
  double gflops = 0;   // fp32 GEMM, best of a short run
  double mem_gbps = 0; // streaming copy
  bool from_cache = false;
};

/// $XDG_CACHE_HOME/troupe/device_speed.txt, else ~/.cache/troupe/device_speed.txt.
std::filesystem::path default_speed_cache();

/// Cache key of a CPU device: the CPU model, the thread count and the core set, because
/// the same machine has a different speed per thread count.
std::string cpu_device_key(const cpu::cpu_limits& limits);

/// Looks `key` up in the cache file ("key gflops gbps" lines).
std::optional<measured_speed> read_cached_speed(const std::filesystem::path& file,
                                                const std::string& key);
/// Adds or replaces `key` in the cache file.
status write_cached_speed(const std::filesystem::path& file, const std::string& key,
                          const measured_speed& speed);

/// The speed of a CPU device with `limits`: from the cache, or measured now (about a second
/// on a thread that enters a fresh context) and cached. `refresh` measures even when cached.
expected<measured_speed> cpu_device_speed(const cpu::cpu_limits& limits,
                                          const std::filesystem::path& cache, bool refresh = false);

} // namespace troupe::planner
