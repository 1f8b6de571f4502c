// reduce (CUDA): axis planning in front of the reduction kernel.
#include "kernels/cuda/reduce.hpp"

#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/cuda_plans.hpp"
#include "kernels/cuda/launch.hpp"

namespace troupe::cuda {

status reduce(reduce_op op, dtype t, std::span<const int64_t> dims, std::span<const int64_t> axes,
              const void* x, void* y, cudaStream_t stream) {
  TROUPE_TRY_STATUS(require_gpu_float(t, "reduce"));
  auto plan = plan_reduce(dims, axes, false);
  if (!plan)
    return plan.error();
  if (plan->kept.total == 0)
    return status::ok();
  return check(detail::launch_reduce(op, t, x, y, plan->kept, plan->reduced,
                                     plan->inner_contiguous, stream), "reduce kernel");
}

} // namespace troupe::cuda
