// gpu_shard_placement_test: GPU replicas of several shards (pipeline stages, tensor-parallel
// ranks): distinct GPUs per replica while there are enough, sharing otherwise, memory limits.
#include <doctest/doctest.h>

#include "runtime/serve/gpu_placement.hpp"

using namespace troupe::serve;

namespace {

constexpr uint64_t gib = uint64_t{1} << 30;

using per_replica = std::vector<std::vector<size_t>>;

per_replica placed(const std::variant<per_replica, int64_t>& r) {
  REQUIRE(std::holds_alternative<per_replica>(r));
  return std::get<per_replica>(r);
}

} // namespace

TEST_CASE("the shards of a GPU replica go to distinct GPUs, and replicas spread over the rest") {
  std::vector<gpu_load> gpus{
      {0, 80 * gib, 0, 0}, {1, 80 * gib, 0, 0}, {2, 80 * gib, 0, 0}, {3, 80 * gib, 0, 0}};
  const std::vector<uint64_t> stages{10 * gib, 10 * gib};
  CHECK(placed(place_gpu_replicas(gpus, {}, 2, stages)) == per_replica{{0, 1}, {2, 3}});
}

TEST_CASE("with fewer GPUs than shards, a replica's shards share GPUs, least loaded first") {
  std::vector<gpu_load> one{{0, 80 * gib, 0, 0}};
  CHECK(placed(place_gpu_replicas(one, {}, 1, std::vector<uint64_t>{gib, gib})) ==
        per_replica{{0, 0}});
  // 2 stages x 2 ranks on 3 GPUs: the fourth shard goes to the GPU with the fewest shards of
  // this replica, then overall (GPU 2 already holds one of another model), so to GPU 0.
  std::vector<gpu_load> three{{0, 80 * gib, 0, 0}, {1, 80 * gib, 0, 0}, {2, 80 * gib, gib, 1}};
  CHECK(placed(place_gpu_replicas(three, {}, 1, std::vector<uint64_t>(4, gib))) ==
        per_replica{{0, 1, 2, 0}});
}

TEST_CASE("GPU shard placement keeps to the instance's GPU list and says how many replicas fit") {
  std::vector<gpu_load> gpus{{0, 30 * gib, 0, 0}, {5, 30 * gib, 0, 0}};
  const std::vector<uint64_t> stages{8 * gib, 12 * gib};
  CHECK(placed(place_gpu_replicas(gpus, {{5}}, 1, stages)) == per_replica{{1, 1}});
  // Replicas 0 and 1 each put 8 GiB on GPU 0 and 12 on GPU 5 (16 and 24 GiB planned); the
  // third's 8 GiB stage still fits on GPU 0, its 12 GiB one nowhere.
  auto r = place_gpu_replicas(gpus, {}, 3, stages);
  REQUIRE(std::holds_alternative<int64_t>(r));
  CHECK(std::get<int64_t>(r) == 2);
}
