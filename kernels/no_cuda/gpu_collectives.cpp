// gpu_collectives without the CUDA backend: NCCL is not there.
#include "kernels/gpu_collectives.hpp"

namespace troupe {

namespace {
status no_nccl() {
  return make_error(errc::unavailable,
                    "troupe was built without the CUDA backend: no NCCL communicator");
}
} // namespace

expected<std::vector<std::byte>> make_nccl_unique_id() { return no_nccl(); }

expected<std::unique_ptr<communicator>> make_nccl_communicator(std::span<const std::byte>, int, int,
                                                               int) {
  return no_nccl();
}

} // namespace troupe
