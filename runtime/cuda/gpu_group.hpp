// gpu_group: a GPU session's tensor-parallel group: checking its ticket and joining it.
#pragma once

#include <memory>

#include <cuda_runtime_api.h>

#include "kernels/cuda/nccl_communicator.hpp"
#include "runtime/gpu_session.hpp"

namespace troupe::gpu {

/// ok for a usable ticket (size at least 1, rank in 0..size-1 and, for more than one rank, an
/// NCCL id of NCCL_UNIQUE_ID_BYTES); `invalid_argument` saying what is wrong otherwise. Makes
/// no CUDA or NCCL call, so a bad ticket fails before anything blocks.
status check_group_ticket(const gpu_group_ticket& group);

/// The communicator of a checked ticket's group on GPU `device`, enqueuing on `stream` (the
/// session's compute stream, so collectives need no extra synchronization); null for a group
/// of one. Blocks until every rank of the group has joined.
expected<std::unique_ptr<cuda::nccl_communicator>> join_group(const gpu_group_ticket& group,
                                                              int device, cudaStream_t stream);

} // namespace troupe::gpu
