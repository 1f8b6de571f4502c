// gpu_capture_policy: the capture decision as a plain function.
#include "runtime/gpu_capture_policy.hpp"

namespace troupe {

capture_action next_capture_action(uint64_t completed_runs, bool captured,
                                   uint32_t failed_captures, uint32_t after_runs) {
  if (captured)
    return capture_action::replay;
  if (after_runs == 0 || failed_captures >= max_capture_attempts ||
      completed_runs < uint64_t{after_runs} * (failed_captures + 1))
    return capture_action::eager;
  return capture_action::capture;
}

} // namespace troupe
