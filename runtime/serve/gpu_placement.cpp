// gpu_placement: greedy placement of whole-model GPU replicas.
#include "runtime/serve/gpu_placement.hpp"

#include <algorithm>
#include <limits>
#include <tuple>

namespace troupe::serve {

std::variant<std::vector<size_t>, int64_t>
place_gpu_replicas(std::vector<gpu_load> gpus, const std::vector<std::vector<int32_t>>& allowed,
                   int64_t instances, uint64_t bytes) {
  std::vector<size_t> result;
  for (int64_t r = 0; r < instances; ++r) {
    const auto* mine =
        static_cast<size_t>(r) < allowed.size() && !allowed[static_cast<size_t>(r)].empty()
            ? &allowed[static_cast<size_t>(r)]
            : nullptr;
    gpu_load* best = nullptr;
    for (auto& g : gpus) {
      if (g.free() < bytes ||
          (mine && std::find(mine->begin(), mine->end(), g.index) == mine->end()))
        continue;
      const auto key = [](const gpu_load& x) {
        return std::make_tuple(x.replicas, std::numeric_limits<uint64_t>::max() - x.free());
      };
      if (!best || key(g) < key(*best))
        best = &g;
    }
    if (!best)
      return r;
    best->planned += bytes;
    ++best->replicas;
    result.push_back(static_cast<size_t>(best - gpus.data()));
  }
  return result;
}

} // namespace troupe::serve
