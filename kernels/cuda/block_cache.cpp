// block_cache: size classes, stream-ordered reuse and the storage hand-back of cached blocks.
#include "kernels/cuda/block_cache.hpp"

#include <algorithm>
#include <bit>
#include <limits>

namespace troupe::cuda {

namespace {

// storage's release callback gets only the pointer, so blocks handed out as storage are found
// again through this table. Device pointers are unique in the process (unified addressing), as
// are host pointers, so one table serves every cache.
std::mutex registry_mutex;
std::unordered_map<void*, block_cache*>& registry() {
  static auto* table = new std::unordered_map<void*, block_cache*>; // outlives static storages
  return *table;
}

void release_registered(void* block) {
  block_cache* owner = nullptr;
  {
    std::lock_guard lock{registry_mutex};
    auto it = registry().find(block);
    if (it == registry().end())
      return; // its cache is gone: the block was leaked with it
    owner = it->second;
    registry().erase(it);
  }
  (void)owner->free(block);
}

} // namespace

size_t size_class(size_t bytes) {
  constexpr size_t small_step = 512;
  constexpr size_t small_limit = size_t{1} << 20;
  if (bytes > std::numeric_limits<size_t>::max() / 2)
    return 0;
  if (bytes <= small_limit)
    return std::max<size_t>((bytes + small_step - 1) / small_step, 1) * small_step;
  const size_t step = std::bit_floor(bytes) / 4;
  return (bytes + step - 1) / step * step;
}

block_cache::block_cache(std::unique_ptr<memory_backend> backend, device where)
    : backend_(std::move(backend)), where_(where) {}

block_cache::~block_cache() {
  {
    std::lock_guard lock{registry_mutex};
    std::erase_if(registry(), [this](const auto& entry) { return entry.second == this; });
  }
  std::lock_guard lock{mutex_};
  empty_locked();
}

expected<void*> block_cache::take_cached(size_t bytes, stream_handle stream) {
  auto it = free_.find(bytes);
  if (it == free_.end())
    return make_error(errc::not_found, "no cached block");
  auto& blocks = it->second;
  // The same stream first (no waiting at all), then a block whose free event has completed.
  auto pick = blocks.end();
  if (backend_->stream_ordered())
    pick = std::find_if(blocks.begin(), blocks.end(),
                        [&](const free_block& b) { return b.stream == stream; });
  if (pick == blocks.end())
    pick = std::find_if(blocks.begin(), blocks.end(),
                        [&](const free_block& b) { return backend_->done(b.freed); });
  if (pick == blocks.end())
    return make_error(errc::not_found, "no reusable cached block");
  void* block = pick->block;
  backend_->release(pick->freed);
  blocks.erase(pick);
  if (blocks.empty())
    free_.erase(it);
  stats_.cached -= bytes;
  ++stats_.hits;
  return block;
}

expected<void*> block_cache::allocate(size_t bytes, stream_handle stream) {
  const size_t rounded = size_class(bytes);
  if (rounded == 0)
    return make_error(errc::resource_exhausted, "cannot allocate {} bytes", bytes);
  std::lock_guard lock{mutex_};
  auto block = take_cached(rounded, stream);
  if (!block) {
    block = backend_->allocate(rounded);
    if (!block && block.error().code() == errc::resource_exhausted && stats_.cached > 0) {
      empty_locked();
      block = backend_->allocate(rounded);
    }
    if (!block)
      return block.error();
    ++stats_.backend_allocations;
  }
  live_.emplace(*block, live_block{rounded, stream});
  stats_.in_use += rounded;
  stats_.peak_in_use = std::max(stats_.peak_in_use, stats_.in_use);
  return block;
}

status block_cache::free(void* block) { return free_on(block, nullptr, true); }

status block_cache::free(void* block, stream_handle stream) {
  return free_on(block, stream, false);
}

status block_cache::free_on(void* block, stream_handle stream, bool allocation_stream) {
  std::lock_guard lock{mutex_};
  auto it = live_.find(block);
  if (it == live_.end())
    return make_error(errc::invalid_argument, "free of a block this cache did not hand out");
  const size_t bytes = it->second.bytes;
  if (allocation_stream)
    stream = it->second.stream;
  live_.erase(it);
  stats_.in_use -= bytes;
  auto freed = backend_->record(stream);
  if (!freed) {
    // Without an event nobody could tell when the block is idle: give it back to the backend,
    // whose own free waits for the device.
    backend_->deallocate(block);
    return freed.error();
  }
  free_[bytes].push_back(free_block{block, stream, *freed});
  stats_.cached += bytes;
  return status::ok();
}

expected<std::shared_ptr<storage>> block_cache::allocate_storage(size_t bytes,
                                                                 stream_handle stream) {
  auto block = allocate(bytes, stream);
  if (!block)
    return block.error();
  {
    std::lock_guard lock{registry_mutex};
    registry()[*block] = this;
  }
  return std::make_shared<storage>(*block, bytes, where_, &release_registered);
}

void block_cache::empty_locked() {
  for (auto& [bytes, blocks] : free_)
    for (auto& b : blocks) {
      backend_->wait(b.freed);
      backend_->release(b.freed);
      backend_->deallocate(b.block);
    }
  free_.clear();
  stats_.cached = 0;
}

void block_cache::empty_cache() {
  std::lock_guard lock{mutex_};
  empty_locked();
}

cache_stats block_cache::stats() const {
  std::lock_guard lock{mutex_};
  return stats_;
}

void block_cache::reset_peak() {
  std::lock_guard lock{mutex_};
  stats_.peak_in_use = stats_.in_use;
}

} // namespace troupe::cuda
