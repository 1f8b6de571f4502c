// group_registry: host groups by id, handed out rank by rank.
#include "runtime/parallel/group_registry.hpp"

namespace troupe {

group_registry& group_registry::global() {
  static group_registry registry;
  return registry;
}

expected<uint64_t> group_registry::create_host_group(int size) {
  if (size < 1)
    return make_error(errc::invalid_argument, "a group of {} ranks; expected at least 1", size);
  auto group = cpu::make_controlled_host_group(size);
  std::lock_guard lock(mutex_);
  const uint64_t id = next_id_++;
  groups_.emplace(id, entry{std::move(group.ranks), std::move(group.control)});
  return id;
}

uint64_t group_registry::reserve_id() {
  std::lock_guard lock(mutex_);
  return next_id_++;
}

expected<std::unique_ptr<communicator>> group_registry::take(uint64_t id, int rank) {
  std::lock_guard lock(mutex_);
  auto it = groups_.find(id);
  if (it == groups_.end())
    return make_error(errc::not_found, "communicator group {} does not exist (released?)", id);
  auto& ranks = it->second.untaken;
  if (rank < 0 || static_cast<size_t>(rank) >= ranks.size())
    return make_error(errc::invalid_argument, "rank {} is not a rank of group {} of {}", rank, id,
                      ranks.size());
  if (!ranks[static_cast<size_t>(rank)])
    return make_error(errc::invalid_argument, "rank {} of group {} was taken already", rank, id);
  return std::move(ranks[static_cast<size_t>(rank)]);
}

void group_registry::abort(uint64_t id, const status& why) {
  std::shared_ptr<cpu::host_group_control> control;
  {
    std::lock_guard lock(mutex_);
    if (auto it = groups_.find(id); it != groups_.end())
      control = it->second.control;
  }
  if (control)
    control->abort(why); // outside the registry's lock: it wakes the group's waiting ranks
}

status group_registry::aborted(uint64_t id) const {
  std::lock_guard lock(mutex_);
  auto it = groups_.find(id);
  return it == groups_.end() ? status::ok() : it->second.control->aborted();
}

void group_registry::release(uint64_t id) {
  entry gone;
  {
    std::lock_guard lock(mutex_);
    auto it = groups_.find(id);
    if (it == groups_.end())
      return;
    gone = std::move(it->second);
    groups_.erase(it);
  }
}

size_t group_registry::groups() const {
  std::lock_guard lock(mutex_);
  return groups_.size();
}

} // namespace troupe
