// results: what a load run measured (per phase and per second) and the recorder that
// collects it from reply callbacks on any thread.
#pragma once

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "runtime/load/histogram.hpp"

namespace troupe::load {

struct phase_result {
  std::string name;
  std::string arrival; // "poisson 200/s", "closed x8"
  double start_s = 0;  // from the start of the run
  double end_s = 0;        // the scheduled end (the next phase starts here)
  double last_reply_s = 0; // replies to this phase's requests may come after end_s
  double slo_ms = 0;
  uint64_t sent = 0;
  uint64_t ok = 0;
  std::map<std::string, uint64_t> errors; // by status label ("timeout", "http_503", ...)
  uint64_t within_slo = 0;                // ok and latency <= slo
  uint64_t labelled = 0;                  // ok replies to requests with a label
  uint64_t correct = 0;
  latency_histogram latency; // ok replies, from the scheduled send time, µs
  double lag_max_ms = 0;     // how far the generator fell behind its schedule at worst
  uint64_t late_sends = 0;   // sends more than late_threshold_ms behind schedule

  static constexpr double late_threshold_ms = 1.0;

  double duration_s() const { return end_s - start_s; }
  /// The span rates are computed over: from the start until the phase's last reply, so an
  /// overloaded server's backlog does not pass for throughput.
  double active_s() const { return std::max(end_s, last_reply_s) - start_s; }
  uint64_t error_count() const;
  double offered_rate() const { return duration_s() > 0 ? sent / duration_s() : 0; }
  double throughput() const { return active_s() > 0 ? ok / active_s() : 0; }
  double goodput() const { return active_s() > 0 ? within_slo / active_s() : 0; }
  std::optional<double> accuracy() const {
    return labelled ? std::optional<double>(static_cast<double>(correct) / labelled) : std::nullopt;
  }
  double percentile_ms(double q) const { return latency.percentile(q) / 1000.0; }
};

/// One second of the run: sends by send time, replies and their latencies by reply time.
struct second_row {
  int64_t second = 0; // [second, second + 1) from the start of the run
  size_t phase = 0;   // the phase running at the start of the second
  uint64_t sent = 0;
  uint64_t ok = 0;
  uint64_t errors = 0;
  double p50_ms = 0;
  double p99_ms = 0;
  double lag_max_ms = 0;
};

struct run_result {
  std::string scenario;
  std::string transport;
  std::string target; // URL or repository
  double duration_s = 0;
  std::vector<phase_result> phases;
  std::vector<second_row> series;
  uint64_t unanswered = 0; // requests still without a reply when the run gave up waiting
};

/// The end of one request as the runner saw it; times are seconds from the run start.
struct outcome {
  size_t phase = 0;
  double scheduled_s = 0; // closed loop: the send time
  double sent_s = 0;
  double done_s = 0;
  std::string status; // "ok" or an error label
  std::optional<bool> correct; // set when the request had a label and the reply was ok
};

/// Thread-safe collector. Latency is done − scheduled, so a server (or generator) stall
/// shows up in the latency of every request that should have been sent during it.
class recorder {
public:
  /// Phases must be begun in order.
  void begin_phase(std::string name, std::string arrival, double start_s, double slo_ms);
  void end_phase(size_t phase, double end_s);
  /// A request left: counts it and the generator's lag behind the schedule.
  void sent(size_t phase, double scheduled_s, double sent_s);
  void finished(const outcome& o);

  /// Closes every second that ends at or before `now_s` and returns the newly closed rows
  /// (the live line). Replies that arrive later for a closed second count in the next one.
  std::vector<second_row> seal_until(double now_s);

  /// The final result; seals everything up to `end_s`.
  run_result finish(double end_s, uint64_t unanswered);

private:
  struct open_second {
    uint64_t sent = 0, ok = 0, errors = 0;
    double lag_max_ms = 0;
    latency_histogram latency;
  };
  open_second& second_at(double t_s);
  size_t phase_at(double t_s) const;

  std::mutex mutex_;
  std::vector<phase_result> phases_;
  std::map<int64_t, open_second> open_;
  std::vector<second_row> sealed_;
  int64_t sealed_until_ = 0; // seconds below this are sealed
};

} // namespace troupe::load
