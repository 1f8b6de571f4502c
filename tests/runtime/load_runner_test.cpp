// Tests for the load runner on a simulated clock: honest latency under a stalled server or
// generator, closed loop, mixes, labels, and the per-second series.
#include <doctest/doctest.h>

#include <algorithm>

#include <filesystem>
#include <map>

#include "runtime/load/runner.hpp"
#include "runtime/npy.hpp"

using namespace troupe;
using namespace troupe::load;

namespace {

/// Simulated time: sleeping jumps the clock forward, firing the timers on the way in order,
/// so the "server" below answers at exact simulated times and a run takes no real time.
class sim_clock final : public load_clock {
public:
  double now() override { return now_; }
  void at(double t, std::function<void()> fn) { timers_.emplace(t, std::move(fn)); }
  void sleep_until(double t) override {
    while (!timers_.empty() && timers_.begin()->first <= t)
      fire_first();
    now_ = std::max(now_, t);
  }
  void wait_until(std::unique_lock<std::mutex>& lock, std::condition_variable&, double t,
                  const std::function<bool()>& ready) override {
    while (!ready()) {
      if (timers_.empty() || timers_.begin()->first > t) {
        now_ = std::max(now_, t);
        return;
      }
      lock.unlock(); // the timer runs a reply callback, which takes the runner's lock
      fire_first();
      lock.lock();
    }
  }

private:
  void fire_first() {
    auto it = timers_.begin();
    now_ = std::max(now_, it->first);
    auto fn = std::move(it->second);
    timers_.erase(it);
    fn();
  }
  double now_ = 1000.0;
  std::multimap<double, std::function<void()>> timers_;
};

/// A server with `servers` parallel workers (0 = unlimited) taking `service_s` per request,
/// FIFO. Answers with logits whose argmax is the first input value (for accuracy tests).
class sim_transport final : public transport {
public:
  sim_transport(sim_clock& clock, double service_s, int servers = 0)
      : clock_(clock), service_(service_s), free_at_(static_cast<size_t>(std::max(servers, 0)), 0.0) {}

  expected<model_info> describe(const std::string& model) override {
    model_info m;
    m.name = model;
    m.inputs.push_back({"x", dtype::f32, {-1, 4}});
    m.outputs.push_back({"y", dtype::f32, {-1, 10}});
    return m;
  }

  void prepare(load_request& r) override {
    clock_.sleep_until(clock_.now() + prepare_cost); // encoding, done ahead of the send
    r.wire = "prepared";
  }

  void submit(load_request r, reply_callback done) override {
    unprepared += r.wire.empty();
    ++per_model[r.model->name];
    ++per_priority[r.priority];
    clock_.sleep_until(clock_.now() + send_cost); // a slow client stalls the generator itself
    double start = clock_.now();
    if (!free_at_.empty()) {
      auto it = std::min_element(free_at_.begin(), free_at_.end());
      start = std::max(start, *it);
      *it = start + service_;
    }
    const bool reject = reject_priority && r.priority == *reject_priority;
    const float cls = r.inputs.empty() ? 0.f : r.inputs[0].data<float>()[0];
    clock_.at(start + service_, [done, reject, cls] {
      load_reply reply;
      if (reject) {
        reply.error = "http_503";
      } else {
        reply.ok = true;
        tensor logits = tensor::zeros(dtype::f32, {1, 10});
        const int c = static_cast<int>(cls);
        if (c >= 0 && c < 10)
          logits.data<float>()[c] = 1.f;
        reply.outputs.push_back(logits);
      }
      done(std::move(reply));
    });
  }

  std::string target() const override { return "sim"; }

  double send_cost = 0;
  double prepare_cost = 0;
  int unprepared = 0; // submits of requests that prepare() had not seen
  std::optional<uint32_t> reject_priority;
  std::map<std::string, int> per_model;
  std::map<uint32_t, int> per_priority;

private:
  sim_clock& clock_;
  double service_;
  std::vector<double> free_at_;
};

scenario one_phase(arrival_spec a, std::optional<double> duration, std::optional<int64_t> n) {
  scenario s;
  s.name = "t";
  s.slo_ms = 10;
  s.timeout_ms = 5000;
  s.models.push_back({"m", 1, std::nullopt});
  phase_spec p;
  p.name = "p";
  p.arrival = a;
  p.duration_s = duration;
  p.requests = n;
  s.phases.push_back(p);
  return s;
}

arrival_spec constant(double rate) {
  arrival_spec a;
  a.kind = arrival_kind::constant;
  a.rate = rate;
  return a;
}

} // namespace

