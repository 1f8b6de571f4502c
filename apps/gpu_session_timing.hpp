// gpu_session_timing: how the GPU benchmarks time a bare gpu_session: synchronous runs, or two
// runs kept in flight as the serving path does.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
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

/// As time_gpu_session, with gpu_session::max_in_flight runs kept in flight through run_async
/// (the next run's inputs are staged while the device runs the current one), after the plans
/// are warm (call time_gpu_session first).
inline expected<gpu_session_rate> time_gpu_session_overlapped(gpu_session& s,
                                                              const std::vector<tensor>& inputs,
                                                              int64_t batch, double seconds) {
  std::mutex mutex;
  std::condition_variable changed;
  size_t pending = 0;
  int64_t completed = 0;
  status failed;
  const auto t0 = std::chrono::steady_clock::now();
  const auto elapsed = [&] {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  std::unique_lock lock{mutex};
  while (failed.is_ok() && (elapsed() < seconds || completed < 3)) {
    changed.wait(lock, [&] { return pending < gpu_session::max_in_flight; });
    ++pending;
    lock.unlock();
    s.run_async(inputs, [&](expected<std::vector<tensor>> r) {
      std::lock_guard done{mutex};
      --pending;
      ++completed;
      if (!r && failed.is_ok())
        failed = r.error();
      changed.notify_all();
    });
    lock.lock();
  }
  changed.wait(lock, [&] { return pending == 0; });
  if (!failed.is_ok())
    return failed;
  const double total = elapsed();
  return gpu_session_rate{static_cast<double>(completed * batch) / total,
                          1e3 * total / static_cast<double>(completed)};
}

} // namespace troupe
