// block_cache: a stream-ordered caching allocator's bookkeeping, independent of CUDA types.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include "kernels/status.hpp"
#include "kernels/tensor.hpp"

namespace troupe::cuda {

/// A cudaStream_t or cudaEvent_t seen as an opaque handle (nullptr is the legacy default stream).
using stream_handle = void*;
using event_handle = void*;

/// What a block_cache needs from the memory it manages: device memory (cudaMalloc), pinned
/// host memory (cudaHostAlloc), or a fake one in tests.
class memory_backend {
public:
  virtual ~memory_backend() = default;
  virtual expected<void*> allocate(size_t bytes) = 0;
  virtual void deallocate(void* block) = 0;
  /// An event that completes when the work enqueued on `stream` so far has finished.
  virtual expected<event_handle> record(stream_handle stream) = 0;
  /// Whether that work has finished, without blocking.
  virtual bool done(event_handle event) = 0;
  /// Blocks until it has finished.
  virtual void wait(event_handle event) = 0;
  virtual void release(event_handle event) = 0;
  /// Whether the memory is only ever written by work on streams, so a block freed on a stream
  /// may be handed out again on it at once (device memory). Pinned staging is not: the host
  /// writes it with memcpy, outside any stream, while a copy from it may still be pending.
  virtual bool stream_ordered() const { return true; }
};

struct cache_stats {
  uint64_t in_use = 0;      // bytes of blocks handed out (rounded to their size class)
  uint64_t cached = 0;      // bytes of free blocks kept for reuse
  uint64_t peak_in_use = 0; // the most `in_use` has been since creation or reset_peak
  uint64_t hits = 0;        // allocations served from the cache
  uint64_t backend_allocations = 0;
};

/// The bytes a request for `bytes` really takes: multiples of 512 B up to 1 MiB, above that
/// the next of 2^k·{1, 1.25, 1.5, 1.75} (at most 25 % waste, few distinct sizes to reuse).
/// 0 when the request cannot be rounded without overflow.
size_t size_class(size_t bytes);

/// Caches freed blocks by size class for reuse, in stream order: a block freed on stream s is
/// handed out again on s at once (later work on s runs after the work that used it), on any
/// other stream only once an event recorded at free time has completed; memory that is not
/// stream-ordered (pinned host staging) always waits for that event. Thread-safe.
class block_cache {
public:
  block_cache(std::unique_ptr<memory_backend> backend, device where);
  /// Returns the cached blocks to the backend. Blocks still handed out stay allocated.
  ~block_cache();
  block_cache(const block_cache&) = delete;
  block_cache& operator=(const block_cache&) = delete;

  /// A block of at least `bytes` for work on `stream`. When the backend is out of memory the
  /// cache is emptied and the allocation tried once more.
  expected<void*> allocate(size_t bytes, stream_handle stream);
  /// Returns `block` to the cache as freed on the stream it was allocated for.
  status free(void* block);
  /// Returns `block` to the cache as freed on `stream` (its last user).
  status free(void* block, stream_handle stream);
  /// A block wrapped as troupe storage on this cache's device; destroying the last reference
  /// frees it on `stream`.
  expected<std::shared_ptr<storage>> allocate_storage(size_t bytes, stream_handle stream);

  /// Returns every cached block to the backend, waiting for pending work on it first.
  void empty_cache();
  cache_stats stats() const;
  void reset_peak();
  device where() const { return where_; }

private:
  struct live_block {
    size_t bytes; // its size class
    stream_handle stream;
  };
  struct free_block {
    void* block;
    stream_handle stream; // freed on
    event_handle freed;   // recorded on `stream` at free time
  };

  expected<void*> take_cached(size_t bytes, stream_handle stream);
  status free_on(void* block, stream_handle stream, bool allocation_stream);
  void empty_locked();

  std::unique_ptr<memory_backend> backend_;
  device where_;
  mutable std::mutex mutex_;
  std::unordered_map<void*, live_block> live_;
  std::map<size_t, std::vector<free_block>> free_; // by size class
  cache_stats stats_;
};

} // namespace troupe::cuda
