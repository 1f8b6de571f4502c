// shape ops (CUDA): planning and argument checks in front of the data-movement kernels.
#include "kernels/cuda/shape_ops.hpp"

#include "kernels/cuda/cuda_error.hpp"
#include "kernels/cuda/cuda_plans.hpp"
#include "kernels/cuda/launch.hpp"

namespace troupe::cuda {

namespace {
status require_copyable(dtype t, const char* op) {
  const size_t bytes = size_of(t);
  if (bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8)
    return status::ok();
  return make_error(errc::unsupported, "{}: dtype {} has no CUDA copy kernel", op, to_string(t));
}

status run_slice(dtype t, const slice_plan& plan, const void* in, void* out, cudaStream_t stream) {
  if (plan.walk.total == 0)
    return status::ok();
  return check(detail::launch_strided_copy(size_of(t), in, plan.in_offset, out, plan.walk, stream),
               "strided copy kernel");
}
} // namespace

status transpose(dtype t, std::span<const int64_t> dims, std::span<const int64_t> perm,
                 const void* in, void* out, cudaStream_t stream) {
  TROUPE_TRY_STATUS(require_copyable(t, "transpose"));
  auto plan = plan_transpose(dims, perm);
  if (!plan)
    return plan.error();
  if (plan->walk.total == 0)
    return status::ok();
  if (plan->tiled)
    return check(detail::launch_transpose_tiled(size_of(t), in, out, plan->batch, plan->rows,
                                                 plan->cols, stream),
                 "tiled transpose kernel");
  return check(detail::launch_strided_copy(size_of(t), in, 0, out, plan->walk, stream),
               "strided copy kernel");
}

status slice(dtype t, std::span<const int64_t> dims, std::span<const int64_t> starts,
             std::span<const int64_t> ends, std::span<const int64_t> axes,
             std::span<const int64_t> steps, const void* in, void* out, cudaStream_t stream) {
  TROUPE_TRY_STATUS(require_copyable(t, "slice"));
  auto plan = plan_slice(dims, starts, ends, axes, steps);
  if (!plan)
    return plan.error();
  return run_slice(t, *plan, in, out, stream);
}

status split(dtype t, std::span<const int64_t> dims, int64_t axis, std::span<const int64_t> sizes,
             const void* in, std::span<void* const> outs, cudaStream_t stream) {
  TROUPE_TRY_STATUS(require_copyable(t, "split"));
  if (outs.size() != sizes.size())
    return make_error(errc::invalid_argument, "split: {} outputs for {} part sizes", outs.size(),
                      sizes.size());
  auto parts = plan_split(dims, axis, sizes);
  if (!parts)
    return parts.error();
  for (size_t i = 0; i < parts->size(); ++i)
    TROUPE_TRY_STATUS(run_slice(t, (*parts)[i], in, outs[i], stream));
  return status::ok();
}

status concat(dtype t, std::span<const shape> in_dims, std::span<const void* const> ins,
              int64_t axis, void* out, cudaStream_t stream) {
  TROUPE_TRY_STATUS(require_copyable(t, "concat"));
  if (in_dims.size() != ins.size())
    return make_error(errc::invalid_argument, "concat: {} inputs for {} shapes", ins.size(),
                      in_dims.size());
  auto plan = plan_concat(in_dims, axis);
  if (!plan)
    return plan.error();
  for (size_t i = 0; i < ins.size(); ++i) {
    if (plan->outer == 0 || plan->in_columns[i] == 0)
      continue;
    TROUPE_TRY_STATUS(check(detail::launch_copy_columns(size_of(t), ins[i], out, plan->outer,
                                                        plan->in_columns[i], plan->out_columns,
                                                        plan->column_offset[i], stream),
                            "concat kernel"));
  }
  return status::ok();
}

status gather(dtype t, std::span<const int64_t> data_dims, const void* data, dtype index_type,
              std::span<const int64_t> index_dims, const void* indices, int64_t axis, void* out,
              int* error_flag, cudaStream_t stream) {
  TROUPE_TRY_STATUS(require_copyable(t, "gather"));
  if (index_type != dtype::i32 && index_type != dtype::i64)
    return make_error(errc::invalid_argument, "gather: indices must be int32 or int64, not {}",
                      to_string(index_type));
  if (error_flag == nullptr)
    return make_error(errc::invalid_argument, "gather: an error flag is required");
  auto plan = plan_gather(data_dims, index_dims, axis);
  if (!plan)
    return plan.error();
  if (plan->outer * plan->indices * plan->inner == 0)
    return status::ok();
  return check(detail::launch_gather(size_of(t), data, index_type == dtype::i64, indices, out,
                                     plan->outer, plan->axis_dim, plan->inner, plan->indices,
                                     error_flag, stream),
               "gather kernel");
}

status gather_error(const int* error_flag, cudaStream_t stream) {
  int flag = 0;
  TROUPE_CUDA_TRY(cudaMemcpyAsync(&flag, error_flag, sizeof flag, cudaMemcpyDeviceToHost, stream));
  TROUPE_CUDA_TRY(cudaStreamSynchronize(stream));
  if (flag != 0)
    return make_error(errc::out_of_range, "gather: an index is outside the gathered axis");
  return status::ok();
}

} // namespace troupe::cuda
