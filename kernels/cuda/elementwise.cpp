// elementwise (CUDA): argument checks and broadcast planning in front of the kernels.
#include "kernels/cuda/elementwise.hpp"

#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/cuda_plans.hpp"
#include "kernels/cuda/launch.hpp"

namespace troupe::cuda {

namespace {
status check_count(int64_t n, const char* op) {
  if (n < 0)
    return make_error(errc::invalid_argument, "{}: negative element count {}", op, n);
  return status::ok();
}
} // namespace

status binary(binary_op op, dtype t, std::span<const int64_t> a_dims, const void* a,
              std::span<const int64_t> b_dims, const void* b, void* out, cudaStream_t stream) {
  TROUPE_TRY_STATUS(require_gpu_float(t, "binary"));
  auto plan = plan_binary(a_dims, b_dims);
  if (!plan)
    return plan.error();
  if (plan->walk.total == 0)
    return status::ok();
  return check(detail::launch_binary(op, t, a, b, out, plan->walk, plan->same, stream),
               "binary kernel");
}

status unary(unary_op op, dtype t, const void* x, void* y, int64_t n, cudaStream_t stream,
             float lo, float hi) {
  TROUPE_TRY_STATUS(require_gpu_float(t, "unary"));
  TROUPE_TRY_STATUS(check_count(n, "unary"));
  if (n == 0)
    return status::ok();
  return check(detail::launch_unary(op, t, x, y, n, lo, hi, stream), "unary kernel");
}

status cast(dtype from, const void* x, dtype to, void* y, int64_t n, cudaStream_t stream) {
  TROUPE_TRY_STATUS(require_gpu_float(from, "cast"));
  TROUPE_TRY_STATUS(require_gpu_float(to, "cast"));
  TROUPE_TRY_STATUS(check_count(n, "cast"));
  if (n == 0)
    return status::ok();
  if (from == to)
    return check(cudaMemcpyAsync(y, x, static_cast<size_t>(n) * size_of(to),
                                 cudaMemcpyDeviceToDevice, stream),
                 "cast: cudaMemcpyAsync");
  return check(detail::launch_cast(from, x, to, y, n, stream), "cast kernel");
}

} // namespace troupe::cuda
