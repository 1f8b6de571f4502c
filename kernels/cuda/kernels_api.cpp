// kernels_api: the CUDA backend plugin's kernels-level entry points (device list, allocator
// use, NCCL groups), exported as one table for the loader in libtroupe_kernels.so.
#include "kernels/cuda_loader/kernels_api.hpp"

#include "kernels/cuda/cuda_device.hpp"
#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/device_allocator.hpp"
#include "kernels/cuda/nccl_communicator.hpp"

namespace troupe {

namespace {

gpu_memory memory_use(int32_t index) {
  const auto* cache = cuda::existing_device_cache(index);
  if (!cache)
    return {};
  const auto s = cache->stats();
  return gpu_memory{s.in_use, s.cached, s.peak_in_use};
}

expected<std::vector<std::byte>> make_unique_id() {
  ncclUniqueId id;
  TROUPE_CUDA_TRY(ncclGetUniqueId(&id));
  return cuda::nccl_id_bytes(id);
}

expected<std::unique_ptr<communicator>> make_communicator(std::span<const std::byte> id, int rank,
                                                          int size, int device) {
  auto made = cuda::nccl_communicator::create(id, rank, size, device);
  if (!made)
    return made.error();
  return std::unique_ptr<communicator>(std::move(*made));
}

} // namespace

} // namespace troupe

extern "C" const troupe::gpu_kernels_api* troupe_cuda_kernels_api() {
  static const troupe::gpu_kernels_api api{
      troupe::gpu_kernels_api_version,
      &troupe::cuda::list_devices,
      &troupe::memory_use,
      &troupe::make_unique_id,
      &troupe::make_communicator,
  };
  return &api;
}
