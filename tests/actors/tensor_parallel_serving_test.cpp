// tensor_parallel_serving_test: replicas whose stages run as tensor-parallel ranks answer like
// the unsharded session; a failing rank fails its batch once and the stage group comes back;
// the exchange hands out group tickets; config errors name the key.
#include <doctest/doctest.h>

#include <algorithm>
#include <set>

#include "actors/embedded_runtime.hpp"
#include "runtime/parallel/group_registry.hpp"
#include "runtime/session.hpp"
#include "tests/actors/serving_test_util.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

void check_tensor_parallel_matches_session(const std::string& model, shape item) {
  auto onnx = test::test_model_path(model);
  if (!onnx) {
    MESSAGE(model << ".onnx not exported (tools/export_models.py); skipped");
    return;
  }
  std::mt19937 rng(std::random_device{}());
  item[0] = 4;
  const tensor batch = test::random_rows(item, rng);
  const auto want = test::session_outputs(*onnx, batch);
  const std::vector<int64_t> rows{1, 2, 1};
  test::threaded_system t;
  struct variant {
    int64_t stages, micro;
  };
  for (auto v : {variant{1, 0}, variant{2, 2}}) {
    CAPTURE(v.stages);
    CAPTURE(v.micro);
    auto rt = test::start_on_two_devices(t.sys);
    REQUIRE(rt);
    auto h = (*rt)->load_model(model, 1, *onnx, test::one_batch_config(v.stages, 2, v.micro, 4));
    REQUIRE_MESSAGE(h, t.sys.render(h.error()));
    CHECK(h->plan.stages == v.stages);
    CHECK(h->plan.tensor_parallel == 2);
    auto st = (*rt)->status();
    REQUIRE(st);
    REQUIRE(st->replicas.size() == 1);
    const auto& rep = st->replicas[0];
    CHECK(rep.tensor_parallel == 2);
    REQUIRE(rep.devices.size() == static_cast<size_t>(v.stages * 2));
    const auto cpu_devices = std::count_if(st->devices.begin(), st->devices.end(),
                                           [](const auto& d) { return !d.cores.empty(); });
    if (cpu_devices >= 2)
      for (size_t s = 0; s < static_cast<size_t>(v.stages); ++s)
        CHECK(rep.devices[2 * s] != rep.devices[2 * s + 1]); // a stage's ranks run at once
    test::check_replies(test::infer_all(t.sys, h->batcher, test::requests_of(batch, rows)), rows,
                        want, 1e-5, t.sys);
    auto ms = (*rt)->status(*h);
    REQUIRE(ms);
    CHECK(ms->batches == 1);
    CHECK(ms->completed == 3);
    CHECK(ms->failed == 0);
  }
}

} // namespace

TEST_CASE("seed_cnn served with tensor_parallel 2, alone and as 2 stages x 2 ranks with "
          "micro-batches, answers like the unsharded session") {
  check_tensor_parallel_matches_session("seed_cnn", {1, 1, 28, 28});
}

TEST_CASE("bert_encoder served with tensor_parallel 2, alone and as 2 stages x 2 ranks with "
          "micro-batches, answers like the unsharded session") {
  check_tensor_parallel_matches_session("bert_encoder", {1, 128, 256});
}

TEST_CASE("a tensor-parallel rank that throws mid-batch: each request of the batch gets one "
          "error, no rank hangs, the restarted stage group serves the next batch") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  test::threaded_system t;
  auto rt = test::start_on_two_devices(t.sys);
  REQUIRE(rt);
  load_options lo;
  lo.fault_after_batches = 2; // rank 1 throws on the second micro-batch; rank 0 waits in a
  lo.fault_rank = 1;          // collective for it until the group is aborted
  auto h = (*rt)->load_model("mlp", 1, onnx, test::one_batch_config(1, 2, 1, 3), lo);
  REQUIRE_MESSAGE(h, t.sys.render(h.error()));
  std::mt19937 rng(std::random_device{}());
  const tensor batch = test::random_rows({3, 16}, rng);
  auto failed = test::infer_all(t.sys, h->batcher, test::requests_of(batch, {1, 1, 1}));
  for (auto& r : failed) {
    REQUIRE_FALSE(r);
    CHECK(errc_of(r.error()) == errc::unavailable);
  }
  const auto want = test::session_outputs(onnx, batch);
  test::check_replies(test::infer_all(t.sys, h->batcher, test::requests_of(batch, {1, 2})), {1, 2},
                      want, 1e-5, t.sys);
  auto ms = (*rt)->status(*h);
  REQUIRE(ms);
  CHECK(ms->failed == 3);
  CHECK(ms->completed == 2);
  auto st = (*rt)->status();
  REQUIRE(st);
  CHECK(st->replicas.at(0).restarts == 1);
}

