// run_timeline_test: a run's own time starts when it started or when the run before it
// completed, whichever is later, so a run that waited behind another is not charged the wait.
#include <doctest/doctest.h>

#include "runtime/serve/run_timeline.hpp"

using namespace troupe;
using namespace std::chrono_literals;

TEST_CASE("a run's own time excludes its wait behind the run before it") {
  serve::run_timeline runs;
  const auto t0 = serve::run_timeline::clock::time_point{} + 1s;
  runs.started(t0);
  runs.started(t0 + 1ms); // queued behind the first
  CHECK(runs.in_flight() == 2);
  CHECK(runs.completed(t0 + 5ms) == 5ms);
  CHECK(runs.completed(t0 + 9ms) == 4ms); // from the first's completion, not its own start
  CHECK(runs.in_flight() == 0);
  // After an idle gap, a run's time starts at its own start.
  runs.started(t0 + 20ms);
  CHECK(runs.completed(t0 + 23ms) == 3ms);
}
