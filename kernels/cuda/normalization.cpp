// normalization (CUDA): shape checks in front of the LayerNorm and Softmax kernels.
#include "kernels/cuda/normalization.hpp"

#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/cuda_plans.hpp"
#include "kernels/cuda/launch.hpp"

namespace troupe::cuda {

status layer_norm(dtype t, std::span<const int64_t> dims, int64_t axis, const void* x,
                  const void* gamma, const void* beta, void* y, float epsilon,
                  cudaStream_t stream) {
  TROUPE_TRY_STATUS(require_gpu_float(t, "layer_norm"));
  auto rows = plan_rows(dims, axis);
  if (!rows)
    return rows.error().with_context("layer_norm");
  if (gamma == nullptr)
    return make_error(errc::invalid_argument, "layer_norm: gamma is required");
  if (!(epsilon >= 0.0f))
    return make_error(errc::invalid_argument, "layer_norm: epsilon {} is not >= 0", epsilon);
  if (rows->rows == 0 || rows->cols == 0)
    return status::ok();
  return check(detail::launch_layer_norm(t, x, gamma, beta, y, *rows, epsilon, stream),
               "layer_norm kernel");
}

status softmax(dtype t, std::span<const int64_t> dims, const void* x, void* y,
               cudaStream_t stream) {
  TROUPE_TRY_STATUS(require_gpu_float(t, "softmax"));
  auto rows = plan_rows(dims, -1);
  if (!rows)
    return rows.error().with_context("softmax");
  if (rows->rows == 0 || rows->cols == 0)
    return status::ok();
  return check(detail::launch_softmax(t, x, y, *rows, stream), "softmax kernel");
}

} // namespace troupe::cuda
