// arrival: the scheduled send times of an open-loop phase, seeded and deterministic.
#pragma once

#include <cstdint>
#include <optional>
#include <random>
#include <vector>

#include "runtime/load/scenario.hpp"

namespace troupe::load {

/// Yields the send offsets (seconds from the phase start, non-decreasing) of one open-loop
/// phase: until `duration_s` when set, and at most `requests` when set. The same spec and seed
/// give the same times, so two runs of a scenario offer the same load.
class arrival_schedule {
public:
  arrival_schedule(const arrival_spec& spec, std::optional<double> duration_s,
                   std::optional<int64_t> requests, uint64_t seed);

  /// The next send offset; nullopt when the phase has no more sends (always for closed loop).
  std::optional<double> next();

  /// Every offset at once (tests, small phases).
  std::vector<double> all();

  /// The number of sends the process offers on average (ramp: the integral of the rate).
  double expected_count() const;

private:
  double next_unbounded();

  arrival_spec spec_;
  std::optional<double> duration_;
  std::optional<int64_t> requests_;
  std::mt19937_64 rng_;
  int64_t emitted_ = 0;
  double clock_ = 0;  // the process's own time (active time for bursty, Λ for ramp)
  bool done_ = false;
};

} // namespace troupe::load
