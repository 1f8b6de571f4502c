// async_parallel_serving_test: pipeline stages and tensor-parallel ranks on the asynchronous
// executor (the GPU executor's actor path, here over its host implementation) answer like the
// unsplit session; a failing rank fails its batch once and its group comes back, one that cannot
// load releases the others; KIND_GPU with stages or ranks needs a GPU; on a GPU, 2 KIND_GPU
// stages (and, on two GPUs, 2 stages joined by exchange links) answer like the CPU session.
#include <doctest/doctest.h>

#include <map>

#include "actors/embedded_runtime.hpp"
#include "kernels/gpu_devices.hpp"
#include "runtime/parallel/group_registry.hpp"
#include "runtime/session.hpp"
#include "tests/actors/serving_test_util.hpp"

using namespace troupe;
using namespace std::chrono_literals;

using test::check_replies;
using test::one_batch_config;

TEST_CASE("seed_cnn on asynchronous executors as 2 stages, as 2 tensor-parallel ranks and as "
          "2 stages x 2 ranks answers like the unsplit session") {
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
  };
  for (auto v : {variant{2, 1, 0}, variant{2, 1, 2}, variant{1, 2, 0}, variant{2, 2, 2}}) {
    CAPTURE(v.stages);
    CAPTURE(v.ranks);
    CAPTURE(v.micro);
    auto rt = test::start_on_two_devices(t.sys);
    REQUIRE(rt);
    load_options async;
    async.host_async = true;
    auto h = (*rt)->load_model("seed_cnn", 1, *onnx,
                               one_batch_config(v.stages, v.ranks, v.micro, 4), async);
    REQUIRE_MESSAGE(h, t.sys.render(h.error()));
    CHECK(h->plan.stages == v.stages);
    CHECK(h->plan.tensor_parallel == v.ranks);
    auto st = (*rt)->status();
    REQUIRE(st);
    REQUIRE(st->replicas.size() == 1);
    CHECK(st->replicas[0].devices.size() == static_cast<size_t>(v.stages * v.ranks));
    CHECK(st->replicas[0].tensor_parallel == v.ranks);
    check_replies(test::infer_all(t.sys, h->batcher, test::requests_of(batch, rows)), rows, want,
                  1e-5, t.sys);
    auto ms = (*rt)->status(*h);
    REQUIRE(ms);
    CHECK(ms->batches == 1);
    CHECK(ms->completed == 3);
    CHECK(ms->failed == 0);
  }
}

TEST_CASE("an asynchronous tensor-parallel rank that throws mid-batch: each request of the "
          "batch gets one error, no rank hangs, the restarted group serves the next batch") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  test::threaded_system t;
  auto rt = test::start_on_two_devices(t.sys);
  REQUIRE(rt);
  load_options lo;
  lo.host_async = true;
  lo.fault_after_batches = 2; // rank 1 throws on the second micro-batch; rank 0 may wait in
  lo.fault_rank = 1;          // a collective for it until the group is aborted
  auto h = (*rt)->load_model("mlp", 1, onnx, one_batch_config(1, 2, 1, 3), lo);
  REQUIRE_MESSAGE(h, t.sys.render(h.error()));
  std::mt19937 rng(std::random_device{}());
  const tensor batch = test::random_rows({3, 16}, rng);
  auto failed = test::infer_all(t.sys, h->batcher, test::requests_of(batch, {1, 1, 1}));
  for (auto& r : failed) {
    REQUIRE_FALSE(r);
    CHECK(errc_of(r.error()) == errc::unavailable);
  }
  check_replies(test::infer_all(t.sys, h->batcher, test::requests_of(batch, {1, 2})), {1, 2},
                test::session_outputs(onnx, batch), 1e-5, t.sys);
  auto ms = (*rt)->status(*h);
  REQUIRE(ms);
  CHECK(ms->failed == 3);
  CHECK(ms->completed == 2);
  auto st = (*rt)->status();
  REQUIRE(st);
  CHECK(st->replicas.at(0).restarts == 1);
}

