// cpu_context: one oneDNN engine and stream, limited to a thread count and a core set.
#pragma once

#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/status.hpp"

namespace troupe::cpu {

/// Where a CPU backend instance may run: how many threads, on which cores.
struct cpu_limits {
  int threads = 0;          // 0: one per core in `cores` (or all cores)
  std::vector<int> cores;   // empty: no pinning
};

/// The execution context of a CPU backend instance. Owned by one thread at a time (the
/// shard executor's own thread); `enter` applies the thread count and pinning to the
/// calling thread, whose OpenMP team inherits them.
class cpu_context {
public:
  explicit cpu_context(cpu_limits limits = {});

  /// Applies the limits to the calling thread. Call once on the thread that runs plans.
  status enter() const;

  dnnl::engine& engine() { return engine_; }
  dnnl::stream& stream() { return stream_; }
  int threads() const { return threads_; }
  const cpu_limits& limits() const { return limits_; }

private:
  cpu_limits limits_;
  int threads_;
  dnnl::engine engine_;
  dnnl::stream stream_;
};

/// Number of cores this process may run on.
int available_cores();

} // namespace troupe::cpu
