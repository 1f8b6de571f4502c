// gpu_collectives in a build with the CUDA backend: forwarded to the plugin's NCCL groups.
#include "kernels/gpu_collectives.hpp"

#include "kernels/cuda_loader/kernels_api_loader.hpp"

namespace troupe {

expected<std::vector<std::byte>> make_nccl_unique_id() {
  auto api = gpu_kernels();
  if (!api)
    return api.error();
  return (*api)->make_nccl_unique_id();
}

expected<std::unique_ptr<communicator>> make_nccl_communicator(std::span<const std::byte> id,
                                                               int rank, int size, int device) {
  auto api = gpu_kernels();
  if (!api)
    return api.error();
  return (*api)->make_nccl_communicator(id, rank, size, device);
}

} // namespace troupe
