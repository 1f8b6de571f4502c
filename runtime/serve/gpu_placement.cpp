// gpu_placement: greedy placement of the shards of GPU replicas.
#include "runtime/serve/gpu_placement.hpp"
#include "runtime/serve/stage_link.hpp"

#include <algorithm>
#include <limits>
#include <tuple>

namespace troupe::serve {

std::variant<std::vector<std::vector<size_t>>, int64_t>
place_gpu_replicas(std::vector<gpu_load> gpus, const std::vector<std::vector<int32_t>>& allowed,
                   int64_t instances, std::span<const uint64_t> shard_bytes,
                   size_t linked_ranks) {
  std::vector<std::vector<size_t>> result;
  for (int64_t r = 0; r < instances; ++r) {
    const auto* mine =
        static_cast<size_t>(r) < allowed.size() && !allowed[static_cast<size_t>(r)].empty()
            ? &allowed[static_cast<size_t>(r)]
            : nullptr;
    std::vector<uint32_t> own(gpus.size(), 0); // this replica's shards per GPU
    std::vector<size_t> chosen;
    for (uint64_t bytes : shard_bytes) {
      size_t best = gpus.size();
      // With links, a shard past the first stage receives from the previous stage's rank 0.
      const size_t shard = chosen.size();
      const size_t sender = linked_ranks > 0 && shard >= linked_ranks
                                ? chosen[(shard / linked_ranks - 1) * linked_ranks]
                                : gpus.size();
      const auto key = [&](size_t i) {
        return std::make_tuple(i == sender, own[i], gpus[i].shards,
                               std::numeric_limits<uint64_t>::max() - gpus[i].free());
      };
      for (size_t i = 0; i < gpus.size(); ++i) {
        if (gpus[i].free() < bytes ||
            (mine && std::find(mine->begin(), mine->end(), gpus[i].index) == mine->end()))
          continue;
        if (best == gpus.size() || key(i) < key(best))
          best = i;
      }
      if (best == gpus.size())
        return r;
      gpus[best].planned += bytes;
      ++gpus[best].shards;
      ++own[best];
      chosen.push_back(best);
    }
    result.push_back(std::move(chosen));
  }
  return result;
}

std::optional<size_t> link_within_one_gpu(std::span<const int32_t> shard_gpus, size_t stages,
                                          size_t ranks) {
  const auto links = replica_links(stages, ranks);
  for (size_t s = 0; s < links.size(); ++s)
    for (size_t receiver : links[s].receivers)
      if (shard_gpus[links[s].sender] == shard_gpus[receiver])
        return s;
  return std::nullopt;
}

} // namespace troupe::serve