TEST_CASE("runner at a constant rate against a fast server: exact counts, latency and series") {
  sim_clock clock;
  sim_transport server(clock, 0.005);
  auto s = one_phase(constant(100), 3.0, std::nullopt);
  std::vector<second_row> live;
  runner_options opt;
  opt.on_second = [&](const second_row& row, const run_result&) { live.push_back(row); };
  load_runner runner(s, server, clock, opt);
  REQUIRE(runner.prepare().is_ok());
  run_result r = runner.run();
  REQUIRE(r.phases.size() == 1);
  const auto& p = r.phases[0];
  CHECK(p.sent == 300);
  CHECK(p.ok == 300);
  CHECK(p.error_count() == 0);
  CHECK(p.latency.percentile(0.5) == 5000);
  CHECK(p.latency.max() == 5000);
  CHECK(p.within_slo == 300);
  CHECK(p.throughput() == doctest::Approx(100));
  CHECK(p.goodput() == doctest::Approx(100));
  CHECK(p.late_sends == 0);
  CHECK(r.unanswered == 0);
  REQUIRE(r.series.size() == 3);
  for (const auto& row : r.series) {
    CHECK(row.sent == 100);
    CHECK(row.ok == 100);
    CHECK(row.p50_ms == doctest::Approx(5.0));
    CHECK(row.p99_ms == doctest::Approx(5.0));
  }
  CHECK(live.size() == 3); // one live line per second, as each second closed
}

TEST_CASE("latency counts from the scheduled time when the server falls behind (no coordinated omission)") {
  sim_clock clock;
  sim_transport server(clock, 0.020, 1); // capacity 50/s
  auto s = one_phase(constant(100), 1.0, std::nullopt);
  load_runner runner(s, server, clock);
  REQUIRE(runner.prepare().is_ok());
  run_result r = runner.run();
  const auto& p = r.phases[0];
  REQUIRE(p.ok == 100);
  // Request i is scheduled at 10 i ms and answered at 20 (i + 1) ms: latency 10 i + 20 ms.
  CHECK(p.latency.min() == 20000);
  CHECK(p.latency.max() == 1010000);
  CHECK(p.percentile_ms(0.5) == doctest::Approx(510).epsilon(0.01));
  CHECK(p.within_slo == 0);
  CHECK(p.last_reply_s == doctest::Approx(2.0));
  CHECK(p.throughput() == doctest::Approx(50)); // the backlog is not throughput
  CHECK(p.late_sends == 0);                      // the generator itself kept its schedule
}

TEST_CASE("runner reports its own lag when sending is slower than the schedule") {
  sim_clock clock;
  sim_transport server(clock, 0.001);
  server.send_cost = 0.015; // each send blocks 15 ms, the schedule wants one every 10 ms
  auto s = one_phase(constant(100), std::nullopt, 50);
  load_runner runner(s, server, clock);
  REQUIRE(runner.prepare().is_ok());
  run_result r = runner.run();
  const auto& p = r.phases[0];
  CHECK(p.sent == 50);
  CHECK(p.ok == 50);
  // Send i leaves at 15 i ms instead of 10 i ms: 5 ms more behind each time.
  CHECK(p.lag_max_ms == doctest::Approx(49 * 5.0));
  CHECK(p.late_sends == 49);
  // Its latency still counts from the schedule: 5 i + 15 ms (send cost) + 1 ms (service).
  CHECK(p.latency.max() == 49 * 5000 + 16000);
}

TEST_CASE("requests are prepared (encoded) before their send time, so encoding causes no lag") {
  sim_clock clock;
  sim_transport server(clock, 0.001);
  server.prepare_cost = 0.005; // half the gap between sends
  auto s = one_phase(constant(100), std::nullopt, 50);
  load_runner runner(s, server, clock);
  REQUIRE(runner.prepare().is_ok());
  const auto result = runner.run(); // a reference into a temporary would dangle
  const auto& p = result.phases[0];
  CHECK(p.sent == 50);
  CHECK(server.unprepared == 0);
  // Only the first request, due at the phase's start, could not be ready before its time.
  CHECK(p.late_sends == 1);
  CHECK(p.lag_max_ms == doctest::Approx(5.0));
  CHECK(p.latency.min() == 1000);
  CHECK(p.percentile_ms(0.9) == doctest::Approx(1.0).epsilon(0.005));

  // Closed loop: requests wait prepared while the clients' replies are out, so a reply is
  // followed by a send at once and the latency is the service time alone.
  sim_clock clock2;
  sim_transport server2(clock2, 0.010);
  server2.prepare_cost = 0.001;
  arrival_spec a;
  a.kind = arrival_kind::closed;
  a.concurrency = 4;
  auto s2 = one_phase(a, 1.0, std::nullopt);
  load_runner runner2(s2, server2, clock2);
  REQUIRE(runner2.prepare().is_ok());
  const auto result2 = runner2.run(); // a reference into a temporary would dangle
  const auto& p2 = result2.phases[0];
  CHECK(server2.unprepared == 0);
  CHECK(p2.sent >= 380);
  // The first four were built when the phase began (1, 2, 3, 4 ms late); later ones wait ready.
  CHECK(p2.latency.max() == 14000);
  CHECK(p2.percentile_ms(0.9) == doctest::Approx(10.0).epsilon(0.01));
}

