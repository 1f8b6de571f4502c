// gpu_capture_policy: when a GPU plan is recorded as a CUDA graph and replayed.
#pragma once

#include <cstdint>

namespace troupe {

enum class capture_action : uint8_t {
  eager,   // enqueue every kernel launch
  capture, // record this run's launches as a CUDA graph, then launch the graph
  replay,  // launch the recorded graph
};

/// Captures a plan tries before it stays eager for good.
constexpr uint32_t max_capture_attempts = 2;

/// What the next run of a plan does. A plan is captured only after `after_runs` eager runs
/// with its dims (0: never), so one-off shapes never pay for instantiation and the first runs
/// have settled every lazy choice (algorithm searches, library workspaces) that must not
/// happen inside a capture. A failed capture (`failed_captures` so far) is tried once more
/// after another `after_runs` eager runs, since something outside the plan (another thread's
/// call) may have broken it; after max_capture_attempts failures the plan stays eager.
capture_action next_capture_action(uint64_t completed_runs, bool captured,
                                   uint32_t failed_captures, uint32_t after_runs);

} // namespace troupe
