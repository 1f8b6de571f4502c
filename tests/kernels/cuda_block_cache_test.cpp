// Tests of the caching allocator's bookkeeping (size classes, stream-ordered reuse, stats) over
// a fake backend whose events complete when the test says so.
#include <doctest/doctest.h>

#include <map>
#include <random>
#include <set>

#include "kernels/cuda/block_cache.hpp"

using namespace troupe;
using namespace troupe::cuda;

namespace {

struct fake_event {
  stream_handle stream;
  bool done = false;
};

// Host memory with a byte budget, and events that complete on finish(stream) or wait().
struct fake_device {
  size_t capacity = SIZE_MAX;
  size_t allocated = 0;
  std::map<void*, size_t> blocks;
  std::set<fake_event*> events;
  int waits = 0;

  void finish(stream_handle s) {
    for (auto* e : events)
      if (e->stream == s)
        e->done = true;
  }
  ~fake_device() {
    for (auto* e : events)
      delete e;
    for (auto& [p, n] : blocks)
      ::operator delete(p);
  }
};

class fake_backend final : public memory_backend {
public:
  explicit fake_backend(fake_device& d, bool ordered = true) : d_(d), ordered_(ordered) {}
  bool stream_ordered() const override { return ordered_; }
  expected<void*> allocate(size_t bytes) override {
    if (d_.allocated + bytes > d_.capacity)
      return make_error(errc::resource_exhausted, "fake device full");
    void* p = ::operator new(bytes);
    d_.blocks[p] = bytes;
    d_.allocated += bytes;
    return p;
  }
  void deallocate(void* block) override {
    d_.allocated -= d_.blocks.at(block);
    d_.blocks.erase(block);
    ::operator delete(block);
  }
  expected<event_handle> record(stream_handle stream) override {
    auto* e = new fake_event{stream};
    d_.events.insert(e);
    return static_cast<event_handle>(e);
  }
  bool done(event_handle e) override { return static_cast<fake_event*>(e)->done; }
  void wait(event_handle e) override {
    static_cast<fake_event*>(e)->done = true;
    ++d_.waits;
  }
  void release(event_handle e) override {
    d_.events.erase(static_cast<fake_event*>(e));
    delete static_cast<fake_event*>(e);
  }

private:
  fake_device& d_;
  bool ordered_;
};

stream_handle stream(int i) { return reinterpret_cast<stream_handle>(static_cast<uintptr_t>(i)); }

std::mt19937 seeded() { return std::mt19937{std::random_device{}()}; }

} // namespace

TEST_CASE("size classes round to 512 B up to 1 MiB and to quarter powers of two above") {
  CHECK(size_class(0) == 512);
  CHECK(size_class(1) == 512);
  CHECK(size_class(512) == 512);
  CHECK(size_class(513) == 1024);
  CHECK(size_class(size_t{1} << 20) == size_t{1} << 20);
  CHECK(size_class((size_t{1} << 20) + 1) == (size_t{5} << 18)); // 1.25 MiB
  CHECK(size_class(size_t{3} << 20) == size_t{3} << 20);         // 1.5 · 2 MiB
  CHECK(size_class((size_t{7} << 20) + 1) == size_t{8} << 20);
  CHECK(size_class(SIZE_MAX) == 0);
  auto rng = seeded();
  std::uniform_int_distribution<size_t> bytes(1, size_t{1} << 34);
  for (int i = 0; i < 10000; ++i) {
    const size_t b = bytes(rng);
    const size_t c = size_class(b);
    CHECK(c >= b);
    CHECK(static_cast<double>(c) <= static_cast<double>(b) * 1.25 + 512);
    CHECK(size_class(c) == c);
  }
}

TEST_CASE("a block freed on a stream is reused on that stream at once") {
  fake_device dev;
  block_cache cache{std::make_unique<fake_backend>(dev), device{device::kind::cuda, 0}};
  auto a = cache.allocate(1000, stream(1));
  REQUIRE(a);
  REQUIRE(cache.free(*a));
  auto b = cache.allocate(900, stream(1)); // the same 1 KiB class, work still pending
  REQUIRE(b);
  CHECK(*b == *a);
  CHECK(cache.stats().hits == 1);
  CHECK(cache.stats().backend_allocations == 1);
}

TEST_CASE("pinned staging freed on a stream is reused, even on that stream, only after its free "
          "event") {
  // The host writes staging with memcpy, outside the stream: a copy from the block that is
  // still pending would read the next batch's bytes.
  fake_device dev;
  block_cache cache{std::make_unique<fake_backend>(dev, false), device{device::kind::cpu, 0}};
  auto a = cache.allocate(1000, stream(1));
  REQUIRE(a);
  REQUIRE(cache.free(*a));
  auto b = cache.allocate(900, stream(1));
  REQUIRE(b);
  CHECK(*b != *a); // the copy from `a` may still be running
  dev.finish(stream(1));
  auto c = cache.allocate(900, stream(1));
  REQUIRE(c);
  CHECK(*c == *a);
  CHECK(cache.stats().backend_allocations == 2);
}

