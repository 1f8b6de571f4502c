// pipeline_measure: one thread per stage, bounded hand-off queues, steady-state timing.
#include "runtime/planner/pipeline_measure.hpp"

#include <chrono>
#include <condition_variable>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <thread>

#include "runtime/session.hpp"

namespace troupe::planner {

namespace {

using values = std::map<std::string, tensor>;
using clock_type = std::chrono::steady_clock;

/// A bounded queue: a full queue blocks the producer, as a pipeline's credit would.
class hand_off {
public:
  explicit hand_off(size_t depth) : depth_(depth) {}
  void push(std::optional<values> v) {
    std::unique_lock lock(mutex_);
    not_full_.wait(lock, [&] { return items_.size() < depth_; });
    items_.push_back(std::move(v));
    not_empty_.notify_one();
  }
  std::optional<values> pop() { // nullopt: the end
    std::unique_lock lock(mutex_);
    not_empty_.wait(lock, [&] { return !items_.empty(); });
    auto v = std::move(items_.front());
    items_.pop_front();
    not_full_.notify_one();
    return v;
  }

private:
  size_t depth_;
  std::mutex mutex_;
  std::condition_variable not_full_, not_empty_;
  std::deque<std::optional<values>> items_;
};

} // namespace

expected<pipeline_measurement> measure_pipeline(std::span<const graph> stages,
                                                std::span<const cpu::cpu_limits> devices,
                                                std::span<const tensor> inputs, int batches,
                                                int warmup, size_t queue_depth) {
  if (stages.empty() || stages.size() != devices.size())
    return make_error(errc::invalid_argument, "{} stages need as many devices, got {}",
                      stages.size(), devices.size());
  if (inputs.size() != stages[0].inputs.size())
    return make_error(errc::invalid_argument, "the first stage takes {} inputs, got {}",
                      stages[0].inputs.size(), inputs.size());
  const size_t k = stages.size();
  std::vector<std::unique_ptr<hand_off>> queues;
  for (size_t i = 0; i <= k; ++i)
    queues.push_back(std::make_unique<hand_off>(queue_depth));
  std::vector<status> failures(k);
  std::vector<double> busy(k, 0.0);
  std::vector<clock_type::time_point> window_start(k), window_end(k);
  clock_type::time_point timed_start{}, timed_end{};
  const int total = warmup + batches;
  std::vector<std::thread> threads;
  for (size_t s = 0; s < k; ++s)
    threads.emplace_back([&, s] {
      session_options options;
      options.limits = devices[s];
      options.optimize = false; // stages were cut from an optimized graph
      auto sess = session::from_graph(stages[s], options);
      status st = sess ? (*sess)->context().enter() : sess.error();
      int done = 0;
      while (auto item = queues[s]->pop()) {
        if (st.is_ok()) {
          std::vector<tensor> in;
          for (const auto& info : stages[s].inputs)
            in.push_back(item->at(info.name));
          const auto t0 = clock_type::now();
          auto out = (*sess)->run(in);
          const auto t1 = clock_type::now();
          // Busy share over this stage's own window (its warm-up's last result to its
          // last result): the sink's window lags the first stage's.
          if (done + 1 == warmup)
            window_start[s] = t1;
          if (done >= warmup)
            busy[s] += std::chrono::duration<double>(t1 - t0).count();
          if (done + 1 == total)
            window_end[s] = t1;
          if (!out) {
            st = out.error();
          } else {
            for (size_t i = 0; i < stages[s].outputs.size(); ++i)
              (*item)[stages[s].outputs[i].name] = std::move((*out)[i]);
          }
        }
        ++done;
        // After a failure items still flow (unprocessed) so no thread waits forever.
        queues[s + 1]->push(std::move(item));
      }
      failures[s] = st;
      queues[s + 1]->push(std::nullopt);
    });
  std::thread sink([&] {
    int seen = 0;
    while (queues[k]->pop()) {
      ++seen;
      if (seen == warmup)
        timed_start = clock_type::now();
      if (seen == total)
        timed_end = clock_type::now();
    }
  });
  values first;
  for (size_t i = 0; i < inputs.size(); ++i)
    first[stages[0].inputs[i].name] = inputs[i];
  if (warmup == 0)
    timed_start = clock_type::now();
  for (int i = 0; i < total; ++i)
    queues[0]->push(first);
  queues[0]->push(std::nullopt);
  for (auto& t : threads)
    t.join();
  sink.join();
  for (const auto& st : failures)
    if (!st.is_ok())
      return st;
  pipeline_measurement m;
  m.timed_batches = batches;
  m.seconds = std::chrono::duration<double>(timed_end - timed_start).count();
  const int64_t rows = inputs.empty() || inputs[0].dims().empty() ? 1 : inputs[0].dims()[0];
  if (m.seconds > 0)
    m.items_per_s = static_cast<double>(batches) * static_cast<double>(rows) / m.seconds;
  for (size_t s = 0; s < k; ++s) {
    const double window = warmup > 0 ? std::chrono::duration<double>(window_end[s] - window_start[s]).count()
                                     : m.seconds;
    m.stage_busy.push_back(window > 0 ? busy[s] / window : 0);
  }
  return m;
}

} // namespace troupe::planner
