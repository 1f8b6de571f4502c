// restart_backoff: when a supervised replica's restart cannot get the groups it needs (the
// exchange refused them), how long the resource manager waits before each further try, and
// when it gives up and reports the replica down.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>

namespace troupe::serve {

struct restart_backoff {
  std::chrono::milliseconds first{50};  // the wait after the first failed try
  std::chrono::milliseconds cap{5000};  // no wait is longer
  uint32_t retries = 8;                 // tries after the first one; then the replica is down

  /// The wait before the next try once `failures` (>= 1) tries in a row have failed: the
  /// first wait doubled for each further failure, at most `cap`; none once `retries` tries
  /// after the first have failed too (give up). Defaults: 50 ms .. 5 s, about 11 s in all.
  std::optional<std::chrono::milliseconds> wait_after(uint32_t failures) const {
    if (failures == 0 || failures > retries)
      return std::nullopt;
    auto wait = first;
    for (uint32_t i = 1; i < failures && wait < cap; ++i)
      wait *= 2;
    return wait < cap ? wait : cap;
  }
};

} // namespace troupe::serve
