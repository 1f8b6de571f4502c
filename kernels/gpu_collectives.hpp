// gpu_collectives: NCCL groups for code above kernels/, without CUDA or NCCL types.
#pragma once

#include <cstddef>
#include <memory>
#include <span>
#include <vector>

#include "kernels/communicator.hpp"
#include "kernels/status.hpp"

namespace troupe {

/// A fresh NCCL unique id as bytes: one rank makes it and sends it to the others in a message.
/// `unavailable` in a build without the CUDA backend.
expected<std::vector<std::byte>> make_nccl_unique_id();

/// Joins the NCCL group `id` names as `rank` of `size` on GPU `device` (blocks until all
/// ranks have joined); the communicator enqueues on a stream of its own.
expected<std::unique_ptr<communicator>> make_nccl_communicator(std::span<const std::byte> id,
                                                               int rank, int size, int device);

} // namespace troupe