TEST_CASE("tensor_parallel below 1 is refused naming the key, by the plan and by placement") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  test::threaded_system t;
  auto rt = test::start_on_two_devices(t.sys);
  REQUIRE(rt);
  auto h = (*rt)->load_model("mlp", 1, onnx, test::one_batch_config(1, 0, 0, 3));
  REQUIRE_FALSE(h);
  CHECK(errc_of(h.error()) == errc::invalid_argument);
  CHECK(message_of(h.error()).find("parallelism.tensor_parallel: 0") != std::string::npos);

  placement_request req;
  req.model = "mlp";
  req.onnx_path = onnx.string();
  req.stage_bytes = {1024};
  req.tensor_parallel = 0;
  caf::scoped_actor self{t.sys};
  caf::error err;
  self->request((*rt)->resource_manager(), caf::infinite, atom::place_v, req)
      .receive([&](placement&) {}, [&](caf::error& e) { err = std::move(e); });
  CHECK(errc_of(err) == errc::invalid_argument);
  CHECK(message_of(err).find("tensor_parallel 0") != std::string::npos);
}

TEST_CASE("with more ranks than devices, ranks share devices and still answer correctly") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  test::threaded_system t;
  auto rt = embedded_runtime::start(t.sys); // one CPU device
  REQUIRE(rt);
  auto h = (*rt)->load_model("mlp", 1, onnx, test::one_batch_config(1, 4, 0, 2));
  REQUIRE_MESSAGE(h, t.sys.render(h.error()));
  auto st = (*rt)->status();
  REQUIRE(st);
  CHECK(st->replicas.at(0).devices == std::vector<int32_t>{0, 0, 0, 0});
  std::mt19937 rng(std::random_device{}());
  const tensor batch = test::random_rows({2, 16}, rng);
  const auto want = test::session_outputs(onnx, batch);
  test::check_replies(test::infer_all(t.sys, h->batcher, test::requests_of(batch, {2})), {2}, want,
                      1e-5, t.sys);
}

// -- the exchange and the merger on the deterministic scheduler ------------------------------

TEST_CASE_FIXTURE(test::deterministic_system, "the exchange hands out one ticket per rank of "
                                              "distinct host groups whose ranks can be taken "
                                              "once") {
  auto ex = spawn_exchange(sys);
  std::optional<group_tickets> got;
  caf::error err;
  auto ask = [&](group_request req) {
    got.reset();
    err = caf::error{};
    sys.spawn([=, &got, &err](caf::event_based_actor* self) {
      self->request(ex, caf::infinite, atom::group_v, req)
          .then([&](group_tickets& t) { got = std::move(t); },
                [&](caf::error& e) { err = std::move(e); });
    });
    run();
  };
  ask(group_request{"host", 3, 2});
  REQUIRE(got);
  REQUIRE(got->tickets.size() == 6);
  std::set<uint64_t> ids;
  for (size_t i = 0; i < 6; ++i) {
    const auto& ticket = got->tickets[i];
    CHECK(ticket.kind == "host");
    CHECK(ticket.size == 3);
    CHECK(ticket.rank == static_cast<int32_t>(i % 3));
    CHECK(ticket.unique_id.empty());
    ids.insert(ticket.group);
  }
  REQUIRE(ids.size() == 2);
  auto& registry = group_registry::global();
  const uint64_t first = got->tickets[0].group;
  const uint64_t second = got->tickets[3].group;
  auto comm = registry.take(first, 2);
  REQUIRE(comm);
  CHECK((*comm)->rank() == 2);
  CHECK((*comm)->size() == 3);
  CHECK(registry.take(first, 2).error().code() == errc::invalid_argument); // taken already
  CHECK(registry.take(first, 3).error().code() == errc::invalid_argument);

  caf::anon_send(ex, atom::abort_v, first, std::string{"test abort"});
  run();
  CHECK(registry.aborted(first).message().find("test abort") != std::string::npos);
  caf::anon_send(ex, atom::release_v, first);
  run();
  CHECK(registry.take(first, 0).error().code() == errc::not_found);

  ask(group_request{"host", 0, 1});
  CHECK(errc_of(err) == errc::invalid_argument);
  ask(group_request{"smoke", 2, 1});
  CHECK(errc_of(err) == errc::invalid_argument);
  // Stopping the exchange releases the groups it still holds.
  caf::anon_send_exit(ex, caf::exit_reason::user_shutdown);
  run();
  CHECK(registry.take(second, 0).error().code() == errc::not_found);
}

