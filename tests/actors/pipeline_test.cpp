// pipeline_test: K-stage replicas with and without micro-batches against the unsharded session
// on real models, and one answer per batch (and request) when a stage fails or stops.
#include <doctest/doctest.h>

#include <algorithm>

#include "actors/embedded_runtime.hpp"
#include "runtime/session.hpp"
#include "tests/actors/serving_test_util.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

void check_pipelines_match_session(const std::string& model, shape item) {
  auto onnx = test::test_model_path(model);
  if (!onnx) {
    MESSAGE(model << ".onnx not exported (tools/export_models.py); skipped");
    return;
  }
  std::mt19937 rng(std::random_device{}());
  item[0] = 4;
  const tensor batch = test::random_rows(item, rng);
  const auto expected_out = test::session_outputs(*onnx, batch);
  const std::vector<int64_t> rows{1, 2, 1};
  test::threaded_system t;
  for (int64_t stages : {1, 2, 3})
    for (int64_t micro : {0, 3}) {
      CAPTURE(stages);
      CAPTURE(micro);
      auto rt = test::start_on_two_devices(t.sys);
      REQUIRE(rt);
      auto h = (*rt)->load_model(model, 1, *onnx, test::one_batch_config(stages, 1, micro, 4));
      REQUIRE_MESSAGE(h, t.sys.render(h.error()));
      CHECK(h->plan.stages == stages);
      CHECK(h->plan.boundaries.size() == static_cast<size_t>(stages - 1));
      CHECK(h->plan.stage_bytes.size() == static_cast<size_t>(stages));
      CHECK(h->plan.micro_batch == micro);
      if (stages > 1)
        CHECK(h->plan.predicted_items_per_s > 0);
      auto st = (*rt)->status();
      REQUIRE(st);
      REQUIRE(st->replicas.size() == 1);
      const auto& devices = st->replicas[0].devices;
      REQUIRE(devices.size() == static_cast<size_t>(stages));
      const auto cpu_devices = std::count_if(st->devices.begin(), st->devices.end(),
                                             [](const auto& d) { return !d.cores.empty(); });
      if (stages == 2 && cpu_devices == 2)
        CHECK(devices[0] != devices[1]); // consecutive stages on different cores
      auto replies = test::infer_all(t.sys, h->batcher, test::requests_of(batch, rows));
      int64_t begin = 0;
      for (size_t i = 0; i < rows.size(); ++i) {
        REQUIRE_MESSAGE(replies[i], t.sys.render(replies[i].error()));
        for (size_t o = 0; o < expected_out.size(); ++o) {
          auto want = expected_out[o].slice_rows(begin, begin + rows[i]);
          CHECK(relative_error(replies[i]->outputs.at(o), want) < 1e-5);
        }
        begin += rows[i];
      }
      auto ms = (*rt)->status(*h);
      REQUIRE(ms);
      CHECK(ms->batches == 1);
      CHECK(ms->completed == 3);
    }
}

} // namespace

TEST_CASE("seed_cnn served as 1, 2 and 3 stages, with and without micro-batches, answers like "
          "the unsharded session") {
  check_pipelines_match_session("seed_cnn", {1, 1, 28, 28});
}

TEST_CASE("resnet18 served as 1, 2 and 3 stages, with and without micro-batches, answers like "
          "the unsharded session") {
  check_pipelines_match_session("resnet18", {1, 3, 224, 224});
}

TEST_CASE("a stage that throws while a micro-batched batch runs: each request gets one "
          "unavailable reply, the restarted replica serves the next batch, also with exchange "
          "links between the stages") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  std::mt19937 rng(std::random_device{}());
  const tensor batch = test::random_rows({3, 16}, rng);
  const auto want = test::session_outputs(onnx, batch);
  for (bool linked : {false, true}) {
    CAPTURE(linked);
    test::threaded_system t;
    auto rt = test::start_on_two_devices(t.sys);
    REQUIRE(rt);
    load_options lo;
    lo.boundaries = {{"h"}};
    lo.fault_after_batches = 2; // stage 0 throws on the second micro-batch (after the first
                                // went on, over the link when linked)
    auto config = test::one_batch_config(1, 1, 1, 3);
    config.parallelism.exchange_links = linked;
    auto h = (*rt)->load_model("mlp", 1, onnx, config, lo);
    REQUIRE_MESSAGE(h, t.sys.render(h.error()));
    CHECK(h->plan.chosen_by == "manual");
    auto failed = test::infer_all(t.sys, h->batcher, test::requests_of(batch, {1, 1, 1}));
    for (auto& r : failed) {
      REQUIRE_FALSE(r);
      CHECK(errc_of(r.error()) == errc::unavailable);
    }
    auto ok = test::infer_all(t.sys, h->batcher, test::requests_of(batch, {1, 2}));
    REQUIRE(ok[0]);
    REQUIRE(ok[1]);
    CHECK(relative_error(ok[0]->outputs.at(0), want.at(0).slice_rows(0, 1)) < 1e-5);
    CHECK(relative_error(ok[1]->outputs.at(0), want.at(0).slice_rows(1, 3)) < 1e-5);
    auto ms = (*rt)->status(*h);
    REQUIRE(ms);
    CHECK(ms->failed == 3);
    CHECK(ms->completed == 2);
    const auto replica = (*rt)->status()->replicas.at(0);
    CHECK(replica.restarts == 1);
    CHECK(replica.links == (linked ? 1u : 0u)); // a fresh link after the restart
  }
}

