// runner: drives a scenario's phases through a transport on schedule and records outcomes.
#pragma once

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>

#include "runtime/load/dataset.hpp"
#include "runtime/load/results.hpp"
#include "runtime/load/scenario.hpp"
#include "runtime/load/transport.hpp"

namespace troupe::load {

/// Time as the runner sees it. The steady implementation sleeps; tests use a simulated clock
/// whose timers stand in for the server, so runs are exact and instantaneous.
class load_clock {
public:
  virtual ~load_clock() = default;
  /// Seconds since an arbitrary fixed point.
  virtual double now() = 0;
  virtual void sleep_until(double t) = 0;
  /// Waits on `cv` until `ready()` or time `t`; `lock` holds cv's mutex.
  virtual void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable& cv,
                          double t, const std::function<bool()>& ready) = 0;
};

/// std::chrono::steady_clock.
std::unique_ptr<load_clock> make_steady_clock();

struct runner_options {
  /// Called from the runner's thread once per closed second (the live line).
  std::function<void(const second_row&, const run_result& context)> on_second;
  /// How long to wait for replies after the last send, beyond the longest request timeout.
  double drain_grace_s = 2.0;
};

/// Runs a scenario from the calling thread. Payload sources and model metadata are prepared
/// by `prepare` (which reads datasets and asks the transport); run() does the sending.
class load_runner {
public:
  load_runner(const scenario& s, transport& t, load_clock& clock, runner_options options = {});
  ~load_runner();

  /// Asks the transport for every model's metadata and builds the payload sources.
  status prepare();
  /// Test hook: use this payload source for a model instead of building one in prepare().
  void set_payload(const std::string& model, model_info info, payload_source source);

  /// Sends every phase and waits for the replies (or gives up after the drain time).
  run_result run();

private:
  struct shared_state;
  struct model_slot {
    model_info info;
    payload_source source;
  };
  /// A request built (and encoded by the transport) ahead of its send time, so that the
  /// send itself is quick and the generator's own work does not count as latency.
  struct pending {
    load_request request;
    std::optional<int64_t> label;
  };

  void run_open_phase(size_t index, double start);
  void run_closed_phase(size_t index, double start);
  pending make_request(size_t phase, std::mt19937_64& rng);
  void submit_one(size_t phase, double scheduled, pending p);
  void tick_seconds();

  const scenario& scenario_;
  transport& transport_;
  load_clock& clock_;
  runner_options options_;
  std::map<std::string, model_slot> models_;
  std::shared_ptr<shared_state> state_;
  double epoch_ = 0;
  uint64_t next_id_ = 1;
};

} // namespace troupe::load
