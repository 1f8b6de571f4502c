// restart_backoff: when a supervised replica's restart cannot get the groups it needs (the
// exchange refused them), how long the resource manager waits before each further try, and
// when it gives up and reports the replica down; replica_rejoins: which of a replica's
// restarts is current, so a late reply or retry for an older one is dropped.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <vector>

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

/// The restarts in progress of one replica that need groups, by unit: a tensor-parallel stage,
/// or unit 0 for a replica restarted whole. Each has an epoch, unique among the caller's
/// restarts (never 0), and counts its group requests refused in a row.
class replica_rejoins {
public:
  /// Starts the restart of `unit` as `epoch`: replies and retries for an earlier one no
  /// longer match, and nothing has been refused yet.
  void begin(size_t unit, uint64_t epoch) {
    if (unit >= units_.size())
      units_.resize(unit + 1);
    units_[unit] = {epoch, 0};
  }
  /// Whether `epoch` is the restart of `unit` in progress.
  bool current(size_t unit, uint64_t epoch) const {
    return epoch != 0 && unit < units_.size() && units_[unit].epoch == epoch;
  }
  /// The current restart of `unit` was refused its groups once more: the wait before its
  /// next try, or none when it gives up. `unit` must have begun.
  std::optional<std::chrono::milliseconds> refused(size_t unit, const restart_backoff& backoff) {
    return backoff.wait_after(++units_.at(unit).failures);
  }
  /// Its group requests refused in a row.
  uint32_t failures(size_t unit) const { return units_.at(unit).failures; }

private:
  struct unit_state {
    uint64_t epoch = 0;
    uint32_t failures = 0;
  };
  std::vector<unit_state> units_;
};

} // namespace troupe::serve
