// stage_link: how a pipeline stage hands its outputs to the next stage over a communicator
// (send/recv) instead of inside the actor message, as stages in other processes or on other
// nodes need: the message carries only what was sent (dtypes and dims), the values travel
// over the link (NCCL between GPUs, the host communicator between CPU stages).
#pragma once

#include <cstdint>
#include <vector>

#include "kernels/communicator.hpp"
#include "kernels/status.hpp"
#include "kernels/tensor.hpp"
#include "runtime/graph.hpp"

namespace troupe::serve {

/// A link joins rank 0 of one stage (the sender, link rank 0) to every tensor-parallel rank
/// of the next stage (the receivers, link ranks 1..ranks).
inline int link_size(int receiver_ranks) { return 1 + receiver_ranks; }

/// The shards (stage by stage: [s * ranks + r]) a replica's link after stage s joins: the
/// sender is stage s's rank 0, the receivers are stage s + 1's ranks (link ranks 1..ranks).
struct link_ends {
  size_t sender;
  std::vector<size_t> receivers;
};
std::vector<link_ends> replica_links(size_t stages, size_t ranks);

/// What the message says about the values that went over the link, value by value.
struct linked_values {
  std::vector<uint8_t> types;              // dtype codes
  std::vector<std::vector<int64_t>> dims;
  bool empty() const { return types.empty(); }
};

/// The dtypes and dims of `values`.
linked_values describe(const std::vector<tensor>& values);

/// The dtypes and dims a message claims, checked before anything is allocated for them
/// (the message may come from the network): known numeric dtypes, as many dims lists as
/// dtypes, dims that are not negative, at most `max_bytes` per value.
status check_linked(const linked_values& what, int64_t max_bytes = int64_t{8} << 30);

/// check_linked, and that the values fit the receiving stage's `inputs`: as many, of their
/// dtypes, ranks and fixed dims. Checked before anything is received, so a bogus message
/// fails its job and leaves the link in step.
status check_linked_inputs(const linked_values& what, const std::vector<value_info>& inputs);

/// What a linked stage does with a failed job, given why its links were aborted (ok: they
/// were not) and whether every send and receive so far went through (`in_step`). On an
/// aborted link (a stage of the replica cannot load, or the replica is being dropped) it fails
/// the job with the abort's reason, as with an aborted group; with links in step (a data error
/// after the traffic went through) it fails the job; otherwise (a send, a receive, or a
/// description that does not fit, whose values then stay unreceived) the link is out of step
/// with the messages, and the executor stops so its replica restarts with fresh links.
enum class link_failure { fail_job, restart_replica };
link_failure on_link_failure(const status& links_aborted, bool in_step);

/// Sends every value, in order, to every receiver of the link (this is its rank 0).
status send_values(communicator& link, const std::vector<tensor>& values);

/// Receives the values `what` describes from the link's rank 0 into fresh host tensors (this
/// is a receiver).
expected<std::vector<tensor>> receive_values(communicator& link, const linked_values& what);

} // namespace troupe::serve
