// reorder_buffer: releases completed requests in arrival order (preserve_ordering).
#include "runtime/batching/reorder_buffer.hpp"

namespace troupe {

status reorder_buffer::expect(uint64_t id) {
  if (!state_.emplace(id, slot::running).second)
    return make_error(errc::invalid_argument, "request id {} is already awaiting its reply", id);
  order_.push_back(id);
  return {};
}

std::vector<uint64_t> reorder_buffer::complete(uint64_t id) {
  auto it = state_.find(id);
  if (it == state_.end() || it->second != slot::running)
    return {};
  it->second = slot::done;
  return release_front();
}

std::vector<uint64_t> reorder_buffer::drop(uint64_t id) {
  auto it = state_.find(id);
  if (it == state_.end() || it->second != slot::running)
    return {};
  it->second = slot::dropped;
  return release_front();
}

std::vector<uint64_t> reorder_buffer::release_front() {
  std::vector<uint64_t> released;
  while (!order_.empty()) {
    auto it = state_.find(order_.front());
    if (it->second == slot::running)
      break;
    if (it->second == slot::done)
      released.push_back(order_.front());
    state_.erase(it);
    order_.pop_front();
  }
  return released;
}

} // namespace troupe
