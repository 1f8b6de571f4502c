// host_async_model: the async_model of a CPU session that lives on a thread of its own.
#include <condition_variable>
#include <deque>
#include <future>
#include <mutex>
#include <thread>
#include <utility>

#include "runtime/serve/async_model.hpp"

namespace troupe {

namespace {

#if defined(__SANITIZE_THREAD__)
// CAF is not built with ThreadSanitizer, so TSan cannot see that CAF hands one model thread's
// outputs on to the next pipeline stage's model thread, and reading them there looks like a
// race. Every model thread takes this lock after a run and before the next, which makes the
// hand-over visible to TSan (CAF already orders it); TSan builds only.
std::mutex tsan_handover;
void show_handover_to_tsan() { std::lock_guard lock{tsan_handover}; }
#else
void show_handover_to_tsan() {}
#endif

class host_async_model final : public async_model {
public:
  explicit host_async_model(const graph& g) : inputs_(g.inputs), outputs_(g.outputs) {}

  ~host_async_model() override {
    {
      std::lock_guard lock{mutex_};
      stop_ = true;
    }
    wake_.notify_one();
    if (worker_.joinable())
      worker_.join();
  }

  /// Starts the thread and waits until it has built the session (or failed to).
  status start(graph g, session_options options) {
    std::promise<status> built;
    auto result = built.get_future();
    worker_ = std::thread([this, g = std::move(g), options, built = std::move(built)]() mutable {
      loop(std::move(g), options, built);
    });
    return result.get();
  }

  const std::vector<value_info>& inputs() const override { return inputs_; }
  const std::vector<value_info>& outputs() const override { return outputs_; }
  /// Runs accepted and not completed: one running on the thread, one waiting to start the
  /// moment it is done. (A run counts as completed just before its `done` is called.)
  size_t max_in_flight() const override { return 2; }

  void run_async(std::vector<tensor> inputs, completion done) override {
    const char* refused = nullptr;
    {
      std::lock_guard lock{mutex_};
      if (stop_)
        refused = "the model is closing";
      else if (in_flight_ >= max_in_flight())
        refused = "run_async with 2 runs not completed (at most 2 in flight)";
      else {
        ++in_flight_;
        pending_.emplace_back(std::move(inputs), std::move(done));
      }
    }
    if (refused)
      return done(make_error(errc::internal, "{}", refused));
    wake_.notify_one();
  }

private:
  void loop(graph g, session_options options, std::promise<status>& built) {
    // Nothing may escape a plain thread (std::terminate): what a build or a run throws (no
    // memory for a plan, say) becomes its error.
    std::unique_ptr<session> opened;
    try {
      auto st = build(std::move(g), options, opened);
      built.set_value(st);
      if (!st)
        return;
    } catch (const std::exception& e) {
      built.set_value(make_error(errc::resource_exhausted, "opening the model: {}", e.what()));
      return;
    }
    serve(*opened);
  }

  status build(graph g, const session_options& options, std::unique_ptr<session>& out) {
    auto s = session::from_graph(std::move(g), options);
    if (!s)
      return s.error();
    // Compiled once for batch 1 (as session::open does), so an unsupported operator fails
    // the load, not the first request.
    std::vector<shape> dims;
    for (const auto& in : inputs_) {
      dims.push_back(in.dims);
      for (auto& d : dims.back())
        d = d < 0 ? 1 : d;
    }
    if (auto p = (*s)->plan_for(dims); !p)
      return p.error();
    out = std::move(*s);
    return status::ok();
  }

  void serve(session& s) {
    for (;;) {
      std::pair<std::vector<tensor>, completion> job;
      {
        std::unique_lock lock{mutex_};
        // A run handed over before the stop still runs, so every `done` is called once.
        wake_.wait(lock, [&] { return stop_ || !pending_.empty(); });
        if (pending_.empty())
          return;
        job = std::move(pending_.front());
        pending_.pop_front();
      }
      show_handover_to_tsan();
      expected<std::vector<tensor>> outputs = make_error(errc::internal, "not run");
      try {
        outputs = s.run(job.first);
      } catch (const std::exception& e) {
        outputs = make_error(errc::resource_exhausted, "running the model: {}", e.what());
      }
      show_handover_to_tsan();
      {
        // Completed before `done`, which may start the next run at once.
        std::lock_guard lock{mutex_};
        --in_flight_;
      }
      job.second(std::move(outputs));
    }
  }

  std::vector<value_info> inputs_, outputs_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<std::vector<tensor>, completion>> pending_; // accepted, not started
  size_t in_flight_ = 0;                                            // accepted, not completed
  bool stop_ = false;
  std::thread worker_; // last: it starts after, and is joined before, the members it uses
};

} // namespace

expected<std::unique_ptr<async_model>> open_host_model(graph g, session_options options) {
  auto model = std::make_unique<host_async_model>(g);
  if (auto st = model->start(std::move(g), options); !st)
    return st;
  return std::unique_ptr<async_model>(std::move(model));
}

} // namespace troupe
