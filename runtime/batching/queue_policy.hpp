// queue_policy: per-priority-level queue limits and timeouts, as Triton's ModelQueuePolicy.
#pragma once

#include <chrono>
#include <cstdint>

namespace troupe {

/// Time in the batching layer is always passed in, never read, so tests run on a fake clock.
using steady_time = std::chrono::steady_clock::time_point;
using microseconds = std::chrono::microseconds;

/// What happens to a queued request whose timeout passes before it is batched.
enum class timeout_action : uint8_t {
  reject, // removed and answered with errc::timeout at its deadline
  delay,  // kept, but served only after every request that has not timed out
};

struct queue_policy {
  int64_t max_queue_size = 0;          // requests queued at this level; 0 = unbounded
  microseconds default_timeout{0};     // 0 = no timeout
  bool allow_timeout_override = false; // a request may then shorten (never extend) the timeout
  timeout_action action = timeout_action::reject;

  friend bool operator==(const queue_policy&, const queue_policy&) = default;
};

} // namespace troupe