// -- the merger on the deterministic scheduler, with fake stages -----------------------------

namespace {

enum class stage_mode { echo, fail_micro_1, quit_on_micro_1, scalar };

/// A stage that passes its inputs on as outputs (adding 1 to every value), records 10 µs, and
/// in the failing modes errors or stops on micro-batch 1; `scalar` answers a rank-0 output.
shard_executor_actor::behavior_type fake_stage(shard_executor_actor::pointer self,
                                               stage_mode mode) {
  return {
    [=](atom::run, stage_job& job) {
      auto merger = caf::actor_cast<merger_actor>(job.merger);
      if (job.micro == 1 && mode == stage_mode::quit_on_micro_1)
        return self->quit(caf::exit_reason::user_shutdown);
      if (job.micro == 1 && mode == stage_mode::fail_micro_1) {
        job.error = to_error(errc::internal, "stage broke");
        return self->send(merger, atom::merge_v, std::move(job));
      }
      for (auto& v : job.values) {
        if (mode == stage_mode::scalar) {
          v = tensor::scalar(1.0f);
          continue;
        }
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
      auto next = caf::actor_cast<shard_executor_actor>(job.next_stages.front());
      job.next_stages.erase(job.next_stages.begin());
      self->send(next, atom::run_v, std::move(job));
    },
  };
}

struct merger_fixture : test::deterministic_system {
  merger_actor merger = spawn_merger(sys);
  std::vector<shard_executor_actor> stages;
  std::vector<batch_done> answers;

  ~merger_fixture() {
    caf::anon_send_exit(merger, caf::exit_reason::user_shutdown);
    for (auto& s : stages)
      caf::anon_send_exit(s, caf::exit_reason::user_shutdown);
    run();
  }

  /// Runs a batch whose row r holds the value r, cut into micro-batches of `micro` rows.
  void run_batch(std::vector<stage_mode> modes, std::vector<int64_t> rows, int64_t micro) {
    std::vector<caf::actor> handles;
    for (auto m : modes) {
      stages.push_back(sys.spawn(fake_stage, m));
      handles.push_back(caf::actor_cast<caf::actor>(stages.back()));
    }
    int64_t total = 0;
    for (auto r : rows)
      total += r;
    tensor x = tensor::empty(dtype::f32, {total, 2});
    auto v = x.values<float>();
    for (int64_t i = 0; i < total * 2; ++i)
      v[static_cast<size_t>(i)] = static_cast<float>(i / 2);
    batch_job job{1, 0, {x}, rows, handles, true, micro};
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

TEST_CASE_FIXTURE(merger_fixture, "the merger reassembles micro-batches in order and splits the "
                                  "rows per request") {
  run_batch({stage_mode::echo, stage_mode::echo}, {2, 3}, 2); // micro-batches of 2, 2, 1 rows
  REQUIRE(answers.size() == 1);
  const auto& d = answers[0];
  REQUIRE_FALSE(d.error);
  REQUIRE(d.replies.size() == 2);
  CHECK(d.replies[0].outputs.at(0).dims() == shape{2, 2});
  CHECK(d.replies[1].outputs.at(0).dims() == shape{3, 2});
  std::vector<float> seen;
  for (const auto& r : d.replies)
    for (float f : r.outputs.at(0).values<float>())
      seen.push_back(f);
  std::vector<float> want;
  for (int row = 0; row < 5; ++row)
    want.insert(want.end(), {row + 2.f, row + 2.f}); // two stages added 1 each
  CHECK(seen == want);
  CHECK(d.stage_us == std::vector<int64_t>{30, 30}); // 3 micro-batches x 10 µs per stage
}

TEST_CASE_FIXTURE(merger_fixture, "the merger answers a batch once with the error of its first "
                                  "failed micro-batch") {
  run_batch({stage_mode::echo, stage_mode::fail_micro_1}, {1, 1, 1, 1}, 1);
  REQUIRE(answers.size() == 1);
  CHECK(errc_of(answers[0].error) == errc::internal);
  CHECK(sys.render(answers[0].error).find("stage broke") != std::string::npos);
  CHECK(answers[0].replies.empty());
}

TEST_CASE_FIXTURE(merger_fixture, "the merger answers a batch once with unavailable when a "
                                  "stage stops while holding its micro-batch") {
  run_batch({stage_mode::quit_on_micro_1, stage_mode::echo}, {2, 2}, 1);
  REQUIRE(answers.size() == 1);
  CHECK(errc_of(answers[0].error) == errc::unavailable);
}

TEST_CASE_FIXTURE(merger_fixture, "micro-batches whose output has no batch dimension fail their "
                                  "batch with an error instead of being concatenated") {
  run_batch({stage_mode::scalar}, {1, 1}, 1);
  REQUIRE(answers.size() == 1);
  CHECK(errc_of(answers[0].error) == errc::internal);
  CHECK(sys.render(answers[0].error).find("no batch dimension") != std::string::npos);
  CHECK(answers[0].replies.empty());
}