TEST_CASE("a block freed on one stream reaches another stream only after its free event") {
  fake_device dev;
  block_cache cache{std::make_unique<fake_backend>(dev), device{device::kind::cuda, 0}};
  auto a = cache.allocate(4096, stream(1));
  REQUIRE(a);
  REQUIRE(cache.free(*a));
  auto b = cache.allocate(4096, stream(2));
  REQUIRE(b);
  CHECK(*b != *a); // stream 1 may still be using a
  dev.finish(stream(1));
  auto c = cache.allocate(4096, stream(2));
  REQUIRE(c);
  CHECK(*c == *a);
  // Freed explicitly on stream 3 (its last user), a block waits for stream 3, not stream 2.
  REQUIRE(cache.free(*c, stream(3)));
  auto d = cache.allocate(4096, stream(3));
  REQUIRE(d);
  CHECK(*d == *c);
}

TEST_CASE("stats count bytes in use, cached and the peak over random traffic") {
  fake_device dev;
  block_cache cache{std::make_unique<fake_backend>(dev), device{device::kind::cuda, 1}};
  auto rng = seeded();
  std::uniform_int_distribution<size_t> bytes(1, 3 << 20);
  std::uniform_int_distribution<int> pick(0, 2);
  std::map<void*, std::pair<size_t, stream_handle>> live; // block -> (class, stream)
  uint64_t in_use = 0, peak = 0;
  for (int step = 0; step < 2000; ++step) {
    const int action = pick(rng);
    if (action == 0 && !live.empty()) {
      auto it =
          std::next(live.begin(), std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng));
      REQUIRE(cache.free(it->first));
      in_use -= it->second.first;
      live.erase(it);
    } else if (action == 1) {
      dev.finish(stream(pick(rng)));
    } else {
      const size_t b = bytes(rng);
      const stream_handle s = stream(pick(rng));
      auto block = cache.allocate(b, s);
      REQUIRE(block);
      REQUIRE(live.count(*block) == 0); // never handed out twice
      live[*block] = {size_class(b), s};
      in_use += size_class(b);
      peak = std::max(peak, in_use);
    }
    const auto st = cache.stats();
    REQUIRE(st.in_use == in_use);
    REQUIRE(st.peak_in_use == peak);
    REQUIRE(st.in_use + st.cached == dev.allocated); // every backend byte is live or cached
  }
  for (auto& [block, info] : live)
    REQUIRE(cache.free(block));
  CHECK(cache.stats().in_use == 0);
  cache.reset_peak();
  CHECK(cache.stats().peak_in_use == 0);
}

TEST_CASE("empty_cache waits for pending frees and returns every cached block") {
  fake_device dev;
  block_cache cache{std::make_unique<fake_backend>(dev), device{device::kind::cuda, 0}};
  auto kept = cache.allocate(100, stream(1));
  auto a = cache.allocate(5000, stream(1));
  auto b = cache.allocate(5 << 20, stream(2));
  REQUIRE((kept && a && b));
  REQUIRE(cache.free(*a));
  REQUIRE(cache.free(*b));
  dev.finish(stream(1));
  cache.empty_cache();
  CHECK(dev.waits == 2); // both waited on (a's had already completed)
  CHECK(cache.stats().cached == 0);
  CHECK(cache.stats().in_use == 512);
  CHECK(dev.allocated == 512);
  CHECK(dev.events.empty());
}

TEST_CASE("an allocation the backend refuses is retried after emptying the cache") {
  fake_device dev;
  dev.capacity = 3 << 20;
  block_cache cache{std::make_unique<fake_backend>(dev), device{device::kind::cuda, 0}};
  auto a = cache.allocate(2 << 20, stream(1));
  REQUIRE(a);
  REQUIRE(cache.free(*a));
  auto b = cache.allocate(3 << 19, stream(1)); // another class: needs a's bytes back
  REQUIRE(b);
  CHECK(cache.stats().cached == 0);
  auto c = cache.allocate(2 << 20, stream(1)); // nothing left to give back
  REQUIRE_FALSE(c);
  CHECK(c.error().code() == errc::resource_exhausted);
}

TEST_CASE("storage from the cache is on its device and returns its block when released") {
  fake_device dev;
  block_cache cache{std::make_unique<fake_backend>(dev), device{device::kind::cuda, 3}};
  void* first = nullptr;
  {
    auto s = cache.allocate_storage(10000, stream(5));
    REQUIRE(s);
    CHECK((*s)->bytes() == 10000);
    CHECK((*s)->where() == device{device::kind::cuda, 3});
    first = (*s)->data();
    tensor t = tensor::wrap(dtype::f32, {2500}, *s);
    CHECK(cache.stats().in_use == size_class(10000));
  }
  CHECK(cache.stats().in_use == 0);
  CHECK(cache.stats().cached == size_class(10000));
  auto again = cache.allocate_storage(10000, stream(5));
  REQUIRE(again);
  CHECK((*again)->data() == first);
}

TEST_CASE("freeing a block the cache did not hand out is an invalid_argument error") {
  fake_device dev;
  block_cache cache{std::make_unique<fake_backend>(dev), device{device::kind::cuda, 0}};
  int local = 0;
  auto st = cache.free(&local);
  CHECK(st.code() == errc::invalid_argument);
  auto a = cache.allocate(64, stream(1));
  REQUIRE(a);
  REQUIRE(cache.free(*a));
  CHECK(cache.free(*a).code() == errc::invalid_argument); // a double free
}
