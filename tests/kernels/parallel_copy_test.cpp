// parallel_copy_test: copy_bytes copies every byte exactly, for sizes around its thresholds and
// page boundaries, with one thread or several, and leaves the bytes around the target alone.
#include <doctest/doctest.h>

#include <cstddef>
#include <random>
#include <vector>

#include "kernels/cpu/parallel_copy.hpp"

using namespace troupe;

TEST_CASE("copy_bytes copies exactly, with one thread or several, around its thresholds") {
  std::mt19937 rng{std::random_device{}()};
  const size_t mib = size_t{1} << 20;
  for (size_t bytes : {size_t{0}, size_t{1}, size_t{4095}, 4 * mib - 1, 4 * mib, 4 * mib + 3,
                       9 * mib + 4097, 37 * mib + 5}) {
    for (int threads : {1, 2, 8}) {
      CAPTURE(bytes);
      CAPTURE(threads);
      std::vector<unsigned char> src(bytes), dst(bytes + 2, 0xAB);
      for (auto& b : src)
        b = static_cast<unsigned char>(rng());
      cpu::copy_bytes(dst.data() + 1, src.data(), bytes, threads);
      CHECK(dst.front() == 0xAB);
      CHECK(dst.back() == 0xAB);
      CHECK(std::equal(src.begin(), src.end(), dst.begin() + 1));
    }
  }
}
