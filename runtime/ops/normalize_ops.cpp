// normalize_ops: ONNX Softmax, LogSoftmax, LayerNormalization and the Reduce* family.
#include "runtime/ops/op_registry.hpp"

#include <algorithm>
#include <vector>

#include "kernels/cpu/layer_norm.hpp"
#include "kernels/cpu/reduce.hpp"
#include "kernels/cpu/softmax.hpp"

namespace troupe {
namespace {

int64_t product(const shape& dims, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i)
    p *= dims[i];
  return p;
}

status require_single_f32(const node& n, std::span<const value_desc> in) {
  if (in.empty() || !in[0].present())
    return bad_input(n, "needs input X");
  if (in[0].type != dtype::f32)
    return make_error(errc::unsupported, "{}: only float32 is supported, got {}", n.label(),
                      to_string(in[0].type));
  return status::ok();
}

// ---- Softmax, LogSoftmax -------------------------------------------------------------

class softmax_kernel final : public op_kernel {
public:
  explicit softmax_kernel(std::unique_ptr<cpu::softmax_op> op) : op_(std::move(op)) {}

  status run(exec_context& ctx, std::span<const tensor> in, std::span<tensor> out) override {
    return op_->run(ctx.cpu, in[0].data<float>(), out[0].data<float>());
  }

private:
  std::unique_ptr<cpu::softmax_op> op_;
};

expected<built_op> build_softmax(const node& n, std::span<const value_desc> in,
                                 build_context& bctx, bool log) {
  if (in.size() != 1)
    return bad_input(n, fmt::format("needs 1 input, got {}", in.size()));
  TROUPE_TRY_STATUS(require_single_f32(n, in));
  const shape& dims = in[0].dims;
  const auto rank = static_cast<int64_t>(dims.size());
  if (rank == 0)
    return bad_input(n, "input must have rank >= 1");
  // Before opset 13 the input is coerced to 2-D [before axis, from axis] and normalized
  // over the second dim; from 13 on, softmax runs along the one axis.
  const bool coerce_2d = bctx.opset < 13;
  const int64_t attr_axis = n.attr_int("axis", coerce_2d ? 1 : -1);
  int64_t axis = attr_axis;
  if (!(coerce_2d && attr_axis == rank)) {
    auto normalized = normalize_axis(attr_axis, rank);
    if (!normalized)
      return bad_input(n, normalized.error().message());
    axis = *normalized;
  }
  const auto a = static_cast<size_t>(axis);
  const int64_t outer = product(dims, 0, a);
  const int64_t mid = coerce_2d ? product(dims, a, dims.size()) : dims[a];
  const int64_t inner = coerce_2d ? 1 : product(dims, a + 1, dims.size());
  auto op = cpu::softmax_op::create(bctx.cpu, outer, mid, inner, log);
  if (!op)
    return op.error().with_context(n.label());
  built_op built;
  built.outputs.push_back({dtype::f32, dims, {}, nullptr});
  built.kernel = std::make_unique<softmax_kernel>(std::move(*op));
  return built;
}

// ---- LayerNormalization --------------------------------------------------------------

/// Copies `src` with dims `from` (unidirectionally broadcastable to `to`) into all of `to`.
void broadcast_into(const float* src, const shape& from, const shape& to, float* dst) {
  const size_t rank = to.size(), offset = rank - from.size();
  std::vector<int64_t> strides(rank, 0);
  int64_t stride = 1;
  for (size_t i = from.size(); i-- > 0;) {
    strides[offset + i] = from[i] == 1 ? 0 : stride;
    stride *= from[i];
  }
  std::vector<int64_t> index(rank, 0);
  const int64_t total = numel_of(to);
  for (int64_t flat = 0; flat < total; ++flat) {
    int64_t s = 0;
    for (size_t i = 0; i < rank; ++i)
      s += index[i] * strides[i];
    dst[flat] = src[s];
    for (size_t i = rank; i-- > 0;) {
      if (++index[i] < to[i])
        break;
      index[i] = 0;
    }
  }
}

/// Scale or B: passed through when it already has one value per normalized element,
/// otherwise broadcast into a buffer (once when constant, else on every run).
struct norm_param {
  bool present = false;
  bool expand = false;      // broadcast at run time into `values`
  bool precomputed = false; // `values` holds the constant, broadcast at build time
  shape dims;
  std::vector<float> values;

