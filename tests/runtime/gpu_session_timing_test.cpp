// gpu_session_timing_test: the benchmarks' overlapped timing loop over a fake gpu_session whose
// runs complete on a thread of their own: it keeps at most two runs in flight, waits for every
// run it started, counts them all, and returns a run's error instead of a rate.
#include <doctest/doctest.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>

#include "apps/gpu_session_timing.hpp"

using namespace troupe;

namespace {

/// Runs complete in order on a worker thread; the `fail_at`-th run (1-based) fails.
class fake_session final : public gpu_session {
public:
  explicit fake_session(int fail_at = 0) : fail_at_(fail_at), worker_([this] { loop(); }) {}
  ~fake_session() override {
    {
      std::lock_guard lock{mutex_};
      stop_ = true;
    }
    wake_.notify_all();
    worker_.join();
  }

  const std::vector<value_info>& inputs() const override { return io_; }
  const std::vector<value_info>& outputs() const override { return io_; }
  status validate(std::span<const tensor>) const override { return status::ok(); }
  status prepare(std::span<const shape>) override { return status::ok(); }
  expected<std::vector<tensor>> run(std::span<const tensor> in) override {
    return std::vector<tensor>(in.begin(), in.end());
  }
  void run_async(std::vector<tensor> in, completion done) override {
    std::lock_guard lock{mutex_};
    ++started;
    most_in_flight = std::max(most_in_flight, ++in_flight_);
    queue_.emplace_back(std::move(in), std::move(done));
    wake_.notify_all();
  }
  void set_device_outputs(bool) override {}
  int device_index() const override { return 0; }
  gpu_precision precision() const override { return gpu_precision::fp32; }

  int started = 0;
  int completed = 0;
  int most_in_flight = 0;

private:
  void loop() {
    std::unique_lock lock{mutex_};
    while (true) {
      wake_.wait(lock, [&] { return stop_ || !queue_.empty(); });
      if (queue_.empty())
        return;
      auto [in, done] = std::move(queue_.front());
      queue_.pop_front();
      const bool fail = ++completed == fail_at_;
      --in_flight_; // completed before `done`, as the real session counts
      lock.unlock();
      if (fail)
        done(make_error(errc::internal, "run {} failed", fail_at_));
      else
        done(std::move(in));
      lock.lock();
    }
  }

  int fail_at_;
  std::vector<value_info> io_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<std::pair<std::vector<tensor>, completion>> queue_;
  int in_flight_ = 0;
  bool stop_ = false;
  std::thread worker_;
};

} // namespace

TEST_CASE("the overlapped timing keeps two runs in flight and waits for every run it started") {
  fake_session s;
  const std::vector<tensor> inputs{tensor::zeros(dtype::f32, {4, 2})};
  auto rate = time_gpu_session_overlapped(s, inputs, 4, 0.05);
  REQUIRE(rate.has_value());
  CHECK(s.started >= 3);
  CHECK(s.completed == s.started);
  CHECK(s.most_in_flight <= 2);
  CHECK(rate->items_per_second > 0);
  CHECK(rate->mean_ms > 0);
}

TEST_CASE("the overlapped timing returns a failed run's error") {
  fake_session s(2);
  const std::vector<tensor> inputs{tensor::zeros(dtype::f32, {1})};
  auto rate = time_gpu_session_overlapped(s, inputs, 1, 10.0);
  REQUIRE_FALSE(rate.has_value());
  CHECK(rate.error().message() == "run 2 failed");
  CHECK(s.completed == s.started);
}
