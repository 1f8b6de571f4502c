// stage_link_serving_test: with parallelism.stage_transport exchange, a replica's stages hand
// their activations over exchange links (send/recv on the host communicator here, NCCL between
// GPUs) and the messages carry only what went there; answers equal the unsplit session, on the
// detached and the asynchronous executors, with tensor-parallel ranks and micro-batches; bad
// descriptions and a stage that cannot load fail what they should. (A stage that dies and its
// replica's restart: pipeline_test; linked GPU stages: async_parallel_serving_test.)
#include <doctest/doctest.h>

#include "actors/embedded_runtime.hpp"
#include "kernels/gpu_devices.hpp"
#include "runtime/parallel/group_registry.hpp"
#include "runtime/serve/pipeline_plan.hpp"
#include "runtime/session.hpp"
#include "tests/actors/serving_test_util.hpp"

using namespace troupe;
using namespace std::chrono_literals;

namespace {

/// Stage `stage` of an MLP cut after "h" (`onnx`), on `backend`, linked over host group `link`:
/// stage 0 sends (link rank 0), stage 1 receives (link rank 1).
shard_spec linked_stage(const std::string& onnx, int stage, executor_backend backend,
                        uint64_t link) {
  shard_spec spec;
  spec.onnx_path = onnx;
  spec.boundaries = {{"h"}};
  spec.stage = stage;
  spec.backend = backend;
  spec.limits.threads = 1;
  (stage == 0 ? spec.link_out : spec.link_in) =
      group_ticket{link, stage == 0 ? 0 : 1, 2, "host", {}};
  return spec;
}

model_config linked_config(int64_t stages, int64_t ranks, int64_t micro, int64_t max_batch) {
  auto c = test::one_batch_config(stages, ranks, micro, max_batch);
  c.parallelism.exchange_links = true;
  return c;
}

} // namespace

TEST_CASE("seed_cnn with exchange links between its stages answers like the unsplit session, "
          "on detached and asynchronous executors, with ranks and micro-batches") {
  auto onnx = test::seed_cnn_path();
  if (!onnx) {
    MESSAGE("seed_cnn.onnx not exported (tools/export_models.py); skipped");
    return;
  }
  std::mt19937 rng(std::random_device{}());
  const tensor batch = test::random_rows({4, 1, 28, 28}, rng);
  const auto want = test::session_outputs(*onnx, batch);
  const std::vector<int64_t> rows{1, 2, 1};
  test::threaded_system t;
  struct variant {
    int64_t stages, ranks, micro;
    bool host_async;
  };
  for (auto v : {variant{2, 1, 0, false}, variant{3, 1, 2, false}, variant{2, 2, 2, false},
                 variant{2, 1, 2, true}, variant{2, 2, 0, true}}) {
    CAPTURE(v.stages);
    CAPTURE(v.ranks);
    CAPTURE(v.micro);
    CAPTURE(v.host_async);
    auto rt = test::start_on_two_devices(t.sys);
    REQUIRE(rt);
    load_options lo;
    lo.host_async = v.host_async;
    auto h = (*rt)->load_model("seed_cnn", 1, *onnx,
                               linked_config(v.stages, v.ranks, v.micro, 4), lo);
    REQUIRE_MESSAGE(h, t.sys.render(h.error()));
    REQUIRE(h->plan.stages == v.stages);
    auto st = (*rt)->status();
    REQUIRE(st);
    REQUIRE(st->replicas.size() == 1);
    CHECK(st->replicas[0].links == static_cast<uint32_t>(v.stages - 1));
    test::check_replies(test::infer_all(t.sys, h->batcher, test::requests_of(batch, rows)), rows,
                        want, 1e-5, t.sys);
    auto ms = (*rt)->status(*h);
    REQUIRE(ms);
    CHECK(ms->completed == 3);
    CHECK(ms->failed == 0);
  }
}