  const float* resolve(const tensor& t, const shape& target) {
    if (!present)
      return nullptr;
    if (precomputed)
      return values.data();
    if (!expand)
      return t.data<float>();
    broadcast_into(t.data<float>(), dims, target, values.data());
    return values.data();
  }
};

expected<norm_param> make_norm_param(const node& n, std::span<const value_desc> in, size_t i,
                                     const shape& target) {
  norm_param p;
  if (i >= in.size() || !in[i].present())
    return p;
  const value_desc& d = in[i];
  if (d.type != dtype::f32)
    return bad_input(n, fmt::format("input {} is {}, expected float32", i, to_string(d.type)));
  bool ok = d.dims.size() <= target.size();
  for (size_t k = 0; ok && k < d.dims.size(); ++k) {
    const int64_t t = target[target.size() - d.dims.size() + k];
    ok = d.dims[k] == 1 || d.dims[k] == t;
  }
  if (!ok)
    return bad_input(n, fmt::format("input {} {} does not broadcast to the normalized shape {}",
                                    i, to_string(d.dims), to_string(target)));
  p.present = true;
  p.dims = d.dims;
  if (numel_of(d.dims) != numel_of(target)) {
    p.values.resize(static_cast<size_t>(numel_of(target)));
    if (d.constant) {
      broadcast_into(d.constant->data<float>(), d.dims, target, p.values.data());
      p.precomputed = true;
    } else {
      p.expand = true;
    }
  }
  return p;
}

class layer_norm_kernel final : public op_kernel {
public:
  layer_norm_kernel(std::unique_ptr<cpu::layer_norm_op> op, shape normalized, norm_param scale,
                    norm_param bias)
    : op_(std::move(op)), normalized_(std::move(normalized)), scale_(std::move(scale)),
      bias_(std::move(bias)) {}

  status run(exec_context& ctx, std::span<const tensor> in, std::span<tensor> out) override {
    static const tensor none;
    const float* scale = scale_.resolve(in.size() > 1 ? in[1] : none, normalized_);
    const float* bias = bias_.resolve(in.size() > 2 ? in[2] : none, normalized_);
    float* mean = out.size() > 1 && out[1].defined() ? out[1].data<float>() : nullptr;
    float* inv_std = out.size() > 2 && out[2].defined() ? out[2].data<float>() : nullptr;
    return op_->run(ctx.cpu, in[0].data<float>(), scale, bias, out[0].data<float>(), mean,
                    inv_std);
  }

private:
  std::unique_ptr<cpu::layer_norm_op> op_;
  shape normalized_;
  norm_param scale_, bias_;
};

expected<built_op> build_layer_norm(const node& n, std::span<const value_desc> in,
                                    build_context& bctx) {
  if (in.empty() || in.size() > 3)
    return bad_input(n, fmt::format("needs 1 to 3 inputs, got {}", in.size()));
  TROUPE_TRY_STATUS(require_single_f32(n, in));
  if (n.outputs.empty() || n.outputs.size() > 3)
    return bad_input(n, fmt::format("has {} outputs, expected 1 to 3", n.outputs.size()));
  const shape& dims = in[0].dims;
  const auto rank = static_cast<int64_t>(dims.size());
  if (rank == 0)
    return bad_input(n, "input must have rank >= 1");
  auto axis = normalize_axis(n.attr_int("axis", -1), rank);
  if (!axis)
    return bad_input(n, axis.error().message());
  const auto a = static_cast<size_t>(*axis);
  const shape normalized(dims.begin() + static_cast<std::ptrdiff_t>(a), dims.end());
  auto scale = make_norm_param(n, in, 1, normalized);
  if (!scale)
    return scale.error();
  auto bias = make_norm_param(n, in, 2, normalized);
  if (!bias)
    return bias.error();
  cpu::layer_norm_op::options opts;
  opts.epsilon = n.attr_float("epsilon", 1e-5f);
  opts.scale = scale->present;
  opts.shift = bias->present;
  opts.stats = (n.outputs.size() > 1 && !n.outputs[1].empty()) ||
               (n.outputs.size() > 2 && !n.outputs[2].empty());
  auto op = cpu::layer_norm_op::create(bctx.cpu, product(dims, 0, a),
                                       product(dims, a, dims.size()), opts);
  if (!op)
    return op.error().with_context(n.label());
  built_op built;
  built.outputs.push_back({dtype::f32, dims, {}, nullptr});
  // Mean and InvStdDev keep X's dims with the normalized ones set to 1.
  shape stat_dims = dims;
  std::fill(stat_dims.begin() + static_cast<std::ptrdiff_t>(a), stat_dims.end(), 1);
  for (size_t i = 1; i < n.outputs.size(); ++i)
    built.outputs.push_back({dtype::f32, stat_dims, {}, nullptr});
  built.kernel = std::make_unique<layer_norm_kernel>(std::move(*op), normalized,
                                                     std::move(*scale), std::move(*bias));
  return built;
}

// ---- Reduce* -------------------------------------------------------------------------

struct reduce_info {
  const char* type;
  cpu::reduce_kind kind;
};

constexpr reduce_info reduce_ops[] = {
    {"ReduceSum", cpu::reduce_kind::sum},
    {"ReduceMean", cpu::reduce_kind::mean},
    {"ReduceMax", cpu::reduce_kind::max},
    {"ReduceMin", cpu::reduce_kind::min},
    {"ReduceProd", cpu::reduce_kind::prod},
    {"ReduceSumSquare", cpu::reduce_kind::sum_square},
    {"ReduceL1", cpu::reduce_kind::l1},
    {"ReduceL2", cpu::reduce_kind::l2},
    {"ReduceLogSum", cpu::reduce_kind::log_sum},
    {"ReduceLogSumExp", cpu::reduce_kind::log_sum_exp},
};

class reduce_kernel final : public op_kernel {
public:
  reduce_kernel(cpu::reduce_op op, dtype type) : op_(std::move(op)), type_(type) {}

