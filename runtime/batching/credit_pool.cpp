// credit_pool: batches in flight per replica, so mailboxes stay bounded under overload.
#include "runtime/batching/credit_pool.hpp"

#include <algorithm>

namespace troupe {

credit_pool::credit_pool(size_t replicas, int64_t credits_each)
    : replicas_(replicas, replica_credit{std::max<int64_t>(0, credits_each), 0}) {}

size_t credit_pool::add_replica(int64_t credits) {
  replicas_.push_back({std::max<int64_t>(0, credits), 0});
  return replicas_.size() - 1;
}

void credit_pool::retire(size_t replica) { replicas_.at(replica).capacity = 0; }

int64_t credit_pool::available(size_t replica) const {
  const auto& r = replicas_.at(replica);
  return std::max<int64_t>(0, r.capacity - r.in_use);
}

std::optional<size_t> credit_pool::acquire() {
  std::optional<size_t> best;
  int64_t best_free = 0;
  for (size_t i = 0; i < replicas_.size(); ++i) {
    const int64_t free = available(i);
    if (free > best_free) {
      best = i;
      best_free = free;
    }
  }
  if (best)
    ++replicas_[*best].in_use;
  return best;
}

bool credit_pool::release(size_t replica) {
  if (replica >= replicas_.size() || replicas_[replica].in_use == 0)
    return false;
  --replicas_[replica].in_use;
  return true;
}

bool credit_pool::any_available() const {
  for (size_t i = 0; i < replicas_.size(); ++i)
    if (available(i) > 0)
      return true;
  return false;
}

int64_t credit_pool::total_available() const {
  int64_t total = 0;
  for (size_t i = 0; i < replicas_.size(); ++i)
    total += available(i);
  return total;
}

} // namespace troupe
