// stage_forward: how every kind of shard executor hands a micro-batch on once its stage ran.
#pragma once

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <utility>
#include <vector>

#include "actors/actors.hpp"

namespace troupe {

/// Sends the job (the stage's outputs as its values) to every rank of the next stage, or to
/// the merger after the last stage.
template <class Self>
void pass_on(Self* self, stage_job&& job) {
  if (job.next_stages.empty())
    return self->send(caf::actor_cast<merger_actor>(job.merger), atom::merge_v, std::move(job));
  // Every rank of the next stage gets the same inputs: the tensors are shared, not copied.
  const auto ranks = std::min<size_t>(std::max<uint32_t>(job.ranks, 1), job.next_stages.size());
  std::vector<caf::actor> next(job.next_stages.begin(),
                               job.next_stages.begin() + static_cast<std::ptrdiff_t>(ranks));
  job.next_stages.erase(job.next_stages.begin(),
                        job.next_stages.begin() + static_cast<std::ptrdiff_t>(ranks));
  for (size_t r = 1; r < ranks; ++r)
    self->send(caf::actor_cast<shard_executor_actor>(next[r]), atom::run_v, job);
  self->send(caf::actor_cast<shard_executor_actor>(next[0]), atom::run_v, std::move(job));
}

/// Counts a batch the executor was given and throws the injected fault on the batch `spec`
/// names (supervision tests; `fault_after_batches` <= 0 never faults).
inline void count_batch(int64_t& batches, const shard_spec& spec) {
  ++batches;
  if (spec.fault_after_batches > 0 && batches == spec.fault_after_batches)
    throw std::runtime_error("injected executor fault");
}

/// Fails the job's batch: the merger answers it with `why` (the stage's context included).
template <class Self>
void fail_job(Self* self, stage_job&& job, caf::error why, uint32_t rank = 0) {
  job.error = std::move(why);
  job.values.clear();
  job.rank = rank;
  self->send(caf::actor_cast<merger_actor>(job.merger), atom::merge_v, std::move(job));
}

} // namespace troupe