TEST_CASE("an asynchronous rank that cannot load aborts its host group: the other rank's run "
          "fails with that load error instead of waiting in its collective") {
  test::temp_dir dir;
  auto onnx = dir.path / "mlp.onnx";
  test::write_mlp_onnx(onnx);
  auto& registry = group_registry::global();
  auto group = registry.create_host_group(2);
  REQUIRE(group);
  test::threaded_system t;
  caf::scoped_actor self{t.sys};
  std::vector<async_executor_actor> ranks;
  for (int32_t r = 0; r < 2; ++r) {
    shard_spec spec;
    spec.onnx_path = (r == 0 ? onnx : dir.path / "missing.onnx").string();
    spec.backend = executor_backend::host_async;
    spec.limits.threads = 1;
    spec.group = group_ticket{*group, r, 2, "host", {}};
    ranks.push_back(spawn_async_executor(t.sys, spec));
  }
  std::mt19937 rng(std::random_device{}());
  const tensor x = test::random_rows({2, 16}, rng);
  // Built inside an actor (see async_executor_test's send_jobs: TSan and CAF).
  auto merger = caf::actor{self};
  t.sys.spawn([=](caf::event_based_actor* a) {
    for (const auto& rank : ranks) {
      stage_job job;
      job.values = {x.clone()};
      job.merger = merger;
      job.ranks = 2;
      a->send(rank, atom::run_v, std::move(job));
    }
  });
  std::map<uint32_t, std::string> errors; // rank -> its error
  for (int n = 0; n < 2; ++n)
    self->receive(
        [&](atom::merge, stage_job& job) {
          errors[job.rank] = job.error ? message_of(job.error) : "no error";
        },
        caf::after(60s) >> [&] { FAIL("a rank did not answer"); });
  REQUIRE(errors.size() == 2);
  CHECK(errors[1].starts_with("stage 0 rank 1 on a host thread: "));
  CHECK(errors[1].find("missing.onnx") != std::string::npos);
  CHECK(errors[0].starts_with("stage 0 rank 0 on a host thread: "));
  CHECK(errors[0].find("stage 0 rank 1 on a host thread") != std::string::npos);
  CHECK(errors[0].find("missing.onnx") != std::string::npos);
  for (const auto& rank : ranks)
    self->send_exit(rank, caf::exit_reason::user_shutdown);
  registry.release(*group);
}

TEST_CASE("KIND_GPU with pipeline stages, tensor parallelism or a manual cut fails at load "
          "without a GPU as unavailable, not unsupported") {
  if (list_gpus()) {
    MESSAGE("a GPU is listed here; the no-GPU error cannot be checked");
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
  struct variant {
    int64_t stages, ranks;
    bool manual;
  };
  for (auto v :
       {variant{2, 1, false}, variant{1, 2, false}, variant{2, 2, false}, variant{1, 1, true}}) {
    CAPTURE(v.stages);
    CAPTURE(v.ranks);
    CAPTURE(v.manual);
    auto config = one_batch_config(v.stages, v.ranks, 0, 4);
    config.instance_groups.push_back(instance_group{"g", 1, instance_kind::gpu, {0}});
    load_options lo;
    if (v.manual)
      lo.boundaries = {{"anything"}}; // refused before the cut is looked at
    auto h = (*rt)->load_model("m", 1, *onnx, config, lo);
    REQUIRE_FALSE(h);
    CHECK(errc_of(h.error()) == errc::unavailable);
    CHECK(message_of(h.error()).starts_with("model m: instance_group 'g' asks for KIND_GPU: "
                                            "no usable CUDA device: "));
  }
  CHECK((*rt)->models().empty());
}

TEST_CASE("seed_cnn as 2 KIND_GPU pipeline stages on GPU 0, and with exchange links (NCCL "
          "send/recv) on two GPUs, answers like the CPU session") {
  auto gpus = list_gpus();
  if (!gpus || gpus->empty()) {
    MESSAGE("no usable GPU here; skipped");
    return;
  }
  auto onnx = test::seed_cnn_path();
  if (!onnx) {
    MESSAGE("seed_cnn.onnx not exported (tools/export_models.py); skipped");
    return;
  }
  std::mt19937 rng(std::random_device{}());
  const tensor batch = test::random_rows({8, 1, 28, 28}, rng);
  const auto want = test::session_outputs(*onnx, batch);
  test::threaded_system t;
  auto rt = embedded_runtime::start(t.sys);
  REQUIRE(rt);
  for (bool linked : {false, true}) {
    CAPTURE(linked);
    if (linked && gpus->size() < 2) {
      MESSAGE("exchange links need two GPUs; that variant skipped");
      continue;
    }
    for (int64_t micro : {0, 4}) {
      CAPTURE(micro);
      const int64_t version = micro + 1 + (linked ? 10 : 0);
      auto config = one_batch_config(2, 1, micro, 8);
      config.precision = gpu_precision::fp32;
      config.parallelism.exchange_links = linked;
      config.instance_groups.push_back(instance_group{
          "gpu", 1, instance_kind::gpu, linked ? std::vector<int64_t>{0, 1} : std::vector<int64_t>{0}});
      auto h = (*rt)->load_model("seed_cnn", version, *onnx, config);
      REQUIRE_MESSAGE(h, t.sys.render(h.error()));
      if (!linked) {
        CHECK(h->plan.stages == 2);
        auto st = (*rt)->status();
        REQUIRE(st);
        bool found = false;
        for (const auto& rep : st->replicas)
          if (rep.version == version) {
            found = true;
            CHECK(rep.kind == "cuda");
            CHECK(rep.devices == std::vector<int32_t>{0, 0});
          }
        CHECK(found);
      }
      const std::vector<int64_t> rows{3, 1, 4};
      check_replies(test::infer_all(t.sys, h->batcher, test::requests_of(batch, rows)), rows,
                    want, 1e-4, t.sys);
      (void)(*rt)->unload_model("seed_cnn", version);
    }
  }
}
