// credit_pool: batches in flight per replica, so mailboxes stay bounded under overload.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

namespace troupe {

/// Each replica holds `capacity` credits (config max_batches_in_flight); a batch takes one
/// when it is sent and gives it back when its replies are out.
class credit_pool {
public:
  credit_pool() = default;
  credit_pool(size_t replicas, int64_t credits_each);

  /// Adds a replica and returns its index.
  size_t add_replica(int64_t credits);
  /// Stops handing out the replica's credits (it is being retired); releases still count.
  void retire(size_t replica);

  /// Takes a credit from the replica with the most free credits (the lowest index on a tie);
  /// nullopt when none is free.
  std::optional<size_t> acquire();
  /// Gives a credit back; false (and no change) when the replica had none out.
  bool release(size_t replica);

  bool any_available() const;
  int64_t available(size_t replica) const;
  int64_t total_available() const;
  int64_t in_flight(size_t replica) const { return replicas_.at(replica).in_use; }
  size_t replicas() const { return replicas_.size(); }

private:
  struct replica_credit {
    int64_t capacity = 0;
    int64_t in_use = 0;
  };
  std::vector<replica_credit> replicas_;
};

} // namespace troupe
