// gpu_capture_policy: the capture decision as a plain function.
#include "runtime/gpu_capture_policy.hpp"

namespace troupe {

capture_action next_capture_action(uint64_t completed_runs, bool captured, bool capture_failed,
                                   uint32_t after_runs) {
  if (captured)
    return capture_action::replay;
  if (after_runs == 0 || capture_failed || completed_runs < after_runs)
    return capture_action::eager;
  return capture_action::capture;
}

} // namespace troupe
