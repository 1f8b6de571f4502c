// parallel_copy: when a copying kernel (gather, pad, strided copy) spreads over the OpenMP team,
// and a flat copy that does.
#pragma once

#include <cstddef>
#include <cstdint>

namespace troupe::cpu {

/// Below this many bytes a copy stays on the calling thread: waking the OpenMP team costs
/// more than the copy itself.
inline constexpr int64_t parallel_min_bytes = int64_t{256} * 1024;

/// Copies `bytes` from `src` to `dst` (not overlapping). From 4 MiB on, up to `max_threads`
/// threads of the OpenMP team take a contiguous share each: one core moves about 10 GB/s,
/// so staging a ResNet-50 batch of 256 (154 MB) for the GPU takes 15 ms on one thread, and a
/// few share DRAM bandwidth better. Below that, or inside a parallel region, a plain memcpy.
void copy_bytes(void* dst, const void* src, size_t bytes, int max_threads = 8);

} // namespace troupe::cpu
