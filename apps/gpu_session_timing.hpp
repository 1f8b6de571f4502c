// gpu_session_timing: how the GPU benchmarks time a bare gpu_session (synchronous runs).
#pragma once

#include <chrono>
#include <cstdint>
#include <vector>

#include "runtime/gpu_session.hpp"

namespace troupe {

struct gpu_session_rate {
  double items_per_second = 0;
  double mean_ms = 0; // per run of `batch` rows
};

/// Runs `inputs` (`batch` rows) for about `seconds`, and at least 3 times, after 5 warm-up runs
/// that compile the plan and capture its CUDA graph.
inline expected<gpu_session_rate> time_gpu_session(gpu_session& s,
                                                   const std::vector<tensor>& inputs,
                                                   int64_t batch, double seconds) {
  for (int i = 0; i < 5; ++i)
    if (auto r = s.run(inputs); !r)
      return r.error();
  int64_t runs = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds || runs < 3) {
    if (auto r = s.run(inputs); !r)
      return r.error();
    ++runs;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  return gpu_session_rate{static_cast<double>(runs * batch) / elapsed,
                          1e3 * elapsed / static_cast<double>(runs)};
}

} // namespace troupe
