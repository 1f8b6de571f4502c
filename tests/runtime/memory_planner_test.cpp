// Tests for the liveness-based arena planner.
#include <doctest/doctest.h>

#include <random>

#include "runtime/memory_planner.hpp"

using namespace troupe;

TEST_CASE("plan_memory reuses memory of buffers whose lifetimes do not overlap") {
  // A chain a -> b -> c: a and c never live together and can share.
  std::vector<buffer_lifetime> bufs{{1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}};
  auto layout = plan_memory(bufs);
  CHECK(layout.offsets[0] == layout.offsets[2]);
  CHECK(layout.offsets[0] != layout.offsets[1]);
  CHECK(layout.arena_bytes == 2 * 1024); // 1000 rounded to 64-byte multiples
}

TEST_CASE("plan_memory never overlaps two buffers that are live at the same step") {
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 50; ++round) {
    std::vector<buffer_lifetime> bufs;
    size_t total = 0;
    for (int i = 0; i < 40; ++i) {
      int first = static_cast<int>(rng() % 30);
      int last = first + static_cast<int>(rng() % 8);
      size_t bytes = 1 + rng() % 5000;
      bufs.push_back({bytes, first, last});
      total += (bytes + 63) / 64 * 64;
    }
    auto layout = plan_memory(bufs);
    CHECK(layout.arena_bytes <= total);
    for (size_t i = 0; i < bufs.size(); ++i) {
      CHECK(layout.offsets[i] % 64 == 0);
      for (size_t j = i + 1; j < bufs.size(); ++j) {
        bool live_together = !(bufs[i].last < bufs[j].first || bufs[j].last < bufs[i].first);
        bool overlap = layout.offsets[i] < layout.offsets[j] + bufs[j].bytes &&
                       layout.offsets[j] < layout.offsets[i] + bufs[i].bytes;
        CHECK_FALSE((live_together && overlap));
      }
    }
  }
}
