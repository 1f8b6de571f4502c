// broadcast_plan: validates numpy broadcasting and collapses dims into contiguous runs.
#include "kernels/cpu/broadcast_plan.hpp"

namespace troupe::cpu {

expected<broadcast_plan> plan_broadcast(std::span<const int64_t> out_dims,
                                        std::span<const shape> inputs) {
  if (inputs.empty() || inputs.size() > static_cast<size_t>(max_operands))
    return make_error(errc::internal, "plan_broadcast takes 1 to {} operands", max_operands);
  auto total = checked_numel(out_dims);
  if (!total)
    return total.error();
  broadcast_plan p;
  p.operands = static_cast<int>(inputs.size());
  p.total = *total;
  const size_t rank = out_dims.size();

  // Per output dim (size-1 dims dropped): its size and each operand's element stride there.
  struct dim_row {
    int64_t size;
    std::array<int64_t, max_operands> stride;
  };
  std::vector<dim_row> rows;
  std::array<std::vector<int64_t>, max_operands> in_strides;
  for (size_t k = 0; k < inputs.size(); ++k) {
    const shape& in = inputs[k];
    bool ok = in.size() <= rank;
    for (size_t i = 0; ok && i < in.size(); ++i) {
      int64_t d = in[i], o = out_dims[rank - in.size() + i];
      ok = d == o || d == 1;
    }
    if (!ok)
      return make_error(errc::invalid_argument, "shape {} does not broadcast to {}", to_string(in),
                        to_string(out_dims));
    in_strides[k] = strides_of(in);
  }
  for (size_t i = 0; i < rank; ++i) {
    if (out_dims[i] == 1)
      continue;
    dim_row row{out_dims[i], {}};
    for (size_t k = 0; k < inputs.size(); ++k) {
      const shape& in = inputs[k];
      const size_t lead = rank - in.size();
      row.stride[k] = (i < lead || in[i - lead] == 1) ? 0 : in_strides[k][i - lead];
    }
    rows.push_back(row);
  }
  if (p.total == 0 || rows.empty())
    return p; // nothing to walk, or one element


  // Merge a dim into the one inside it when every operand walks both as one longer dim.
  std::vector<dim_row> merged{rows.back()};
  for (size_t i = rows.size() - 1; i-- > 0;) {
    dim_row& in = merged.back();
    bool fuse = true;
    for (size_t k = 0; k < inputs.size(); ++k)
      fuse = fuse && rows[i].stride[k] == in.stride[k] * in.size;
    if (fuse)
      in.size *= rows[i].size;
    else
      merged.push_back(rows[i]);
  }
  std::reverse(merged.begin(), merged.end());

  // The innermost dim is the run. An operand's stride there is 0 or 1: every input dim inside
  // it broadcasts to a dropped size-1 output dim, so it is 1 too.
  p.inner = merged.back().size;
  for (size_t k = 0; k < inputs.size(); ++k)
    p.inner_step[k] = merged.back().stride[k] != 0;
  for (size_t i = 0; i + 1 < merged.size(); ++i) {
    p.outer_dims.push_back(merged[i].size);
    for (size_t k = 0; k < inputs.size(); ++k)
      p.outer_strides[k].push_back(merged[i].stride[k]);
  }
  return p;
}

} // namespace troupe::cpu
