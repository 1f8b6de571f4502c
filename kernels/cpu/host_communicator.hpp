// host_communicator: a communicator group whose ranks are threads of one process (CPU shards).
#pragma once

#include <memory>
#include <vector>

#include "kernels/communicator.hpp"

namespace troupe::cpu {

/// `ranks` communicators sharing one exchange; hand each to its own thread. Collectives
/// block until every rank has called them. Ranks that call different collectives, or the
/// same one with different dtypes, dims, axes or roots, all get an invalid_argument error
/// instead of hanging (a rank that never calls still blocks the others, until the group is
/// aborted: see make_controlled_host_group). Sums accumulate in
/// fp32 and give bit-identical results on every rank. Empty for ranks < 1.
std::vector<std::unique_ptr<communicator>> make_host_group(int ranks);

class host_exchange;

/// Aborts and resets one host group; shared by whoever may need to stop its ranks.
class host_group_control {
public:
  explicit host_group_control(std::shared_ptr<host_exchange> ex) : ex_(std::move(ex)) {}

  /// Every collective (and recv) that waits now or is called later, on every rank, returns
  /// an error carrying `why` until reset(). A round every rank has already entered still runs
  /// to its end. The first abort's reason wins; later ones are ignored.
  void abort(const status& why);
  /// Makes an aborted group usable again (pending sends are dropped). Call it only while no
  /// rank is inside a collective, e.g. once every rank has reported the failed work.
  void reset();
  /// The abort's error, or ok while the group runs.
  status aborted() const;

private:
  std::shared_ptr<host_exchange> ex_;
};

/// A host group of `ranks` communicators and the control that aborts them.
struct host_group {
  std::vector<std::unique_ptr<communicator>> ranks;
  std::shared_ptr<host_group_control> control;
};

/// make_host_group with its control; empty for ranks < 1.
host_group make_controlled_host_group(int ranks);

} // namespace troupe::cpu

namespace troupe {
using cpu::host_group;
using cpu::host_group_control;
using cpu::make_controlled_host_group;
using cpu::make_host_group;
} // namespace troupe