namespace {

enum class rank_mode { ok, fail_micro_1 };

/// A stage rank: rank 0 passes its inputs on plus 1; the other ranks only report (an error on
/// micro-batch 1 in the failing mode).
shard_executor_actor::behavior_type fake_rank(shard_executor_actor::pointer self, uint32_t rank,
                                              rank_mode mode) {
  return {
    [=](atom::run, stage_job& job) {
      auto merger = caf::actor_cast<merger_actor>(job.merger);
      if (rank != 0) {
        if (mode == rank_mode::fail_micro_1 && job.micro == 1)
          job.error = to_error(errc::internal, "rank broke");
        job.values.clear();
        job.rank = rank;
        return self->send(merger, atom::merge_v, std::move(job));
      }
      for (auto& v : job.values) {
        tensor out = tensor::empty(v.type(), v.dims());
        auto src = v.values<float>();
        auto dst = out.values<float>();
        for (size_t i = 0; i < src.size(); ++i)
          dst[i] = src[i] + 1;
        v = out;
      }
      job.stage_us.push_back(10);
      if (job.next_stages.empty())
        return self->send(merger, atom::merge_v, std::move(job));
      std::vector<caf::actor> next(job.next_stages.begin(), job.next_stages.begin() + job.ranks);
      job.next_stages.erase(job.next_stages.begin(), job.next_stages.begin() + job.ranks);
      for (auto& n : next)
        self->send(caf::actor_cast<shard_executor_actor>(n), atom::run_v, job);
    },
  };
}

struct tp_merger_fixture : test::deterministic_system {
  merger_actor merger = spawn_merger(sys);
  std::vector<shard_executor_actor> ranks;
  std::vector<batch_done> answers;

  ~tp_merger_fixture() {
    caf::anon_send_exit(merger, caf::exit_reason::user_shutdown);
    for (auto& s : ranks)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    run();
  }

  /// Two stages of two ranks; row r of the batch holds r; micro-batches of one row.
  void run_batch(rank_mode stage1_rank1, int64_t total) {
    std::vector<caf::actor> handles;
    for (uint32_t s = 0; s < 2; ++s)
      for (uint32_t r = 0; r < 2; ++r) {
        ranks.push_back(sys.spawn(fake_rank, r, s == 1 ? stage1_rank1 : rank_mode::ok));
        handles.push_back(caf::actor_cast<caf::actor>(ranks.back()));
      }
    tensor x = tensor::empty(dtype::f32, {total, 1});
    for (int64_t i = 0; i < total; ++i)
      x.values<float>()[static_cast<size_t>(i)] = static_cast<float>(i);
    batch_job job{1, 0, {x}, {total}, handles, true, 1, 2};
    auto m = merger;
    auto log = &answers;
    sys.spawn([=](caf::event_based_actor* self) {
      self->request(m, caf::infinite, atom::run_v, job).then([=](batch_done& d) {
        log->push_back(std::move(d));
      });
    });
    run();
  }
};

} // namespace

TEST_CASE_FIXTURE(tp_merger_fixture, "the merger fans micro-batches out to every rank and "
                                     "answers once all ranks reported") {
  run_batch(rank_mode::ok, 3);
  REQUIRE(answers.size() == 1);
  REQUIRE_FALSE(answers[0].error);
  REQUIRE(answers[0].replies.size() == 1);
  std::vector<float> seen;
  for (float f : answers[0].replies[0].outputs.at(0).values<float>())
    seen.push_back(f);
  CHECK(seen == std::vector<float>{2.f, 3.f, 4.f}); // two stages added 1 each
  CHECK(answers[0].stage_us == std::vector<int64_t>{30, 30}); // rank 0's times only
}

TEST_CASE_FIXTURE(tp_merger_fixture, "the merger answers a batch once with the error of a "
                                     "rank that reports one, though rank 0 succeeded") {
  run_batch(rank_mode::fail_micro_1, 3);
  REQUIRE(answers.size() == 1);
  CHECK(errc_of(answers[0].error) == errc::internal);
  CHECK(sys.render(answers[0].error).find("rank broke") != std::string::npos);
}
