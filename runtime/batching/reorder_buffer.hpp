// reorder_buffer: releases completed requests in arrival order (preserve_ordering).
#pragma once

#include <cstdint>
#include <deque>
#include <unordered_map>
#include <vector>

#include "kernels/status.hpp"

namespace troupe {

/// The batcher registers each accepted request in arrival order; completions come back in
/// any order and leave in arrival order. A request answered out of band (timed out,
/// cancelled) is dropped so it does not hold back the ones behind it.
class reorder_buffer {
public:
  /// Registers the next request in arrival order; invalid_argument for a duplicate id.
  status expect(uint64_t id);
  /// Marks `id` done; returns the ids that may be answered now, in arrival order (empty while
  /// an earlier request is still running). Unknown ids return nothing.
  std::vector<uint64_t> complete(uint64_t id);
  /// Forgets `id` (answered elsewhere); returns the ids this unblocks, in arrival order.
  std::vector<uint64_t> drop(uint64_t id);

  size_t pending() const { return state_.size(); }
  bool empty() const { return state_.empty(); }

private:
  enum class slot : uint8_t { running, done, dropped };
  std::vector<uint64_t> release_front();

  std::deque<uint64_t> order_;               // arrival order, dropped ids included
  std::unordered_map<uint64_t, slot> state_; // ids still in order_
};

} // namespace troupe
