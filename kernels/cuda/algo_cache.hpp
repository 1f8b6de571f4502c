// algo_cache: the thread-safe map from a kernel's shape key to the algorithm chosen for it
// (the cuDNN convolution and cuBLASLt GEMM caches).
#pragma once

#include <cstddef>
#include <mutex>
#include <unordered_map>

namespace troupe::cuda {

/// One per device: algorithms are device-specific. Choosing is slow (heuristics, trial runs),
/// so a shape is looked up on every call and chosen for once.
template <class Key, class Value, class Hash> class algo_cache {
public:
  /// Copies the choice for `key` into `out`; false when none was made yet.
  bool find(const Key& key, Value& out) const {
    std::lock_guard lock(mutex_);
    auto it = entries_.find(key);
    if (it == entries_.end())
      return false;
    out = it->second;
    return true;
  }

  /// Records the choice for `key`, replacing an earlier one (two threads may choose at once).
  void insert(const Key& key, const Value& value) {
    std::lock_guard lock(mutex_);
    entries_.insert_or_assign(key, value);
  }

  size_t size() const {
    std::lock_guard lock(mutex_);
    return entries_.size();
  }

private:
  mutable std::mutex mutex_;
  std::unordered_map<Key, Value, Hash> entries_;
};

} // namespace troupe::cuda
