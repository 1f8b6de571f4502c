// parallel_copy: when a copying kernel (gather, pad, strided copy) spreads over the OpenMP team.
#pragma once

#include <cstdint>

namespace troupe::cpu {

/// Below this many bytes a copy stays on the calling thread: waking the OpenMP team costs
/// more than the copy itself.
inline constexpr int64_t parallel_min_bytes = int64_t{256} * 1024;

} // namespace troupe::cpu
