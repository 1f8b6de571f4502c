// group_aborts: enlisting, aborting and remembering the latest aborted groups under one lock.
#include "kernels/group_aborts.hpp"

namespace troupe {

group_aborts& group_aborts::global() {
  // Leaked on purpose: communicators in static objects may leave during exit.
  static auto* board = new group_aborts;
  return *board;
}

expected<uint64_t> group_aborts::enlist(std::span<const std::byte> k, callback on_abort) {
  std::lock_guard lock{mutex_};
  key group = key_of(k);
  if (auto it = aborted_.find(group); it != aborted_.end())
    return it->second;
  const uint64_t id = next_id_++;
  members_.emplace(id, member{std::move(group), std::move(on_abort)});
  return id;
}

void group_aborts::leave(uint64_t id) {
  std::lock_guard lock{mutex_};
  members_.erase(id);
}

void group_aborts::abort(std::span<const std::byte> k, const status& why) {
  std::lock_guard lock{mutex_};
  key group = key_of(k);
  // The first reason stays.
  status told = why.is_ok() ? status{errc::unavailable, "the group was aborted"} : why;
  if (auto it = aborted_.find(group); it != aborted_.end()) {
    told = it->second;
  } else {
    aborted_.emplace(group, told);
    abort_order_.push_back(group);
    if (abort_order_.size() > remembered_) {
      aborted_.erase(abort_order_.front());
      abort_order_.pop_front();
    }
  }
  for (auto it = members_.begin(); it != members_.end();) {
    if (it->second.group != group) {
      ++it;
      continue;
    }
    auto on_abort = std::move(it->second.on_abort);
    it = members_.erase(it);
    if (on_abort)
      on_abort(told);
  }
}

status group_aborts::aborted(std::span<const std::byte> k) const {
  std::lock_guard lock{mutex_};
  auto it = aborted_.find(key_of(k));
  return it == aborted_.end() ? status::ok() : it->second;
}

size_t group_aborts::members() const {
  std::lock_guard lock{mutex_};
  return members_.size();
}

size_t group_aborts::aborted_groups() const {
  std::lock_guard lock{mutex_};
  return aborted_.size();
}

} // namespace troupe
