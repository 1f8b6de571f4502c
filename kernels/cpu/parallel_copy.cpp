// parallel_copy: a flat copy split over the OpenMP team.
#include "kernels/cpu/parallel_copy.hpp"

#include <algorithm>
#include <cstring>

#include <omp.h>

namespace troupe::cpu {

void copy_bytes(void* dst, const void* src, size_t bytes, int max_threads) {
  constexpr size_t parallel_from = size_t{4} << 20;
  constexpr size_t share_at_least = size_t{1} << 20; // fewer threads for smaller copies
  const auto most = static_cast<int>(std::min<size_t>(bytes / share_at_least, 64));
  const int threads = std::min({max_threads, omp_get_max_threads(), most});
  if (bytes < parallel_from || threads < 2 || omp_in_parallel()) {
    if (bytes > 0)
      std::memcpy(dst, src, bytes);
    return;
  }
  auto* to = static_cast<std::byte*>(dst);
  const auto* from = static_cast<const std::byte*>(src);
#pragma omp parallel num_threads(threads)
  {
    // Shares in whole 4 KiB pages, the last one takes the rest.
    const auto n = static_cast<size_t>(omp_get_num_threads());
    const auto t = static_cast<size_t>(omp_get_thread_num());
    const size_t pages = bytes / 4096;
    const size_t begin = pages * t / n * 4096;
    const size_t end = t + 1 == n ? bytes : pages * (t + 1) / n * 4096;
    std::memcpy(to + begin, from + begin, end - begin);
  }
}

} // namespace troupe::cpu
