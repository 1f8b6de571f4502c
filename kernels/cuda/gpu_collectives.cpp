// gpu_collectives with the CUDA backend: ncclGetUniqueId and nccl_communicator.
#include "kernels/gpu_collectives.hpp"

#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/nccl_communicator.hpp"

namespace troupe {

expected<std::vector<std::byte>> make_nccl_unique_id() {
  ncclUniqueId id;
  TROUPE_CUDA_TRY(ncclGetUniqueId(&id));
  return cuda::nccl_id_bytes(id);
}

expected<std::unique_ptr<communicator>> make_nccl_communicator(std::span<const std::byte> id,
                                                               int rank, int size, int device) {
  auto made = cuda::nccl_communicator::create(id, rank, size, device);
  if (!made)
    return made.error();
  return std::unique_ptr<communicator>(std::move(*made));
}

} // namespace troupe