TEST_CASE("closed loop keeps exactly `concurrency` requests in flight") {
  sim_clock clock;
  sim_transport server(clock, 0.010);
  arrival_spec a;
  a.kind = arrival_kind::closed;
  a.concurrency = 4;
  auto s = one_phase(a, 1.0, std::nullopt);
  load_runner runner(s, server, clock);
  REQUIRE(runner.prepare().is_ok());
  run_result r = runner.run();
  const auto& p = r.phases[0];
  CHECK(p.sent == 400); // 4 clients x 100 round trips of 10 ms
  CHECK(p.ok == 400);
  CHECK(p.latency.max() == 10000);
  CHECK(p.throughput() == doctest::Approx(400));

  // Think time spaces each client's requests: 10 ms service + 10 ms think = 50 per client.
  sim_clock clock2;
  sim_transport server2(clock2, 0.010);
  a.think_ms = 10;
  auto s2 = one_phase(a, 1.0, std::nullopt);
  load_runner runner2(s2, server2, clock2);
  REQUIRE(runner2.prepare().is_ok());
  CHECK(runner2.run().phases[0].sent == 200);

  // A request count stops the phase; it ends when the last reply is in.
  sim_clock clock3;
  sim_transport server3(clock3, 0.010);
  a.think_ms = 0;
  auto s3 = one_phase(a, std::nullopt, 10);
  load_runner runner3(s3, server3, clock3);
  REQUIRE(runner3.prepare().is_ok());
  auto r3 = runner3.run();
  CHECK(r3.phases[0].sent == 10);
  CHECK(r3.phases[0].duration_s() == doctest::Approx(0.030)); // 4 + 4 + 2 in three rounds
}

TEST_CASE("model and priority mixes follow their weights; errors are counted by status") {
  sim_clock clock;
  sim_transport server(clock, 0.001);
  server.reject_priority = 2;
  auto s = one_phase(constant(1000), 4.0, std::nullopt);
  s.models = {{"a", 3, std::nullopt}, {"b", 1, std::nullopt}};
  s.priorities = {{1, 1}, {2, 1}};
  load_runner runner(s, server, clock);
  REQUIRE(runner.prepare().is_ok());
  run_result r = runner.run();
  const auto& p = r.phases[0];
  CHECK(p.sent == 4000);
  // Binomial(4000, 3/4): sigma 27; 5 sigma.
  CHECK(std::abs(server.per_model["a"] - 3000) < 140);
  CHECK(server.per_model["a"] + server.per_model["b"] == 4000);
  CHECK(std::abs(server.per_priority[1] - 2000) < 160);
  CHECK(p.errors.at("http_503") == static_cast<uint64_t>(server.per_priority[2]));
  CHECK(p.ok == static_cast<uint64_t>(server.per_priority[1]));
}

TEST_CASE("accuracy compares the reply's argmax with the dataset label") {
  // Records whose first value is the class the simulated server will predict; the labels
  // agree for even records only, so accuracy is exactly 1/2 over whole passes.
  const auto dir = std::filesystem::temp_directory_path() / "troupe_load_runner_test";
  std::filesystem::create_directories(dir);
  tensor x = tensor::zeros(dtype::f32, {10, 4});
  tensor y = tensor::empty(dtype::i64, {10});
  for (int i = 0; i < 10; ++i) {
    x.data<float>()[i * 4] = static_cast<float>(i);
    y.data<int64_t>()[i] = i % 2 == 0 ? i : (i + 1) % 10;
  }
  REQUIRE(save_npy((dir / "x.npy").string(), x).is_ok());
  REQUIRE(save_npy((dir / "y.npy").string(), y).is_ok());

  sim_clock clock;
  sim_transport server(clock, 0.001);
  auto s = one_phase(constant(100), std::nullopt, 40);
  s.payload.kind = payload_kind::npy;
  s.payload.images = (dir / "x.npy").string();
  s.payload.labels = (dir / "y.npy").string();
  load_runner runner(s, server, clock);
  REQUIRE(runner.prepare().is_ok());
  run_result r = runner.run();
  const auto& p = r.phases[0];
  CHECK(p.labelled == 40);
  CHECK(p.correct == 20);
  REQUIRE(p.accuracy());
  CHECK(*p.accuracy() == doctest::Approx(0.5));
  std::filesystem::remove_all(dir);
}

TEST_CASE("phases run in order and each starts where the previous one was scheduled to end") {
  sim_clock clock;
  sim_transport server(clock, 0.002);
  auto s = one_phase(constant(50), 2.0, std::nullopt);
  phase_spec second;
  second.name = "q";
  second.arrival = constant(200);
  second.duration_s = 1.0;
  s.phases.push_back(second);
  load_runner runner(s, server, clock);
  REQUIRE(runner.prepare().is_ok());
  run_result r = runner.run();
  REQUIRE(r.phases.size() == 2);
  CHECK(r.phases[0].start_s == 0.0);
  CHECK(r.phases[1].start_s == doctest::Approx(2.0));
  CHECK(r.phases[0].sent == 100);
  CHECK(r.phases[1].sent == 200);
  REQUIRE(r.series.size() == 3);
  CHECK(r.series[1].phase == 0);
  CHECK(r.series[2].phase == 1);
  CHECK(r.series[2].sent == 200);
}
