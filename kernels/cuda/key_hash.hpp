// key_hash: the hash of the fixed-size integer keys that index the cuDNN and cuBLASLt caches.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace troupe::cuda {

/// FNV-1a over the fields; keys are small and hashed once per call.
inline size_t hash_fields(std::span<const int64_t> key) {
  uint64_t h = 1469598103934665603ull;
  for (int64_t v : key) {
    h ^= static_cast<uint64_t>(v);
    h *= 1099511628211ull;
  }
  return static_cast<size_t>(h);
}

} // namespace troupe::cuda
