// supervision_test: a replica restart that needs groups (a tensor-parallel stage, a replica
// with exchange links) and is refused them is tried again after the backoff and serves again;
// refused past its retries, the replica is reported down and its batcher answers
// `unavailable` at once instead of holding requests; two stages of one replica that restart
// together both come back; a stale retry is dropped; a replica's merger is restarted too.
#include <doctest/doctest.h>

#include <set>

#include "actors/embedded_runtime.hpp"
#include "tests/actors/serving_test_util.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

struct variant {
  const char* name;
  int64_t ranks;
  bool linked;
};
// A tensor-parallel stage restarts as its group of ranks; a linked replica restarts whole.
const variant variants[] = {{"tensor-parallel stage", 2, false}, {"linked stages", 1, true}};

/// A runtime whose restarts are refused their groups `refused` times, retried after `first`,
/// twice that, ... at most `retries` times.
std::unique_ptr<embedded_runtime> start_refusing(caf::actor_system& sys, uint32_t refused,
                                                 uint32_t retries,
                                                 std::chrono::milliseconds first = 1ms) {
  runtime_options o;
  o.resources.cpu_devices = 2;
  o.resources.refuse_restart_groups = refused;
  o.resources.restart_backoff.first = first;
  o.resources.restart_backoff.retries = retries;
  auto rt = embedded_runtime::start(sys, o);
  if (!rt) {
    o.resources.cpu_devices = 1;
    rt = embedded_runtime::start(sys, o);
  }
  REQUIRE_MESSAGE(rt, sys.render(rt.error()));
  return std::move(*rt);
}

/// Loads the two-layer MLP as `v` whose first executor throws on its second micro-batch, and
/// runs the batch it fails (three unavailable replies).
model_handle load_and_fail_once(caf::actor_system& sys, embedded_runtime& rt,
                                const std::filesystem::path& onnx, const variant& v,
                                const tensor& batch) {
  load_options lo;
  if (v.linked)
    lo.boundaries = {{"h"}};
  lo.fault_after_batches = 2;
  lo.fault_rank = static_cast<int32_t>(v.ranks - 1);
  auto config = test::one_batch_config(1, v.ranks, 1, 3);
  config.parallelism.exchange_links = v.linked;
  auto h = rt.load_model("mlp", 1, onnx, config, lo);
  REQUIRE_MESSAGE(h, sys.render(h.error()));
  for (auto& r : test::infer_all(sys, h->batcher, test::requests_of(batch, {1, 1, 1}))) {
    REQUIRE_FALSE(r);
    CHECK(errc_of(r.error()) == errc::unavailable);
  }
  return std::move(*h);
}

/// Places the MLP (as stages x ranks executors, cut after "h" into two stages) with the
/// resource manager directly, `self` standing in for the batcher: it gets lost and restarted.
placement place_for(caf::scoped_actor& self, embedded_runtime& rt,
                    const std::filesystem::path& onnx, size_t stages, int32_t ranks) {
  placement_request req;
  req.model = "mlp";
  req.onnx_path = onnx.string();
  if (stages == 2)
    req.boundaries = {{"h"}};
  req.stage_bytes.assign(stages, 1024);
  req.tensor_parallel = ranks;
  req.max_batch_size = 4;
  req.owner = caf::actor{self};
  placement placed;
  self->request(rt.resource_manager(), caf::infinite, atom::place_v, req)
      .receive([&](placement& p) { placed = std::move(p); },
               [&](caf::error& e) { FAIL(self->system().render(e)); });
  REQUIRE(placed.replicas.size() == 1);
  return placed;
}

/// Requests that give up after 60 s in the queue, so a replica that never comes back fails
/// the test instead of hanging it.
std::vector<infer_request> bounded(std::vector<infer_request> reqs) {
  for (auto& r : reqs)
    r.timeout_us = 60'000'000;
  return reqs;
}

} // namespace

TEST_CASE("a restart refused its groups twice is tried again after the backoff and serves") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  std::mt19937 rng(std::random_device{}());
  const tensor batch = test::random_rows({3, 16}, rng);
  const auto want = test::session_outputs(onnx, batch);
  for (const auto& v : variants) {
    CAPTURE(v.name);
    test::threaded_system t;
    auto rt = start_refusing(t.sys, 2, 8);
    auto h = load_and_fail_once(t.sys, *rt, onnx, v, batch);
    test::check_replies(test::infer_all(t.sys, h.batcher,
                                        bounded(test::requests_of(batch, {1, 2}))),
                        {1, 2}, want, 1e-5, t.sys);
    const auto replica = rt->status()->replicas.at(0);
    CHECK(replica.restarts == 1);
    CHECK(replica.state == "serving");
    CHECK(replica.error.empty());
    auto ms = rt->status(h);
    REQUIRE(ms);
    CHECK(ms->failed == 3);
    CHECK(ms->completed == 2);
    CHECK(ms->unavailable.empty());
  }
}

