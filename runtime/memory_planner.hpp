// memory_planner: packs intermediate buffers into one arena by liveness.
#pragma once

#include <cstddef>
#include <span>
#include <vector>

namespace troupe {

/// A buffer that must hold its bytes from step `first` to step `last` inclusive.
struct buffer_lifetime {
  size_t bytes = 0;
  int first = 0;
  int last = 0;
};

struct memory_layout {
  std::vector<size_t> offsets; // one per request, multiples of the alignment
  size_t arena_bytes = 0;
};

/// Greedy by size: the largest buffers are placed first, each at the lowest offset that does
/// not overlap a placed buffer whose lifetime intersects its own. Buffers with disjoint
/// lifetimes share memory.
memory_layout plan_memory(std::span<const buffer_lifetime> buffers, size_t alignment = 64);

} // namespace troupe
