// gpu_placement: which GPU each shard (pipeline stage or tensor-parallel rank) of each GPU
// replica of a model goes on, by memory and load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <variant>
#include <vector>

namespace troupe::serve {

/// A GPU as placement sees it.
struct gpu_load {
  int32_t index = 0;     // the CUDA ordinal
  uint64_t capacity = 0; // bytes shards may use: the free memory when measured, else the total
  uint64_t planned = 0;  // bytes of the shards placed on it
  uint32_t shards = 0;   // executors placed on it
  uint64_t free() const { return capacity > planned ? capacity - planned : 0; }
};

/// Places `instances` replicas of shard_bytes.size() shards each (shard i needs
/// shard_bytes[i]), replica r on allowed[r] (ordinals; an empty list, or no lists at all,
/// allows every GPU). Each shard goes to the GPU holding the fewest shards of its own replica
/// (so a replica's stages and ranks get distinct GPUs while there are enough), then the fewest
/// shards, then the most free memory, that still holds it; GPUs are shared otherwise. Returns
/// per replica the position in `gpus` of each shard's GPU, or how many replicas would fit.
/// `linked_ranks` > 0: the replica's stages, of that many ranks each, are joined by exchange
/// links, and a shard of stage s + 1 avoids the GPU of stage s's rank 0 (its sender) before
/// anything else, since NCCL cannot send within one GPU.
std::variant<std::vector<std::vector<size_t>>, int64_t>
place_gpu_replicas(std::vector<gpu_load> gpus, const std::vector<std::vector<int32_t>>& allowed,
                   int64_t instances, std::span<const uint64_t> shard_bytes,
                   size_t linked_ranks = 0);

/// With exchange links, the first stage s whose link (its rank 0 to every rank of stage s + 1)
/// would join two shards on one GPU, which NCCL cannot send between; none when every link
/// spans distinct GPUs. `shard_gpus` holds one replica's shards, stage by stage: [s * ranks + r].
std::optional<size_t> link_within_one_gpu(std::span<const int32_t> shard_gpus, size_t stages,
                                          size_t ranks);

} // namespace troupe::serve
