// memory_planner: greedy-by-size offset assignment.
#include "runtime/memory_planner.hpp"

#include <algorithm>
#include <numeric>

namespace troupe {

memory_layout plan_memory(std::span<const buffer_lifetime> buffers, size_t alignment) {
  auto round_up = [alignment](size_t n) { return (n + alignment - 1) / alignment * alignment; };
  std::vector<size_t> order(buffers.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return buffers[a].bytes > buffers[b].bytes; });

  memory_layout layout;
  layout.offsets.assign(buffers.size(), 0);
  std::vector<size_t> placed;
  for (size_t i : order) {
    const auto& buf = buffers[i];
    // Intervals already taken during this buffer's lifetime, sorted by offset.
    std::vector<std::pair<size_t, size_t>> taken;
    for (size_t j : placed) {
      const auto& other = buffers[j];
      if (other.last < buf.first || buf.last < other.first)
        continue;
      taken.push_back({layout.offsets[j], layout.offsets[j] + round_up(other.bytes)});
    }
    std::sort(taken.begin(), taken.end());
    size_t offset = 0;
    const size_t need = round_up(buf.bytes);
    for (const auto& [begin, end] : taken) {
      if (offset + need <= begin)
        break;
      offset = std::max(offset, end);
    }
    layout.offsets[i] = offset;
    layout.arena_bytes = std::max(layout.arena_bytes, offset + need);
    placed.push_back(i);
  }
  return layout;
}

} // namespace troupe
