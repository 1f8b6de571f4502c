// collective_ops: AllReduceSum and AllGather (domain "troupe"), the exchanges that
// split_tensor_parallel puts into rank graphs; they run through exec_context::comm.
#include <cstring>

#include "runtime/ops/op_registry.hpp"

namespace troupe {
namespace {

status no_communicator(const std::string& label) {
  return make_error(errc::invalid_argument, "{} exchanges between tensor-parallel ranks and needs a "
                    "communicator (session_options::comm / plan_options::comm); none was given",
                    label);
}

class all_reduce_sum_kernel final : public op_kernel {
public:
  explicit all_reduce_sum_kernel(std::string label) : label_(std::move(label)) {}
  status run(exec_context& ctx, std::span<const tensor> in, std::span<tensor> out) override {
    if (!ctx.comm)
      return no_communicator(label_);
    if (in[0].nbytes() > 0)
      std::memcpy(out[0].raw(), in[0].raw(), in[0].nbytes());
    return ctx.comm->all_reduce_sum(out[0]);
  }

private:
  std::string label_;
};

class all_gather_kernel final : public op_kernel {
public:
  all_gather_kernel(std::string label, int axis, int64_t ranks)
    : label_(std::move(label)), axis_(axis), ranks_(ranks) {}
  status run(exec_context& ctx, std::span<const tensor> in, std::span<tensor> out) override {
    if (!ctx.comm)
      return no_communicator(label_);
    if (ctx.comm->size() != ranks_)
      return make_error(errc::invalid_argument, "{} was split for {} ranks, the communicator has {}",
                        label_, ranks_, ctx.comm->size());
    return ctx.comm->all_gather(in[0], out[0], axis_);
  }

private:
  std::string label_;
  int axis_;
  int64_t ranks_;
};

expected<built_op> build_all_reduce_sum(const node& n, std::span<const value_desc> in,
                                        build_context&) {
  if (in.size() != 1 || !in[0].present())
    return bad_input(n, "AllReduceSum takes one input");
  if (in[0].type != dtype::f32 && in[0].type != dtype::f16 && in[0].type != dtype::bf16)
    return bad_input(n, fmt::format("AllReduceSum sums float32, float16 or bfloat16, not {}",
                                    to_string(in[0].type)));
  built_op op;
  op.outputs.push_back({in[0].type, in[0].dims, {}, nullptr});
  op.kernel = std::make_unique<all_reduce_sum_kernel>(n.label());
  return op;
}

expected<built_op> build_all_gather(const node& n, std::span<const value_desc> in, build_context&) {
  if (in.size() != 1 || !in[0].present())
    return bad_input(n, "AllGather takes one input");
  if (!n.has_attr("axis") || !n.has_attr("ranks"))
    return bad_input(n, "AllGather needs the attributes 'axis' and 'ranks'");
  const int64_t ranks = n.attr_int("ranks", 0);
  if (ranks < 1)
    return bad_input(n, fmt::format("AllGather: ranks must be at least 1, got {}", ranks));
  auto axis = normalize_axis(n.attr_int("axis", 0), static_cast<int64_t>(in[0].dims.size()));
  if (!axis)
    return axis.error().with_context(n.label());
  shape dims = in[0].dims;
  dims[static_cast<size_t>(*axis)] *= ranks;
  built_op op;
  op.outputs.push_back({in[0].type, std::move(dims), {}, nullptr});
  op.kernel = std::make_unique<all_gather_kernel>(n.label(), static_cast<int>(*axis), ranks);
  return op;
}

} // namespace

void register_collective_ops(op_registry& r) {
  // Not deterministic in the folding sense: the result depends on the other ranks, so a
  // collective of constants must still run.
  r.add({.type = "AllReduceSum", .build = build_all_reduce_sum, .deterministic = false});
  r.add({.type = "AllGather", .build = build_all_gather, .deterministic = false});
}

} // namespace troupe
