// gpu_group: ticket checks and the NCCL join of a tensor-parallel GPU session.
#include "runtime/cuda/gpu_group.hpp"

namespace troupe::gpu {

status check_group_ticket(const gpu_group_ticket& group) {
  if (group.size < 1)
    return make_error(errc::invalid_argument, "GPU group: size {}, must be at least 1", group.size);
  if (group.rank < 0 || group.rank >= group.size)
    return make_error(errc::invalid_argument, "GPU group: rank {} is not in 0..{}", group.rank,
                      group.size - 1);
  if (group.size > 1)
    if (auto id = cuda::nccl_id_from_bytes(group.nccl_id); !id)
      return id.error().with_context("GPU group");
  return status::ok();
}

expected<std::unique_ptr<cuda::nccl_communicator>> join_group(const gpu_group_ticket& group,
                                                              int device, cudaStream_t stream) {
  TROUPE_TRY_STATUS(check_group_ticket(group));
  if (group.size == 1)
    return std::unique_ptr<cuda::nccl_communicator>{};
  auto comm =
      cuda::nccl_communicator::create(group.nccl_id, group.rank, group.size, device, stream);
  if (!comm)
    return comm.error().with_context(
        fmt::format("joining the GPU group as rank {} of {}", group.rank, group.size));
  return std::move(*comm);
}

} // namespace troupe::gpu
