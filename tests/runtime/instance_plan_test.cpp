// instance_plan_test: how instance groups resolve to GPU or CPU instances (serve::
// plan_instances), with pipeline stages and tensor parallelism on either.
#include <doctest/doctest.h>

#include "runtime/serve/instance_plan.hpp"

using namespace troupe;

namespace {

/// Probes that list `n` GPUs (none: the no-device error) and say whether the GPU backend runs
/// the model (`model`), counting the calls of each.
struct fake_gpus {
  int n = 0;
  status model = status::ok();
  int calls = 0;
  int checks = 0;
  serve::gpu_probes lister() {
    serve::gpu_probes p;
    p.list_gpus = [this]() -> expected<std::vector<gpu_device>> {
      ++calls;
      if (n == 0)
        return make_error(errc::unavailable, "no usable CUDA device: no driver");
      std::vector<gpu_device> out;
      for (int i = 0; i < n; ++i)
        out.push_back(gpu_device{i, "test GPU", 90, uint64_t{80} << 30, 0});
      return out;
    };
    p.runs_model = [this] {
      ++checks;
      return model;
    };
    return p;
  }
};

const status no_gpu_kernel{errc::unsupported, "node 'n7' (Hardmax): no GPU kernel"};

model_config with_groups(std::vector<instance_group> groups, int64_t stages, int64_t ranks) {
  model_config c;
  c.instance_groups = std::move(groups);
  c.parallelism.pipeline_stages = stages;
  c.parallelism.tensor_parallel = ranks;
  return c;
}

} // namespace

TEST_CASE("KIND_GPU with pipeline stages and tensor parallelism plans GPU instances with "
          "their GPU lists") {
  fake_gpus gpus{2};
  auto p = serve::plan_instances(
      "m", with_groups({{"a", 2, instance_kind::gpu, {1}}, {"b", 1, instance_kind::gpu, {}}}, 2, 2),
      gpus.lister());
  REQUIRE(p);
  CHECK(p->gpu);
  CHECK(p->instances == 3);
  CHECK(p->gpus == std::vector<std::vector<int32_t>>{{1}, {1}, {}});
  CHECK(gpus.calls == 1);
}

TEST_CASE("KIND_GPU without a usable GPU is unavailable and says why, once prefixed") {
  fake_gpus none{0};
  auto p = serve::plan_instances("m", with_groups({{"g", 1, instance_kind::gpu, {}}}, 2, 1),
                                 none.lister());
  REQUIRE_FALSE(p);
  CHECK(p.error().code() == errc::unavailable);
  CHECK(p.error().message() ==
        "model m: instance_group 'g' asks for KIND_GPU: no usable CUDA device: no driver");
}

TEST_CASE("KIND_AUTO serves on listed GPUs, pipelines and tensor parallelism included, else "
          "on the CPU") {
  for (int64_t stages : {1, 2})
    for (int64_t ranks : {1, 2}) {
      CAPTURE(stages);
      CAPTURE(ranks);
      fake_gpus one{1}, none{0};
      auto config = with_groups({{"any", 2, instance_kind::automatic, {}}}, stages, ranks);
      auto on_gpu = serve::plan_instances("m", config, one.lister());
      REQUIRE(on_gpu);
      CHECK(on_gpu->gpu);
      CHECK(on_gpu->gpus.size() == 2);
      auto on_cpu = serve::plan_instances("m", config, none.lister());
      REQUIRE(on_cpu);
      CHECK_FALSE(on_cpu->gpu);
      CHECK(on_cpu->instances == 2);
      CHECK(on_cpu->gpus.empty());
    }
  // No instance_group at all: one KIND_AUTO instance.
  fake_gpus one{1};
  auto p = serve::plan_instances("m", model_config{}, one.lister());
  REQUIRE(p);
  CHECK(p->gpu);
  CHECK(p->instances == 1);
}

TEST_CASE("KIND_CPU groups never list GPUs; GPU and CPU groups together are unsupported") {
  fake_gpus gpus{1};
  auto cpu = serve::plan_instances("m", with_groups({{"c", 3, instance_kind::cpu, {}}}, 1, 2),
                                   gpus.lister());
  REQUIRE(cpu);
  CHECK_FALSE(cpu->gpu);
  CHECK(cpu->instances == 3);
  CHECK(gpus.calls == 0);
  auto mixed = serve::plan_instances(
      "m", with_groups({{"g", 1, instance_kind::gpu, {}}, {"c", 1, instance_kind::cpu, {}}}, 1, 1),
      gpus.lister());
  REQUIRE_FALSE(mixed);
  CHECK(mixed.error().code() == errc::unsupported);
  CHECK(mixed.error().message().find("instance_group 'c'") != std::string::npos);
}

TEST_CASE("KIND_AUTO serves on the CPU when the GPU backend cannot run the model, and says why") {
  fake_gpus gpus{2, no_gpu_kernel};
  auto p = serve::plan_instances(
      "m", with_groups({{"a", 1, instance_kind::automatic, {}},
                        {"b", 2, instance_kind::automatic, {}}}, 1, 1),
      gpus.lister());
  REQUIRE(p);
  CHECK_FALSE(p->gpu);
  CHECK(p->instances == 3);
  CHECK(p->gpu_declined == "node 'n7' (Hardmax): no GPU kernel");
  CHECK(gpus.checks == 1); // asked once for both groups
  // Without GPUs the model is not checked at all, and nothing is declined.
  fake_gpus none{0, no_gpu_kernel};
  auto cpu = serve::plan_instances("m", model_config{}, none.lister());
  REQUIRE(cpu);
  CHECK_FALSE(cpu->gpu);
  CHECK(cpu->gpu_declined.empty());
  CHECK(none.checks == 0);
  // A model the backend runs goes to the GPU, with nothing declined.
  fake_gpus fine{1};
  auto gpu = serve::plan_instances("m", model_config{}, fine.lister());
  REQUIRE(gpu);
  CHECK(gpu->gpu);
  CHECK(gpu->gpu_declined.empty());
  CHECK(fine.checks == 1);
}

TEST_CASE("KIND_GPU for a model the GPU backend cannot run fails at load naming the node") {
  fake_gpus gpus{1, no_gpu_kernel};
  auto p = serve::plan_instances("m", with_groups({{"g", 1, instance_kind::gpu, {}}}, 1, 1),
                                 gpus.lister());
  REQUIRE_FALSE(p);
  CHECK(p.error().code() == errc::unsupported);
  CHECK(p.error().message() ==
        "model m: instance_group 'g' asks for KIND_GPU: node 'n7' (Hardmax): no GPU kernel");
  // KIND_CPU never asks.
  auto cpu = serve::plan_instances("m", with_groups({{"c", 1, instance_kind::cpu, {}}}, 1, 1),
                                   gpus.lister());
  REQUIRE(cpu);
  CHECK(gpus.checks == 1);
}
