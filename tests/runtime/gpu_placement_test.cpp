// Tests for GPU replica placement: balance by replicas and free memory, the instance's GPU
// list, memory limits, and how many would fit.
#include <doctest/doctest.h>

#include "runtime/serve/gpu_placement.hpp"

using namespace troupe::serve;

namespace {

constexpr uint64_t gib = uint64_t{1} << 30;

/// The GPU of each one-shard replica.
std::vector<size_t> placed(const std::variant<std::vector<std::vector<size_t>>, int64_t>& r) {
  REQUIRE(std::holds_alternative<std::vector<std::vector<size_t>>>(r));
  std::vector<size_t> out;
  for (const auto& replica : std::get<0>(r)) {
    REQUIRE(replica.size() == 1);
    out.push_back(replica[0]);
  }
  return out;
}

/// One shard of `bytes`.
std::vector<uint64_t> one(uint64_t bytes) { return {bytes}; }

} // namespace

TEST_CASE("GPU placement spreads replicas over the GPUs first, then shares them") {
  std::vector<gpu_load> gpus{{0, 80 * gib, 0, 0}, {1, 80 * gib, 0, 0}};
  CHECK(placed(place_gpu_replicas(gpus, {}, 4, one(10 * gib))) == std::vector<size_t>{0, 1, 0, 1});
}

TEST_CASE("GPU placement takes the GPU with the most free memory among the least loaded") {
  std::vector<gpu_load> gpus{{0, 80 * gib, 50 * gib, 1}, {1, 80 * gib, 10 * gib, 1},
                             {2, 40 * gib, 0, 1}};
  // Free: 30, 70 and 40 GiB; after the first replica GPU 1 has two, the others one each.
  CHECK(placed(place_gpu_replicas(gpus, {}, 2, one(5 * gib))) == std::vector<size_t>{1, 2});
}

TEST_CASE("GPU placement uses only the GPUs an instance lists; an empty list allows all") {
  std::vector<gpu_load> gpus{{0, 80 * gib, 0, 0}, {3, 80 * gib, 0, 0}};
  CHECK(placed(place_gpu_replicas(gpus, {{3}, {3}, {}}, 3, one(gib))) ==
        std::vector<size_t>{1, 1, 0});
}

TEST_CASE("GPU placement says how many replicas fit when memory runs out") {
  std::vector<gpu_load> gpus{{0, 24 * gib, 4 * gib, 0}, {1, 16 * gib, 0, 0}};
  // 20 GiB free on GPU 0 holds two replicas of 9 GiB, GPU 1 one: the fourth does not fit.
  auto r = place_gpu_replicas(gpus, {}, 4, one(9 * gib));
  REQUIRE(std::holds_alternative<int64_t>(r));
  CHECK(std::get<int64_t>(r) == 3);
  // A replica restricted to a GPU that cannot hold it does not fit either.
  auto listed = place_gpu_replicas(gpus, {{1}, {1}}, 2, one(9 * gib));
  REQUIRE(std::holds_alternative<int64_t>(listed));
  CHECK(std::get<int64_t>(listed) == 1);
}

TEST_CASE("a stage link may not join two shards on one GPU: the first such stage is named") {
  const std::vector<int32_t> spread{0, 1, 2};
  CHECK_FALSE(link_within_one_gpu(spread, 3, 1));
  const std::vector<int32_t> shared{0, 1, 0};     // stages 0 and 2 share a GPU: not linked
  CHECK_FALSE(link_within_one_gpu(shared, 3, 1));
  const std::vector<int32_t> neighbours{0, 1, 1}; // stage 1 to stage 2 on cuda:1
  CHECK(link_within_one_gpu(neighbours, 3, 1) == size_t{1});
  // Two ranks per stage: stage 0's rank 0 sends to both ranks of stage 1.
  const std::vector<int32_t> ranks_ok{0, 1, 2, 3};
  CHECK_FALSE(link_within_one_gpu(ranks_ok, 2, 2));
  const std::vector<int32_t> rank_on_sender{0, 1, 1, 0}; // stage 1 rank 1 on the sender's GPU
  CHECK(link_within_one_gpu(rank_on_sender, 2, 2) == size_t{0});
  const std::vector<int32_t> one_stage{0, 0};
  CHECK_FALSE(link_within_one_gpu(one_stage, 1, 2)); // no link at all
}

TEST_CASE("with stage links, a stage's shards avoid the GPU of the previous stage's rank 0") {
  // 2 stages x 2 ranks on 3 GPUs: filling by balance alone puts stage 1's rank 1 back on
  // cuda:0, where stage 0's rank 0 sends from.
  std::vector<gpu_load> gpus{{0, 10 * gib}, {1, 10 * gib}, {2, 10 * gib}};
  const std::vector<uint64_t> shards{gib, gib, gib, gib};
  auto as_gpus = [&](const std::vector<size_t>& positions) {
    std::vector<int32_t> out;
    for (size_t p : positions)
      out.push_back(gpus[p].index);
    return out;
  };
  auto balanced = place_gpu_replicas(gpus, {}, 1, shards);
  REQUIRE(std::holds_alternative<std::vector<std::vector<size_t>>>(balanced));
  const auto plain = as_gpus(std::get<0>(balanced).at(0));
  CHECK(plain == std::vector<int32_t>{0, 1, 2, 0});
  CHECK(link_within_one_gpu(plain, 2, 2) == size_t{0});
  auto linked = place_gpu_replicas(gpus, {}, 1, shards, 2);
  REQUIRE(std::holds_alternative<std::vector<std::vector<size_t>>>(linked));
  const auto spread = as_gpus(std::get<0>(linked).at(0));
  CHECK(spread == std::vector<int32_t>{0, 1, 2, 1});
  CHECK_FALSE(link_within_one_gpu(spread, 2, 2));
}
