// host_communicator: a communicator group whose ranks are threads of one process (CPU shards).
#pragma once

#include <memory>
#include <vector>

#include "kernels/communicator.hpp"

namespace troupe::cpu {

/// `ranks` communicators sharing one exchange; hand each to its own thread. Collectives
/// block until every rank has called them. Ranks that call different collectives, or the
/// same one with different dtypes, dims, axes or roots, all get an invalid_argument error
/// instead of hanging (a rank that never calls still blocks the others). Sums accumulate in
/// fp32 and give bit-identical results on every rank. Empty for ranks < 1.
std::vector<std::unique_ptr<communicator>> make_host_group(int ranks);

} // namespace troupe::cpu

namespace troupe {
using cpu::make_host_group;
} // namespace troupe
