// run_timeline: the runs an asynchronous executor has started on a model that runs them one at
// a time, in order, and the time each one took of its own.
#pragma once

#include <chrono>
#include <cstddef>
#include <deque>

namespace troupe::serve {

/// Runs complete in the order they started. A run's own time begins when it started or when
/// the run before it completed, whichever is later: a run waiting behind another is not
/// charged for the wait.
class run_timeline {
public:
  using clock = std::chrono::steady_clock;

  void started(clock::time_point now) { starts_.push_back(now); }
  /// The oldest run in flight completed at `now`: its own time. At least one must be in flight.
  clock::duration completed(clock::time_point now) {
    const auto began = starts_.front() > last_done_ ? starts_.front() : last_done_;
    starts_.pop_front();
    last_done_ = now;
    return now - began;
  }
  size_t in_flight() const { return starts_.size(); }

private:
  std::deque<clock::time_point> starts_; // of the runs in flight, oldest first
  clock::time_point last_done_{};
};

} // namespace troupe::serve
