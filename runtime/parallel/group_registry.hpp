// group_registry: the in-process communicator groups of tensor-parallel ranks, keyed by group
// id, from which each rank's executor takes its communicator on its own thread.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <vector>

#include "kernels/cpu/host_communicator.hpp"

namespace troupe {

/// Host groups by id. The exchange actor creates them and hands out only ids (messages never
/// carry pointers); an executor takes its rank's communicator here. Thread-safe.
class group_registry {
public:
  /// The registry of this process.
  static group_registry& global();

  /// A new host group of `size` ranks; ids are never reused. invalid_argument for size < 1.
  expected<uint64_t> create_host_group(int size);
  /// An id for a group this registry does not hold (an NCCL group lives in its ranks), from
  /// the same sequence so that ids never collide.
  uint64_t reserve_id();
  /// Rank `rank`'s communicator of group `id`; each rank is handed out once, the caller owns
  /// it. not_found for an unknown or released group, invalid_argument for a bad or taken rank.
  expected<std::unique_ptr<communicator>> take(uint64_t id, int rank);
  /// Aborts group `id` (host_group_control::abort): its ranks' waiting and later collectives
  /// fail with `why`. Unknown ids are ignored (the group is gone already).
  void abort(uint64_t id, const status& why);
  /// The abort's error of group `id`, or ok (also for an unknown id).
  status aborted(uint64_t id) const;
  /// Forgets group `id`: untaken ranks are dropped, taken ones keep working until their owners
  /// drop them.
  void release(uint64_t id);
  /// Groups currently held.
  size_t groups() const;

private:
  struct entry {
    std::vector<std::unique_ptr<communicator>> untaken; // null once taken
    std::shared_ptr<cpu::host_group_control> control;
  };
  mutable std::mutex mutex_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, entry> groups_;
};

} // namespace troupe