TEST_CASE("a restart refused past its retries reports the replica down; its batcher answers "
          "unavailable with the reason at once, queued or new") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  std::mt19937 rng(std::random_device{}());
  const tensor batch = test::random_rows({3, 16}, rng);
  for (const auto& v : variants) {
    CAPTURE(v.name);
    test::threaded_system t;
    auto rt = start_refusing(t.sys, 100, 2);
    auto h = load_and_fail_once(t.sys, *rt, onnx, v, batch);
    // Sent while the restart is still tried (queued, then answered when it gives up) or after
    // (refused at admission): the same error either way, long before the 60 s deadline.
    for (auto& r : test::infer_all(t.sys, h.batcher, bounded(test::requests_of(batch, {1, 2})))) {
      REQUIRE_FALSE(r);
      CHECK(errc_of(r.error()) == errc::unavailable);
      CHECK(message_of(r.error()).find("model mlp has no replica left: replica 0: its restart "
                                       "could not get its groups in 3 tries") !=
            std::string::npos);
      CHECK(message_of(r.error()).find("(injected)") != std::string::npos);
    }
    const auto replica = rt->status()->replicas.at(0);
    CHECK(replica.restarts == 1);
    CHECK(replica.state == "down");
    CHECK(replica.error.find("in 3 tries") != std::string::npos);
    auto ms = rt->status(h);
    REQUIRE(ms);
    CHECK(ms->timed_out == 0);
    CHECK(ms->failed + ms->rejected == 3 + 2);
    CHECK(ms->replicas == 0);
    // What the HTTP frontend reports as the model's readiness (ready while this is empty).
    CHECK(ms->unavailable.find("model mlp has no replica left: replica 0") != std::string::npos);
  }
}

TEST_CASE("two tensor-parallel stages of one replica that lose a rank together both restart, "
          "each retried on its own, and the batcher gets a route with every rank new") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  test::threaded_system t;
  // Each stage's first request is refused and retried 50 ms later, so both restarts are in
  // progress at once: one must not drop the other's retry.
  auto rt = start_refusing(t.sys, 2, 8, 50ms);
  caf::scoped_actor self{t.sys};
  const auto before = place_for(self, *rt, onnx, 2, 2).replicas[0].stages; // [stage * 2 + rank]
  REQUIRE(before.size() == 4);
  self->send_exit(before[0], caf::exit_reason::user_shutdown); // stage 0, rank 0
  self->send_exit(before[2], caf::exit_reason::user_shutdown); // stage 1, rank 0
  // Routes that still hold a rank of the first placement may come while the second stage's
  // loss is not yet seen; the last route must hold only new ranks.
  std::set<caf::actor> old(before.begin(), before.end());
  int lost = 0;
  bool all_new = false;
  while (!all_new)
    self->receive(
        [&](atom::lost, uint32_t slot, const std::string&) {
          CHECK(slot == 0);
          ++lost;
        },
        [&](atom::restarted, const replica_route& route) {
          REQUIRE(route.stages.size() == 4);
          all_new = std::none_of(route.stages.begin(), route.stages.end(),
                                 [&](const caf::actor& a) { return !a || old.count(a); });
        },
        caf::after(30s) >> [&] { FAIL("no route with every rank restarted"); });
  CHECK(lost == 2);
  const auto replica = rt->status()->replicas.at(0);
  CHECK(replica.restarts == 2);
  CHECK(replica.state == "serving");
  self->send(rt->resource_manager(), atom::retire_v, std::string{"mlp"}, int64_t{1});
}

TEST_CASE("a restart retry for a replica that no longer exists is dropped; the manager serves on") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  test::threaded_system t;
  auto rt = start_refusing(t.sys, 0, 8);
  auto h = rt->load_model("mlp", 1, onnx, test::one_batch_config(1, 2, 0, 2));
  REQUIRE_MESSAGE(h, t.sys.render(h.error()));
  // As a retry still pending when its model was unloaded and loaded again with one replica.
  for (uint32_t slot : {0u, 5u})
    caf::anon_send(rt->resource_manager(), atom::restart_v, std::string{"mlp"}, int64_t{1}, slot,
                   uint32_t{0}, uint64_t{12345});
  caf::anon_send(rt->resource_manager(), atom::restart_v, std::string{"gone"}, int64_t{3},
                 uint32_t{0}, uint32_t{0}, uint64_t{1});
  auto st = rt->status();
  REQUIRE_MESSAGE(st, t.sys.render(st.error()));
  REQUIRE(st->replicas.size() == 1);
  CHECK(st->replicas[0].state == "serving");
  CHECK(st->replicas[0].restarts == 0);
}

TEST_CASE("a replica whose merger stops gets a new merger for the same executors, and a batch "
          "runs through it") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  test::threaded_system t;
  auto rt = start_refusing(t.sys, 0, 8);
  caf::scoped_actor self{t.sys};
  const auto before = place_for(self, *rt, onnx, 1, 1).replicas[0];
  self->send_exit(before.merger, caf::exit_reason::user_shutdown);
  std::string why;
  replica_route after;
  self->receive([&](atom::lost, uint32_t, const std::string& w) { why = w; },
                caf::after(30s) >> [&] { FAIL("no lost"); });
  CHECK(why.find("merger stopped") != std::string::npos);
  self->receive([&](atom::restarted, const replica_route& r) { after = r; },
                caf::after(30s) >> [&] { FAIL("no restarted"); });
  REQUIRE(after.merger);
  CHECK(after.merger != before.merger);
  CHECK(after.stages == before.stages); // the executors kept running
  CHECK(rt->status()->replicas.at(0).restarts == 1);
  std::mt19937 rng(std::random_device{}());
  const tensor x = test::random_rows({2, 16}, rng);
  const auto want = test::session_outputs(onnx, x);
  batch_job job{1, 0, {x}, {1, 1}, after.stages, true, 0};
  self->request(caf::actor_cast<merger_actor>(after.merger), caf::infinite, atom::run_v, job)
      .receive(
          [&](batch_done& d) {
            REQUIRE_FALSE(d.error);
            REQUIRE(d.replies.size() == 2);
            CHECK(relative_error(d.replies[1].outputs.at(0), want.at(0).slice_rows(1, 2)) < 1e-5);
          },
          [&](caf::error& e) { FAIL(t.sys.render(e)); });
  self->send(rt->resource_manager(), atom::retire_v, std::string{"mlp"}, int64_t{1});
}
