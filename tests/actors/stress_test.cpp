// stress_test: 64 concurrent requesters, 20,000 requests with random priorities and timeouts.
#include <doctest/doctest.h>

#include <atomic>
#include <mutex>

#include "actors/embedded_runtime.hpp"
#include "runtime/session.hpp"
#include "tests/actors/actor_test_util.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

constexpr int requesters = 64;
constexpr int total_requests = 20000;
constexpr int in_flight_per_requester = 4; // bounded outstanding requests per actor

struct outcome {
  uint32_t priority = 0;
  int64_t timeout_us = 0;
  std::optional<errc> error;
  bool equal = false;
};

struct shared_results {
  std::vector<std::atomic<int>> replies;
  std::vector<outcome> outcomes;
  std::vector<tensor> inputs;
  std::vector<tensor> expected;
  std::atomic<int> done{0};
  shared_results() : replies(total_requests), outcomes(total_requests) {}
};

struct requester_state {
  int next = 0;
  int end = 0;
  std::mt19937 rng;
};

caf::behavior requester(caf::stateful_actor<requester_state>* self, batcher_actor batcher,
                        std::shared_ptr<shared_results> shared, int begin, int end) {
  self->state.next = begin;
  self->state.end = end;
  self->state.rng.seed(static_cast<unsigned>(begin) * 7919u + 1);
  auto send_one = std::make_shared<std::function<void()>>();
  *send_one = [=] {
    auto& st = self->state;
    if (st.next >= st.end)
      return;
    const int index = st.next++;
    std::uniform_int_distribution<uint32_t> prio(1, 3);
    std::uniform_int_distribution<int> pick(0, 3);
    const int64_t timeouts[] = {0, 0, 1000, 20000};
    auto& o = shared->outcomes[static_cast<size_t>(index)];
    o.priority = prio(st.rng);
    o.timeout_us = timeouts[pick(st.rng)];
    const size_t input = static_cast<size_t>(index) % shared->inputs.size();
    infer_request req{{shared->inputs[input]}, o.priority, o.timeout_us,
                      static_cast<uint64_t>(index)};
    self->request(batcher, caf::infinite, atom::infer_v, std::move(req))
        .then(
            [=](infer_response& r) {
              auto& o = shared->outcomes[static_cast<size_t>(index)];
              o.equal = r.correlation_id == static_cast<uint64_t>(index) && r.outputs.size() == 1 &&
                        bitwise_equal(r.outputs[0], shared->expected[input]);
              shared->replies[static_cast<size_t>(index)]++;
              shared->done++;
              (*send_one)();
            },
            [=](caf::error& e) {
              shared->outcomes[static_cast<size_t>(index)].error = errc_of(e);
              shared->replies[static_cast<size_t>(index)]++;
              shared->done++;
              (*send_one)();
            });
  };
  for (int i = 0; i < in_flight_per_requester; ++i)
    (*send_one)();
  return {[](caf::ok_atom) {}};
}

} // namespace

TEST_CASE("stress: 64 requesters, 20,000 requests: one reply each, results bit-identical to "
          "single requests, rejects and timeouts as the policy implies") {
  test::temp_dir dir;
  auto onnx = test::seed_cnn_path();
  shape item{1, 1, 28, 28};
  if (!onnx) {
    MESSAGE("seed_cnn.onnx not exported (tools/export_models.py); using an MLP");
    onnx = dir.path / "mlp.onnx";
    test::write_mlp_onnx(*onnx, 64, 128, 10);
    item = {1, 64};
  }
  auto shared = std::make_shared<shared_results>();
  {
    auto s = session::open(onnx->string());
    REQUIRE(s);
    std::mt19937 rng(11);
    for (int i = 0; i < 32; ++i) {
      shared->inputs.push_back(test::random_rows(item, rng));
      std::vector<tensor> in{shared->inputs.back()};
      auto out = (*s)->run(in);
      REQUIRE(out);
      shared->expected.push_back(out->at(0));
    }
  }

  model_config config;
  config.max_batch_size = 32;
  config.max_batches_in_flight = 2;
  dynamic_batching_config db;
  db.preferred_batch_size = {8, 16, 32};
  db.max_queue_delay = 500us;
  db.priority_levels = 3;
  db.default_queue_policy.allow_timeout_override = true;
  queue_policy level2 = db.default_queue_policy;
  level2.max_queue_size = 48;
  queue_policy level3;
  level3.default_timeout = 2000us;
  level3.action = timeout_action::delay;
  level3.allow_timeout_override = true;
  db.priority_queue_policy = {{2, level2}, {3, level3}};
  config.dynamic_batching = db;

  test::threaded_system t;
  auto rt = embedded_runtime::start(t.sys);
  REQUIRE(rt);
  auto h = (*rt)->load_model("stress", 1, *onnx, config);
  REQUIRE(h);

  const auto started = std::chrono::steady_clock::now();
  const int per = total_requests / requesters;
  for (int r = 0; r < requesters; ++r) {
    int begin = r * per;
    int end = r == requesters - 1 ? total_requests : begin + per;
    t.sys.spawn(requester, h->batcher, shared, begin, end);
  }
  while (shared->done < total_requests &&
         std::chrono::steady_clock::now() - started < std::chrono::seconds(120))
    std::this_thread::sleep_for(5ms);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  REQUIRE(shared->done == total_requests);

  int ok = 0, mismatched = 0, rejected = 0, timed_out = 0, other = 0;
  int bad_reject = 0, bad_timeout = 0;
  for (int i = 0; i < total_requests; ++i) {
    CHECK(shared->replies[static_cast<size_t>(i)] == 1);
    const auto& o = shared->outcomes[static_cast<size_t>(i)];
    if (!o.error) {
      ++ok;
      mismatched += !o.equal;
    } else if (*o.error == errc::resource_exhausted) {
      ++rejected;
      bad_reject += o.priority != 2; // only level 2 has a queue limit
    } else if (*o.error == errc::timeout) {
      ++timed_out;
      // Level 3 delays instead of rejecting; without a timeout nothing times out.
      bad_timeout += o.priority == 3 || o.timeout_us == 0;
    } else {
      ++other;
    }
  }
  MESSAGE(fmt::format("{} requests in {:.2f} s: {} ok, {} rejected, {} timed out", total_requests,
                      seconds, ok, rejected, timed_out));
  CHECK(mismatched == 0);
  CHECK(other == 0);
  CHECK(bad_reject == 0);
  CHECK(bad_timeout == 0);
  auto s = (*rt)->status(*h);
  REQUIRE(s);
  CHECK(s->accepted + s->rejected == static_cast<uint64_t>(total_requests));
  CHECK(s->completed == static_cast<uint64_t>(ok));
  CHECK(s->timed_out == static_cast<uint64_t>(timed_out));
  CHECK(s->rejected == static_cast<uint64_t>(rejected));
  CHECK(s->failed == 0);
  CHECK(s->queued == 0);
  CHECK(ok > total_requests / 2);
}
