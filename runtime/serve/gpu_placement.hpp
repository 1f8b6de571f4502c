// gpu_placement: which GPU each GPU replica of a model goes on, by memory and load.
#pragma once

#include <cstddef>
#include <cstdint>
#include <variant>
#include <vector>

namespace troupe::serve {

/// A GPU as placement sees it.
struct gpu_load {
  int32_t index = 0;     // the CUDA ordinal
  uint64_t capacity = 0; // bytes replicas may use: the free memory when measured, else the total
  uint64_t planned = 0;  // bytes of the replicas placed on it
  uint32_t replicas = 0;
  uint64_t free() const { return capacity > planned ? capacity - planned : 0; }
};

/// Places `instances` replicas of `bytes` each, replica r on one of allowed[r] (ordinals; an
/// empty list, or no lists at all, allows every GPU): the GPU with the fewest replicas, then
/// the most free memory, that still holds it; several replicas may share a GPU. Returns the
/// position in `gpus` of each replica's GPU, or how many replicas would fit.
std::variant<std::vector<size_t>, int64_t>
place_gpu_replicas(std::vector<gpu_load> gpus, const std::vector<std::vector<int32_t>>& allowed,
                   int64_t instances, uint64_t bytes);

} // namespace troupe::serve