TEST_CASE("a linked stage sends its outputs over the link and only their dims in the message; "
          "the next stage runs on what it receives") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx); // x[.,16] -> h[.,32] -> y[.,8]; cut after h
  const std::vector<std::vector<std::string>> cut{{"h"}};
  std::mt19937 rng(std::random_device{}());
  const tensor x = test::random_rows({3, 16}, rng);
  auto stage_outputs = [&](size_t stage, const tensor& in) {
    auto g = serve::load_rank_graph(onnx.string(), cut, stage, 0, 1);
    REQUIRE(g);
    auto s = session::from_graph(std::move(*g));
    REQUIRE(s);
    std::vector<tensor> inputs{in};
    auto out = (*s)->run(inputs);
    REQUIRE(out);
    return *out;
  };
  const tensor h = stage_outputs(0, x).at(0);
  const tensor y = stage_outputs(1, h).at(0);
  for (auto backend : {executor_backend::cpu, executor_backend::host_async}) {
    CAPTURE(static_cast<int>(backend));
    auto& registry = group_registry::global();
    auto link = registry.create_host_group(2);
    REQUIRE(link);
    test::threaded_system t;
    caf::scoped_actor self{t.sys};
    // Stage 0 hands its job on to this test (as the next stage): values empty, dims in the
    // message. The test passes that job on to stage 1, whose answer reaches the test as the
    // merger.
    auto first = spawn_shard_executor(t.sys, linked_stage(onnx.string(), 0, backend, *link));
    auto second = spawn_shard_executor(t.sys, linked_stage(onnx.string(), 1, backend, *link));
    auto me = caf::actor{self};
    // Jobs are built inside an actor (see async_executor_test's send_jobs: TSan and CAF).
    auto send_linked = [&](auto target, std::vector<uint8_t> types,
                           std::vector<std::vector<int64_t>> dims) {
      t.sys.spawn([=](caf::event_based_actor* a) {
        stage_job job;
        job.merger = me;
        job.linked_types = types;
        job.linked_dims = dims;
        a->send(target, atom::run_v, std::move(job));
      });
    };
    auto through_both = [&] {
      t.sys.spawn([=](caf::event_based_actor* a) {
        stage_job job;
        job.values = {x.clone()};
        job.next_stages = {me};
        job.merger = me;
        a->send(first, atom::run_v, std::move(job));
      });
      stage_job passed;
      self->receive([&](atom::run, stage_job& j) { passed = std::move(j); },
                    caf::after(60s) >> [&] { FAIL("stage 0 passed nothing on"); });
      CHECK(passed.values.empty());
      CHECK(passed.linked_types == std::vector<uint8_t>{static_cast<uint8_t>(dtype::f32)});
      CHECK(passed.linked_dims == std::vector<std::vector<int64_t>>{{3, 32}});
      CHECK_FALSE(passed.error);
      send_linked(second, passed.linked_types, passed.linked_dims);
      self->receive(
          [&](atom::merge, stage_job& j) {
            REQUIRE_MESSAGE(!j.error, t.sys.render(j.error));
            REQUIRE(j.values.size() == 1);
            CHECK(relative_error(j.values[0], y) < 1e-6);
          },
          caf::after(60s) >> [&] { FAIL("stage 1 did not answer"); });
    };
    through_both();
    // A linked job for a stage without a link from the previous stage: nothing was sent to
    // it, so only the job fails, and the stage serves on.
    send_linked(first, {static_cast<uint8_t>(dtype::f32)}, {{3, 16}});
    self->receive(
        [&](atom::merge, stage_job& j) {
          REQUIRE(j.error);
          CHECK(message_of(j.error).find("has none from the previous stage") != std::string::npos);
        },
        caf::after(60s) >> [&] { FAIL("the job was not failed"); });
    through_both();
    // A message whose values do not fit the stage (int64 for its float input): they are not
    // received, so the link is out of step and the stage stops (its replica would restart
    // with fresh links) instead of taking them for the next job.
    self->monitor(second);
    send_linked(second, {static_cast<uint8_t>(dtype::i64)}, {{3, 32}});
    self->receive(
        [&](caf::down_msg& down) {
          CHECK(t.sys.render(down.reason).find("linked value 0 is int64") != std::string::npos);
        },
        caf::after(60s) >> [&] { FAIL("the stage did not stop"); });
    self->send_exit(first, caf::exit_reason::user_shutdown);
    self->send_exit(second, caf::exit_reason::user_shutdown);
    registry.release(*link);
  }
}

TEST_CASE("a linked stage that cannot load aborts its link: the batch fails with its load error "
          "instead of the sender stopping") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  for (auto backend : {executor_backend::cpu, executor_backend::host_async}) {
    CAPTURE(static_cast<int>(backend));
    auto& registry = group_registry::global();
    auto link = registry.create_host_group(2);
    REQUIRE(link);
    test::threaded_system t;
    caf::scoped_actor self{t.sys};
    auto first = spawn_shard_executor(t.sys, linked_stage(onnx.string(), 0, backend, *link));
    auto second = spawn_shard_executor(
        t.sys, linked_stage((dir.path / "missing.onnx").string(), 1, backend, *link));
    std::mt19937 rng(std::random_device{}());
    const tensor x = test::random_rows({2, 16}, rng);
    auto me = caf::actor{self};
    auto next = caf::actor_cast<caf::actor>(second);
    // Whether a send came before the abort (the receiver fails the job) or after it (the
    // sender fails it), each batch fails once with the load error; the second one shows that
    // the sender did not stop.
    for (int batch = 0; batch < 2; ++batch) {
      CAPTURE(batch);
      t.sys.spawn([=](caf::event_based_actor* a) {
        stage_job job;
        job.values = {x.clone()};
        job.next_stages = {next};
        job.merger = me;
        a->send(first, atom::run_v, std::move(job));
      });
      self->receive(
          [&](atom::merge, stage_job& job) {
            REQUIRE(job.error);
            CHECK(message_of(job.error).find("missing.onnx") != std::string::npos);
          },
          caf::after(60s) >> [&] { FAIL("the batch was not failed"); });
    }
    self->send_exit(first, caf::exit_reason::user_shutdown);
    self->send_exit(second, caf::exit_reason::user_shutdown);
    registry.release(*link);
  }
}

TEST_CASE("KIND_GPU stages with exchange links on one GPU fail at load: NCCL needs a GPU per "
          "stage") {
  auto gpus = list_gpus();
  if (!gpus || gpus->size() != 1) {
    MESSAGE("needs exactly one GPU; skipped");
    return;
  }
  auto onnx = test::seed_cnn_path();
  if (!onnx) {
    MESSAGE("seed_cnn.onnx not exported (tools/export_models.py); skipped");
    return;
  }
  test::threaded_system t;
  auto rt = embedded_runtime::start(t.sys);
  REQUIRE(rt);
  auto config = linked_config(2, 1, 0, 8);
  config.instance_groups.push_back(instance_group{"gpu", 1, instance_kind::gpu, {0}});
  auto h = (*rt)->load_model("seed_cnn", 1, *onnx, config);
  REQUIRE_FALSE(h);
  CHECK(errc_of(h.error()) == errc::invalid_argument);
  CHECK(message_of(h.error()).find("both on cuda:0") != std::string::npos);
}
