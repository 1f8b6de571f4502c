// device_allocator: cudaMalloc / cudaHostAlloc backends with pooled events, one cache per device.
#include "kernels/cuda/device_allocator.hpp"

#include <map>
#include <mutex>
#include <vector>

#include "kernels/cuda/cuda_device.hpp"
#include "kernels/cuda/cuda_error.hpp"

namespace troupe::cuda {

namespace {

class cuda_backend final : public memory_backend {
public:
  cuda_backend(int index, bool pinned_host) : index_(index), pinned_(pinned_host) {}

  ~cuda_backend() override {
    device_guard on{index_};
    for (auto* e : idle_events_)
      (void)cudaEventDestroy(static_cast<cudaEvent_t>(e));
  }

  expected<void*> allocate(size_t bytes) override {
    void* block = nullptr;
    if (pinned_) {
      // Portable staging memory serves every device: allocated in the context of the
      // thread's device (a session's), never by switching to a device this process may not
      // use, which would open a context there.
      device_guard on{thread_has_context() ? current_device() : index_};
      TROUPE_TRY_STATUS(on.status());
      TROUPE_CUDA_TRY(cudaHostAlloc(&block, bytes, cudaHostAllocPortable));
      return block;
    }
    device_guard on{index_};
    TROUPE_TRY_STATUS(on.status());
    TROUPE_CUDA_TRY(cudaMalloc(&block, bytes));
    return block;
  }

  void deallocate(void* block) override {
    device_guard on{pinned_ && thread_has_context() ? current_device() : index_};
    (void)(pinned_ ? cudaFreeHost(block) : cudaFree(block));
  }

  expected<event_handle> record(stream_handle stream) override {
    auto* s = static_cast<cudaStream_t>(stream);
    if (pinned_) {
      // A staging buffer serves streams of any device; an event must be created on the device
      // of the stream it is recorded on, so these are made per use instead of pooled.
      int on_device = 0;
      TROUPE_CUDA_TRY(cudaStreamGetDevice(s, &on_device));
      device_guard on{on_device};
      TROUPE_TRY_STATUS(on.status());
      cudaEvent_t event = nullptr;
      TROUPE_CUDA_TRY(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
      if (auto st = check(cudaEventRecord(event, s), "cudaEventRecord"); !st) {
        (void)cudaEventDestroy(event);
        return st;
      }
      return static_cast<event_handle>(event);
    }
    device_guard on{index_};
    TROUPE_TRY_STATUS(on.status());
    cudaEvent_t event = nullptr;
    if (!idle_events_.empty()) {
      event = static_cast<cudaEvent_t>(idle_events_.back());
      idle_events_.pop_back();
    } else {
      TROUPE_CUDA_TRY(cudaEventCreateWithFlags(&event, cudaEventDisableTiming));
    }
    if (auto st = check(cudaEventRecord(event, s), "cudaEventRecord"); !st) {
      idle_events_.push_back(event);
      return st;
    }
    return static_cast<event_handle>(event);
  }

  bool done(event_handle event) override {
    // cudaErrorNotReady is the expected "still running" answer, not a sticky error, but the
    // runtime also leaves it as this thread's last error: cleared, so the next kernel launch
    // on this thread does not report it as its own failure.
    const cudaError_t state = cudaEventQuery(static_cast<cudaEvent_t>(event));
    if (state != cudaSuccess)
      (void)cudaGetLastError();
    return state == cudaSuccess;
  }

  void wait(event_handle event) override {
    (void)cudaEventSynchronize(static_cast<cudaEvent_t>(event));
  }

  bool stream_ordered() const override { return !pinned_; }

  // Called by block_cache under its lock, so the pool needs no lock of its own.
  void release(event_handle event) override {
    if (pinned_)
      (void)cudaEventDestroy(static_cast<cudaEvent_t>(event));
    else
      idle_events_.push_back(event);
  }

private:
  static int current_device() {
    int device = 0;
    return cudaGetDevice(&device) == cudaSuccess ? device : 0;
  }

  int index_; // pinned: the device whose context a thread without one uses
  bool pinned_;
  std::vector<event_handle> idle_events_;
};

std::mutex caches_mutex;

// Leaked on purpose: tensors in static objects may release blocks during exit.
std::map<int, block_cache*>& caches() {
  static auto* table = new std::map<int, block_cache*>;
  return *table;
}

} // namespace

std::unique_ptr<memory_backend> make_cuda_backend(int index, bool pinned_host) {
  return std::make_unique<cuda_backend>(index, pinned_host);
}

expected<block_cache*> device_cache(int index) {
  std::lock_guard lock{caches_mutex};
  if (auto it = caches().find(index); it != caches().end())
    return it->second;
  auto count = device_count();
  if (!count)
    return count.error();
  if (index < 0 || index >= *count)
    return make_error(errc::invalid_argument, "CUDA device {} does not exist ({} visible)", index,
                      *count);
  auto* cache = new block_cache(make_cuda_backend(index, false), device{device::kind::cuda, index});
  caches().emplace(index, cache);
  return cache;
}

block_cache* existing_device_cache(int index) {
  std::lock_guard lock{caches_mutex};
  auto it = caches().find(index);
  return it == caches().end() ? nullptr : it->second;
}

expected<std::shared_ptr<storage>> allocate_device(int index, size_t bytes, cudaStream_t stream) {
  auto cache = device_cache(index);
  if (!cache)
    return cache.error();
  return (*cache)->allocate_storage(bytes, stream);
}

expected<block_cache*> pinned_cache() {
  static block_cache* cache = nullptr;
  std::lock_guard lock{caches_mutex};
  if (!cache) {
    auto count = device_count();
    if (!count)
      return count.error();
    // A thread without a context frees (or allocates) staging memory in the context of the
    // device the first user had current: one this process uses, not device 0 as such.
    int home = 0;
    if (thread_has_context() && cudaGetDevice(&home) != cudaSuccess)
      home = 0;
    cache = new block_cache(make_cuda_backend(home, true), device{});
  }
  return cache;
}

expected<std::shared_ptr<storage>> allocate_pinned(size_t bytes, cudaStream_t stream) {
  auto cache = pinned_cache();
  if (!cache)
    return cache.error();
  return (*cache)->allocate_storage(bytes, stream);
}

} // namespace troupe::cuda