  status run(exec_context&, std::span<const tensor> in, std::span<tensor> out) override {
    switch (type_) {
    case dtype::f32: op_.run(in[0].data<float>(), out[0].data<float>()); break;
    case dtype::f64: op_.run(in[0].data<double>(), out[0].data<double>()); break;
    case dtype::i32: op_.run(in[0].data<int32_t>(), out[0].data<int32_t>()); break;
    case dtype::i64: op_.run(in[0].data<int64_t>(), out[0].data<int64_t>()); break;
    default: return make_error(errc::internal, "reduce kernel built for {}", to_string(type_));
    }
    return status::ok();
  }

private:
  cpu::reduce_op op_;
  dtype type_;
};

expected<std::vector<int64_t>> read_axes(const node& n, std::span<const value_desc> in) {
  // axes became an input in opset 13 (ReduceSum) or 18 (the others); both forms are
  // accepted whatever the opset, and an axes input wins when one is given.
  if (in.size() < 2 || !in[1].present())
    return n.attr_ints("axes");
  const value_desc& d = in[1];
  if (d.type != dtype::i64)
    return bad_input(n, fmt::format("axes must be int64, got {}", to_string(d.type)));
  if (d.dims.size() != 1)
    return bad_input(n, fmt::format("axes must be 1-D, got {}", to_string(d.dims)));
  if (!d.constant)
    return make_error(errc::unsupported, "{}: axes must be a constant", n.label());
  auto v = d.constant->values<int64_t>();
  return std::vector<int64_t>(v.begin(), v.end());
}

expected<built_op> build_reduce(const node& n, std::span<const value_desc> in,
                                const reduce_info& info) {
  if (in.empty() || in.size() > 2 || !in[0].present())
    return bad_input(n, "needs input data and an optional axes input");
  const dtype type = in[0].type;
  const bool floating = type == dtype::f32 || type == dtype::f64;
  const bool integral = type == dtype::i32 || type == dtype::i64;
  if (!floating && !(integral && cpu::reduce_supports_integers(info.kind)))
    return make_error(errc::unsupported, "{}: {} is not supported", n.label(), to_string(type));
  auto axes = read_axes(n, in);
  if (!axes)
    return axes.error();
  const shape& dims = in[0].dims;
  const auto rank = static_cast<int64_t>(dims.size());
  const bool keepdims = n.attr_int("keepdims", 1) != 0;
  const bool noop = n.attr_int("noop_with_empty_axes", 0) != 0;
  std::vector<bool> reduced(dims.size(), axes->empty() && !noop);
  for (int64_t axis : *axes) {
    auto a = normalize_axis(axis, rank);
    if (!a || rank == 0)
      return bad_input(n, fmt::format("axis {} out of range for rank {}", axis, rank));
    if (reduced[static_cast<size_t>(*a)])
      return bad_input(n, fmt::format("axis {} appears twice", axis));
    reduced[static_cast<size_t>(*a)] = true;
  }
  built_op built;
  const bool plain_map = info.kind == cpu::reduce_kind::sum || info.kind == cpu::reduce_kind::mean ||
                         info.kind == cpu::reduce_kind::max || info.kind == cpu::reduce_kind::min ||
                         info.kind == cpu::reduce_kind::prod;
  if (axes->empty() && noop && plain_map) {
    built.outputs.push_back({type, dims, {}, nullptr});
    built.alias_input = 0;
    return built;
  }
  shape out_dims;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (!reduced[i])
      out_dims.push_back(dims[i]);
    else if (keepdims)
      out_dims.push_back(1);
  }
  built.outputs.push_back({type, std::move(out_dims), {}, nullptr});
  built.kernel = std::make_unique<reduce_kernel>(cpu::reduce_op(dims, reduced, info.kind), type);
  return built;
}

} // namespace

void register_normalize_ops(op_registry& registry) {
  registry.add({.type = "Softmax",
                .build = [](const node& n, std::span<const value_desc> in, build_context& b) {
                  return build_softmax(n, in, b, false);
                }});
  registry.add({.type = "LogSoftmax",
                .build = [](const node& n, std::span<const value_desc> in, build_context& b) {
                  return build_softmax(n, in, b, true);
                }});
  registry.add({.type = "LayerNormalization", .build = build_layer_norm});
  for (const reduce_info& info : reduce_ops)
    registry.add({.type = info.type,
                  .build = [&info](const node& n, std::span<const value_desc> in,
                                   build_context&) { return build_reduce(n, in, info); }});
}

} // namespace troupe
