// gpu_lowering: one lowering per ONNX operator onto the CUDA kernels, plus the arena plan.
#include "runtime/cuda/gpu_lowering.hpp"

#include <algorithm>
#include <limits>
#include <unordered_set>

#include "kernels/cuda/cuda_plans.hpp"
#include "runtime/memory_planner.hpp"
#include "runtime/passes/graph_uses.hpp"

namespace troupe::gpu {
namespace {

bool is_device_float(dtype t) {
  return t == dtype::f32 || t == dtype::f16 || t == dtype::bf16;
}

class lowerer {
public:
  lowerer(const graph& g, const std::unordered_map<std::string, value_desc>& descs,
          gpu_precision precision, int group_size)
    : g_(g), descs_(descs), group_size_(group_size) {
    out_.compute = storage_type(precision);
    out_.allow_tf32 = precision == gpu_precision::tf32;
  }

  expected<lowered_graph> run(std::span<const shape> input_dims) {
    if (input_dims.size() != g_.inputs.size())
      return make_error(errc::invalid_argument, "{}: model has {} inputs, {} shapes given",
                        g_.source, g_.inputs.size(), input_dims.size());
    for (size_t i = 0; i < g_.inputs.size(); ++i)
      TROUPE_TRY_STATUS(add_input(i, input_dims[i]));
    const auto live = live_values(g_);
    for (const auto& n : g_.nodes) {
      bool is_live = false, all_constant = true;
      for (const auto& o : n.outputs) {
        if (o.empty())
          continue;
        is_live = is_live || live.count(o) != 0;
        auto it = descs_.find(o);
        all_constant = all_constant && it != descs_.end() && it->second.constant;
      }
      if (!is_live || all_constant) // dead, or folded on the host by the CPU plan
        continue;
      if (auto st = lower_node(n); !st)
        return status{st.code(), g_.source + ": " + n.label() + ": " + st.message()};
    }
    for (const auto& o : g_.outputs)
      TROUPE_TRY_STATUS(add_output(o.name));
    return std::move(out_);
  }

private:
  // ---- values -------------------------------------------------------------------------------

  dtype device_type(dtype t) const { return is_device_float(t) ? out_.compute : t; }

  int add_value(gpu_value v) {
    out_.values.push_back(std::move(v));
    return static_cast<int>(out_.values.size()) - 1;
  }

  /// A reference that adding a value (output, temporary, value_of) invalidates: operators
  /// copy the dims they keep using (`const shape d = val(id).dims`).
  const gpu_value& val(int id) const { return out_.values[static_cast<size_t>(id)]; }

  status add_input(size_t i, const shape& dims) {
    const auto& info = g_.inputs[i];
    gpu_value v;
    v.name = info.name;
    v.type = info.type;
    v.dims = dims;
    v.kind = value_kind::input;
    v.input_index = static_cast<int>(i);
    const int id = add_value(std::move(v));
    out_.inputs.push_back(id);
    names_[info.name] = id;
    if (is_device_float(info.type) && info.type != out_.compute) {
      const int cast = temporary(info.name + "/cast", out_.compute, dims);
      push(labelled_step(step_kind::cast, "cast input '" + info.name + "'", {id}, {cast}));
      names_[info.name] = cast;
    } else if (!is_device_float(info.type) && is_floating(info.type)) {
      return make_error(errc::unsupported, "{}: input '{}' is {}, which the GPU backend does "
                        "not compute in", g_.source, info.name, to_string(info.type));
    }
    return status::ok();
  }

  status add_output(const std::string& name) {
    auto id = value_of(name);
    if (!id)
      return id.error();
    const auto& d = descs_.at(name);
    const int root = root_of(out_, *id);
    int result = *id;
    if (val(*id).type != d.type) {
      result = temporary(name + "/out", d.type, d.dims);
      push(labelled_step(step_kind::cast, "cast output '" + name + "'", {*id}, {result}));
    } else if (val(root).kind != value_kind::intermediate) {
      result = temporary(name + "/out", d.type, d.dims);
      push(labelled_step(step_kind::copy, "copy output '" + name + "'", {*id}, {result}));
    }
    out_.outputs.push_back(result);
    out_.output_infos.push_back({name, d.type, d.dims});
    return status::ok();
  }

  /// The value named `name`, creating a constant for a folded or initializer value.
  expected<int> value_of(const std::string& name) {
    if (auto it = names_.find(name); it != names_.end())
      return it->second;
    auto d = descs_.find(name);
    if (d == descs_.end())
      return make_error(errc::internal, "value '{}' has no dims from the CPU plan", name);
    if (!d->second.constant)
      return make_error(errc::internal, "value '{}' is used before it is computed", name);
    if (is_floating(d->second.type) && !is_device_float(d->second.type))
      return make_error(errc::unsupported, "constant '{}' is {}, which the GPU backend does not "
                        "compute in", name, to_string(d->second.type));
    gpu_value v;
    v.name = name;
    v.type = device_type(d->second.type);
    v.dims = d->second.dims;
    v.kind = value_kind::constant;
    v.host = d->second.constant;
    const int id = add_value(std::move(v));
    names_[name] = id;
    return id;
  }

  /// Value ids of n's inputs (-1 for absent ones).
  expected<std::vector<int>> inputs_of(const node& n) {
    std::vector<int> ids;
    for (const auto& name : n.inputs) {
      if (name.empty()) {
        ids.push_back(-1);
        continue;
      }
      auto id = value_of(name);
      if (!id)
        return id.error();
      ids.push_back(*id);
    }
    return ids;
  }

  /// A new value for output i of n with the dims the CPU plan inferred.
  int output(const node& n, size_t i) {
    const std::string& name = i < n.outputs.size() ? n.outputs[i] : std::string{};
    gpu_value v;
    v.name = name;
    v.type = out_.compute;
    if (auto it = descs_.find(name); !name.empty() && it != descs_.end()) {
      v.type = device_type(it->second.type);
      v.dims = it->second.dims;
    }
    const int id = add_value(std::move(v));
    if (!name.empty())
      names_[name] = id;
    return id;
  }

  /// A temporary value (a fused node's intermediate result).
  int temporary(const std::string& name, dtype t, shape dims) {
    gpu_value v;
    v.name = name;
    v.type = t;
    v.dims = std::move(dims);
    return add_value(std::move(v));
  }

  void push(gpu_step s) { out_.steps.push_back(std::move(s)); }

  static gpu_step labelled_step(step_kind kind, std::string label, std::vector<int> ins,
                                std::vector<int> outs) {
    gpu_step s;
    s.kind = kind;
    s.label = std::move(label);
    s.inputs = std::move(ins);
    s.outputs = std::move(outs);
    return s;
  }

  static gpu_step make_step(step_kind kind, const node& n, std::vector<int> ins,
                            std::vector<int> outs) {
    gpu_step s;
    s.kind = kind;
    s.label = n.label();
    s.inputs = std::move(ins);
    s.outputs = std::move(outs);
    return s;
  }

  /// The integers of constant input i (Slice's starts, Reduce's axes); nullopt when absent.
  expected<std::optional<std::vector<int64_t>>> const_ints(const node& n, size_t i) {
    const auto& name = n.input(i);
    if (name.empty())
      return std::optional<std::vector<int64_t>>{};
    auto d = descs_.find(name);
    if (d == descs_.end() || !d->second.constant)
      return make_error(errc::unsupported, "input {} ('{}') must be a constant", i, name);
    const tensor& t = *d->second.constant;
    std::vector<int64_t> v;
    if (t.type() == dtype::i64)
      v.assign(t.data<int64_t>(), t.data<int64_t>() + t.numel());
    else if (t.type() == dtype::i32)
      v.assign(t.data<int32_t>(), t.data<int32_t>() + t.numel());
    else
      return make_error(errc::unsupported, "input {} ('{}') must be int32 or int64", i, name);
    return std::optional<std::vector<int64_t>>{std::move(v)};
  }

  /// A scalar float constant input (Clip's bounds).
  expected<std::optional<float>> const_float(const node& n, size_t i) {
    const auto& name = n.input(i);
    if (name.empty())
      return std::optional<float>{};
    auto d = descs_.find(name);
    if (d == descs_.end() || !d->second.constant || d->second.constant->numel() != 1 ||
        d->second.constant->type() != dtype::f32)
      return make_error(errc::unsupported, "input {} ('{}') must be a float32 scalar constant",
                        i, name);
    return std::optional<float>{d->second.constant->data<float>()[0]};
  }

  status require_float(const node& n, const std::vector<int>& ids) {
    for (int id : ids)
      if (id >= 0 && !is_device_float(val(id).type))
        return make_error(errc::unsupported, "{} on {} values has no GPU kernel", n.op_type,
                          to_string(val(id).type));
    return status::ok();
  }

  status check_dims(const char* what, const shape& computed, int out) {
    if (computed != val(out).dims)
      return make_error(errc::internal, "{} gives {}, the CPU plan {}", what, to_string(computed),
                        to_string(val(out).dims));
    return status::ok();
  }

  // ---- operators ----------------------------------------------------------------------------

  status lower_node(const node& n) {
    if (!n.domain.empty() && n.domain != "ai.onnx" && n.domain != "troupe")
      return make_error(errc::unsupported, "operator domain '{}' has no GPU lowering", n.domain);
    auto ins = inputs_of(n);
    if (!ins)
      return ins.error();
    const std::string& op = n.op_type;
    if (op == "Conv")
      return lower_conv(n, *ins, false);
    if (op == "TroupeFusedConv")
      return lower_conv(n, *ins, true);
    if (op == "MaxPool" || op == "AveragePool" || op == "GlobalAveragePool" ||
        op == "GlobalMaxPool")
      return lower_pool(n, *ins);
    if (op == "Gemm")
      return lower_gemm(n, *ins);
    if (op == "MatMul")
      return lower_matmul(n, *ins);
    if (auto b = binary_of(op))
      return lower_binary(n, *ins, *b);
    if (op == "Relu" || op == "Sigmoid" || op == "Tanh" || op == "Exp" || op == "Log" ||
        op == "Sqrt" || op == "Neg" || op == "Abs" || op == "Erf" || op == "Clip" || op == "Gelu")
      return lower_unary(n, *ins);
    if (op == "LayerNormalization")
      return lower_layer_norm(n, *ins);
    if (op == "Softmax")
      return lower_softmax(n, *ins);
    if (op == "ReduceMean" || op == "ReduceSum" || op == "ReduceMax")
      return lower_reduce(n, *ins);
    if (op == "Transpose")
      return lower_transpose(n, *ins);
    if (op == "Slice")
      return lower_slice(n, *ins);
    if (op == "Split")
      return lower_split(n, *ins);
    if (op == "Concat")
      return lower_concat(n, *ins);
    if (op == "Gather")
      return lower_gather(n, *ins);
    if (op == "Cast")
      return lower_cast(n, *ins);
    if (op == "Reshape" || op == "Flatten" || op == "Squeeze" || op == "Unsqueeze" ||
        op == "Identity" || op == "Dropout")
      return lower_view(n, *ins);
    if (n.domain == "troupe" && (op == "AllReduceSum" || op == "AllGather"))
      return lower_collective(n, *ins);
    return make_error(errc::unsupported, "operator '{}' has no GPU lowering", op);
  }

  status lower_conv(const node& n, const std::vector<int>& ins, bool fused) {
    const int x = ins[0], w = ins.size() > 1 ? ins[1] : -1;
    const int bias = ins.size() > 2 ? ins[2] : -1, sum = fused && ins.size() > 3 ? ins[3] : -1;
    if (w < 0)
      return make_error(errc::invalid_argument, "weights are missing");
    TROUPE_TRY_STATUS(require_float(n, ins));
    const shape xd = val(x).dims;
    const shape wd = val(w).dims;
    if (xd.size() != 4 || wd.size() != 4)
      return make_error(errc::unsupported, "only 2-D convolutions run on the GPU (input {})",
                        to_string(xd));
    const auto auto_pad = n.attr_string("auto_pad", "NOTSET");
    if (auto_pad != "NOTSET" && auto_pad != "VALID")
      return make_error(errc::unsupported, "auto_pad {} has no GPU lowering", auto_pad);
    const auto pads = n.attr_ints("pads", {0, 0, 0, 0});
    const auto strides = n.attr_ints("strides", {1, 1});
    const auto dilations = n.attr_ints("dilations", {1, 1});
    if (pads.size() != 4 || strides.size() != 2 || dilations.size() != 2)
      return make_error(errc::unsupported, "pads, strides or dilations are not 2-D");
    cuda::conv_params p;
    p.type = out_.compute;
    p.n = xd[0], p.c = xd[1], p.h = xd[2], p.w = xd[3];
    p.k = wd[0], p.r = wd[2], p.s = wd[3];
    p.groups = n.attr_int("group", 1);
    p.stride_h = strides[0], p.stride_w = strides[1];
    p.pad_top = pads[0], p.pad_left = pads[1], p.pad_bottom = pads[2], p.pad_right = pads[3];
    p.dilation_h = dilations[0], p.dilation_w = dilations[1];
    p.bias = bias >= 0;
    p.allow_tf32 = out_.allow_tf32;
    if (wd[1] * p.groups != p.c)
      return make_error(errc::invalid_argument, "weights {} do not match {} input channels in {} "
                        "groups", to_string(wd), p.c, p.groups);
    std::string activation = fused ? n.attr_string("activation") : std::string{};
    // A summand with ReLU or no activation (a ResNet block's shortcut) goes into the
    // convolution step as its residual: cuDNN adds it in the same call as bias and ReLU.
    const bool residual = sum >= 0 && (activation.empty() || activation == "Relu");
    if (activation == "Relu" && (sum < 0 || residual)) {
      p.activation = cuda::conv_activation::relu;
      activation.clear();
    }
    auto od = cuda::conv_output(p);
    if (!od)
      return make_error(errc::unsupported, "{}", od.error().message());
    const int y = output(n, 0);
    TROUPE_TRY_STATUS(check_dims("the convolution", {od->n, od->k, od->p, od->q}, y));
    if (residual) {
      if (val(sum).dims != val(y).dims)
        return make_error(errc::internal, "the summand {} is not the convolution's {}",
                          to_string(val(sum).dims), to_string(val(y).dims));
      gpu_step s = make_step(step_kind::conv, n, {x, w, bias, sum}, {y});
      s.conv = p;
      push(std::move(s));
      return status::ok();
    }
    const bool tail = sum >= 0 || !activation.empty();
    int current = tail ? temporary(n.label() + "/conv", out_.compute, val(y).dims) : y;
    gpu_step s = make_step(step_kind::conv, n, {x, w, bias}, {current});
    s.conv = p;
    push(std::move(s));
    if (sum >= 0) {
      const int added = activation.empty() ? y : temporary(n.label() + "/sum", out_.compute,
                                                           val(y).dims);
      gpu_step a = make_step(step_kind::binary, n, {current, sum}, {added});
      a.binary = cuda::binary_op::add;
      push(std::move(a));
      current = added;
    }
    if (activation.empty())
      return status::ok();
    gpu_step act = make_step(step_kind::unary, n, {current}, {y});
    if (activation == "Relu") {
      act.unary = cuda::unary_op::relu;
    } else if (activation == "Sigmoid") {
      act.unary = cuda::unary_op::sigmoid;
    } else if (activation == "Clip") {
      act.unary = cuda::unary_op::clip;
      act.lo = n.attr_float("min", -std::numeric_limits<float>::infinity());
      act.hi = n.attr_float("max", std::numeric_limits<float>::infinity());
    } else {
      return make_error(errc::unsupported, "fused activation '{}' has no GPU lowering",
                        activation);
    }
    push(std::move(act));
    return status::ok();
  }

  status lower_pool(const node& n, const std::vector<int>& ins) {
    TROUPE_TRY_STATUS(require_float(n, ins));
    if (n.outputs.size() > 1 && !n.outputs[1].empty())
      return make_error(errc::unsupported, "MaxPool's indices output has no GPU lowering");
    const shape xd = val(ins[0]).dims;
    if (xd.size() != 4)
      return make_error(errc::unsupported, "only 2-D pooling runs on the GPU (input {})",
                        to_string(xd));
    cuda::pool_params p;
    p.type = out_.compute;
    p.n = xd[0], p.c = xd[1], p.h = xd[2], p.w = xd[3];
    const bool max = n.op_type == "MaxPool" || n.op_type == "GlobalMaxPool";
    p.mode = max ? cuda::pool_mode::max
             : n.attr_int("count_include_pad", 0) ? cuda::pool_mode::average_include_pad
                                                  : cuda::pool_mode::average_exclude_pad;
    p.global = n.op_type.starts_with("Global");
    if (!p.global) {
      const auto auto_pad = n.attr_string("auto_pad", "NOTSET");
      if (auto_pad != "NOTSET" && auto_pad != "VALID")
        return make_error(errc::unsupported, "auto_pad {} has no GPU lowering", auto_pad);
      const auto kernel = n.attr_ints("kernel_shape");
      const auto strides = n.attr_ints("strides", {1, 1});
      const auto pads = n.attr_ints("pads", {0, 0, 0, 0});
      const auto dilations = n.attr_ints("dilations", {1, 1});
      if (kernel.size() != 2 || strides.size() != 2 || pads.size() != 4)
        return make_error(errc::unsupported, "kernel_shape, strides or pads are not 2-D");
      if (dilations != std::vector<int64_t>{1, 1} || n.attr_int("storage_order", 0) != 0)
        return make_error(errc::unsupported, "dilated or column-major pooling has no GPU "
                          "lowering");
      p.kernel_h = kernel[0], p.kernel_w = kernel[1];
      p.stride_h = strides[0], p.stride_w = strides[1];
      p.pad_top = pads[0], p.pad_left = pads[1], p.pad_bottom = pads[2], p.pad_right = pads[3];
    }
    auto od = cuda::pool_output(p);
    if (!od)
      return make_error(errc::unsupported, "{}", od.error().message());
    const int y = output(n, 0);
    if (shape{od->n, od->k, od->p, od->q} != val(y).dims) // ceil_mode rounding up
      return make_error(errc::unsupported, "pooling output {} needs ceil_mode, which has no GPU "
                        "lowering", to_string(val(y).dims));
    gpu_step s = make_step(step_kind::pool, n, {ins[0]}, {y});
    s.pool = p;
    push(std::move(s));
    return status::ok();
  }

  status lower_gemm(const node& n, const std::vector<int>& ins) {
    TROUPE_TRY_STATUS(require_float(n, ins));
    const int a = ins[0], b = ins[1], c = ins.size() > 2 ? ins[2] : -1;
    const shape ad = val(a).dims;
    const shape bd = val(b).dims;
    if (ad.size() != 2 || bd.size() != 2)
      return make_error(errc::invalid_argument, "Gemm needs 2-D operands, got {} and {}",
                        to_string(ad), to_string(bd));
    if (n.attr_float("alpha", 1.0f) != 1.0f || (c >= 0 && n.attr_float("beta", 1.0f) != 1.0f))
      return make_error(errc::unsupported, "alpha or beta other than 1 has no GPU lowering");
    cuda::gemm_params p;
    p.type = out_.compute;
    p.trans_a = n.attr_int("transA", 0) != 0;
    p.trans_b = n.attr_int("transB", 0) != 0;
    p.m = p.trans_a ? ad[1] : ad[0];
    p.k = p.trans_a ? ad[0] : ad[1];
    p.n = p.trans_b ? bd[0] : bd[1];
    p.allow_tf32 = out_.allow_tf32;
    const int y = output(n, 0);
    TROUPE_TRY_STATUS(check_dims("the GEMM", {p.m, p.n}, y));
    const bool bias = c >= 0 && numel_of(val(c).dims) == p.n && p.n > 0 &&
                      (val(c).dims.size() == 1 ||
                       (val(c).dims.size() == 2 && val(c).dims[0] == 1));
    if (bias)
      p.epilogue = cuda::gemm_epilogue::bias;
    if (auto st = cuda::gemm_check(p); !st)
      return make_error(errc::unsupported, "{}", st.error().message());
    const bool add_after = c >= 0 && !bias;
    const int product = add_after ? temporary(n.label() + "/product", out_.compute, val(y).dims) : y;
    gpu_step s = make_step(step_kind::gemm, n, {a, b, bias ? c : -1}, {product});
    s.gemm = p;
    push(std::move(s));
    if (add_after) {
      gpu_step add = make_step(step_kind::binary, n, {product, c}, {y});
      add.binary = cuda::binary_op::add;
      push(std::move(add));
    }
    return status::ok();
  }

  status lower_matmul(const node& n, const std::vector<int>& ins) {
    TROUPE_TRY_STATUS(require_float(n, ins));
    const shape ad = val(ins[0]).dims;
    const shape bd = val(ins[1]).dims;
    if (ad.size() < 2 || bd.size() < 2)
      return make_error(errc::unsupported, "MatMul of 1-D operands has no GPU lowering");
    const int y = output(n, 0);
    cuda::gemm_params p;
    p.type = out_.compute;
    p.allow_tf32 = out_.allow_tf32;
    p.k = ad.back();
    p.n = bd.back();
    if (bd[bd.size() - 2] != p.k)
      return make_error(errc::invalid_argument, "MatMul of {} and {}", to_string(ad),
                        to_string(bd));
    if (bd.size() == 2) { // weights: every row of every batch is one row of a single GEMM
      p.m = p.k == 0 ? 0 : numel_of(ad) / p.k;
    } else {
      p.m = ad[ad.size() - 2];
      const shape yd = val(y).dims;
      const int64_t batch = numel_of(std::span(yd).first(yd.size() - 2));
      const int64_t a_batch = numel_of(std::span(ad).first(ad.size() - 2));
      const int64_t b_batch = numel_of(std::span(bd).first(bd.size() - 2));
      const auto stride = [&](int64_t own) -> std::optional<int64_t> {
        if (own == batch)
          return -1; // all of the output's batch dims: packed
        if (own == 1)
          return 0; // one matrix shared by every batch
        return std::nullopt;
      };
      const auto sa = stride(a_batch), sb = stride(b_batch);
      if (!sa || !sb)
        return make_error(errc::unsupported, "MatMul broadcasting {} against {} has no GPU "
                          "lowering", to_string(ad), to_string(bd));
      p.batch = batch;
      p.stride_a = *sa;
      p.stride_b = *sb;
    }
    if (numel_of(val(y).dims) != p.batch * p.m * p.n)
      return make_error(errc::internal, "MatMul output {} does not hold {}x{}x{}",
                        to_string(val(y).dims), p.batch, p.m, p.n);
    if (auto st = cuda::gemm_check(p); !st)
      return make_error(errc::unsupported, "{}", st.error().message());
    gpu_step s = make_step(step_kind::gemm, n, {ins[0], ins[1], -1}, {y});
    s.gemm = p;
    push(std::move(s));
    return status::ok();
  }

  static std::optional<cuda::binary_op> binary_of(const std::string& op) {
    if (op == "Add") return cuda::binary_op::add;
    if (op == "Sub") return cuda::binary_op::sub;
    if (op == "Mul") return cuda::binary_op::mul;
    if (op == "Div") return cuda::binary_op::div;
    if (op == "Pow") return cuda::binary_op::pow;
    if (op == "Max") return cuda::binary_op::max;
    if (op == "Min") return cuda::binary_op::min;
    return std::nullopt;
  }

  status lower_binary(const node& n, const std::vector<int>& ins, cuda::binary_op op) {
    if (ins.size() != 2 || ins[0] < 0 || ins[1] < 0)
      return make_error(errc::unsupported, "{} of {} inputs has no GPU lowering", n.op_type,
                        ins.size());
    TROUPE_TRY_STATUS(require_float(n, ins));
    auto plan = cuda::plan_binary(val(ins[0]).dims, val(ins[1]).dims);
    if (!plan)
      return make_error(errc::unsupported, "{}", plan.error().message());
    const int y = output(n, 0);
    TROUPE_TRY_STATUS(check_dims("broadcasting", plan->out_dims, y));
    gpu_step s = make_step(step_kind::binary, n, ins, {y});
    s.binary = op;
    push(std::move(s));
    return status::ok();
  }

  status lower_unary(const node& n, const std::vector<int>& ins) {
    TROUPE_TRY_STATUS(require_float(n, {ins[0]}));
    gpu_step s = make_step(step_kind::unary, n, {ins[0]}, {});
    const std::string& op = n.op_type;
    using u = cuda::unary_op;
    if (op == "Relu") s.unary = u::relu;
    else if (op == "Sigmoid") s.unary = u::sigmoid;
    else if (op == "Tanh") s.unary = u::tanh;
    else if (op == "Exp") s.unary = u::exp;
    else if (op == "Log") s.unary = u::log;
    else if (op == "Sqrt") s.unary = u::sqrt;
    else if (op == "Neg") s.unary = u::neg;
    else if (op == "Abs") s.unary = u::abs;
    else if (op == "Erf") s.unary = u::erf;
    else if (op == "Gelu") {
      const auto approximate = n.attr_string("approximate", "none");
      if (approximate != "none" && approximate != "tanh")
        return make_error(errc::unsupported, "Gelu approximate='{}'", approximate);
      s.unary = approximate == "tanh" ? u::gelu_tanh : u::gelu_erf;
    } else { // Clip: bounds from attributes (opset < 11) or constant inputs
      s.unary = u::clip;
      s.lo = n.attr_float("min", -std::numeric_limits<float>::infinity());
      s.hi = n.attr_float("max", std::numeric_limits<float>::infinity());
      auto lo = const_float(n, 1);
      if (!lo)
        return lo.error();
      auto hi = const_float(n, 2);
      if (!hi)
        return hi.error();
      s.lo = lo->value_or(s.lo);
      s.hi = hi->value_or(s.hi);
    }
    s.outputs = {output(n, 0)};
    push(std::move(s));
    return status::ok();
  }

  status lower_layer_norm(const node& n, const std::vector<int>& ins) {
    TROUPE_TRY_STATUS(require_float(n, ins));
    for (size_t i = 1; i < n.outputs.size(); ++i)
      if (!n.outputs[i].empty())
        return make_error(errc::unsupported, "LayerNormalization's Mean and InvStdDev outputs "
                          "have no GPU lowering");
    const shape xd = val(ins[0]).dims;
    auto axis = normalize_axis(n.attr_int("axis", -1), static_cast<int64_t>(xd.size()));
    if (!axis)
      return axis.error();
    const int64_t normalized = numel_of(std::span(xd).subspan(static_cast<size_t>(*axis)));
    for (size_t i = 1; i < 3 && i < ins.size(); ++i)
      if (ins[i] >= 0 && numel_of(val(ins[i]).dims) != normalized)
        return make_error(errc::unsupported, "scale or bias {} is not the normalized shape "
                          "(broadcasting has no GPU lowering)", to_string(val(ins[i]).dims));
    if (ins.size() < 2 || ins[1] < 0)
      return make_error(errc::invalid_argument, "scale is missing");
    gpu_step s = make_step(step_kind::layer_norm, n,
                           {ins[0], ins[1], ins.size() > 2 ? ins[2] : -1}, {output(n, 0)});
    s.axis = *axis;
    s.epsilon = n.attr_float("epsilon", 1e-5f);
    push(std::move(s));
    return status::ok();
  }

  status lower_softmax(const node& n, const std::vector<int>& ins) {
    TROUPE_TRY_STATUS(require_float(n, ins));
    const auto rank = static_cast<int64_t>(val(ins[0]).dims.size());
    auto axis = normalize_axis(n.attr_int("axis", g_.opset < 13 ? 1 : -1), rank);
    if (!axis)
      return axis.error();
    if (*axis != rank - 1)
      return make_error(errc::unsupported, "Softmax over axis {} of rank {} has no GPU lowering "
                        "(only the last axis)", *axis, rank);
    push(make_step(step_kind::softmax, n, {ins[0]}, {output(n, 0)}));
    return status::ok();
  }

  status lower_reduce(const node& n, const std::vector<int>& ins) {
    TROUPE_TRY_STATUS(require_float(n, {ins[0]}));
    const auto rank = static_cast<int64_t>(val(ins[0]).dims.size());
    std::vector<int64_t> axes = n.attr_ints("axes");
    if (ins.size() > 1) {
      auto given = const_ints(n, 1);
      if (!given)
        return given.error();
      if (*given)
        axes = **given;
    }
    if (axes.empty() && n.attr_int("noop_with_empty_axes", 0))
      return make_error(errc::unsupported, "noop_with_empty_axes has no GPU lowering");
    for (auto& a : axes) {
      auto norm = normalize_axis(a, rank);
      if (!norm)
        return norm.error();
      a = *norm;
    }
    gpu_step s = make_step(step_kind::reduce, n, {ins[0]}, {output(n, 0)});
    s.reduce = n.op_type == "ReduceSum" ? cuda::reduce_op::sum
               : n.op_type == "ReduceMax" ? cuda::reduce_op::max
                                          : cuda::reduce_op::mean;
    s.axes = std::move(axes);
    auto plan = cuda::plan_reduce(val(ins[0]).dims, s.axes, n.attr_int("keepdims", 1) != 0);
    if (!plan)
      return make_error(errc::unsupported, "{}", plan.error().message());
    if (numel_of(plan->out_dims) != numel_of(val(s.outputs[0]).dims))
      return make_error(errc::internal, "reduction gives {}, the CPU plan {}",
                        to_string(plan->out_dims), to_string(val(s.outputs[0]).dims));
    push(std::move(s));
    return status::ok();
  }

  status lower_transpose(const node& n, const std::vector<int>& ins) {
    gpu_step s = make_step(step_kind::transpose, n, {ins[0]}, {output(n, 0)});
    s.perm = n.attr_ints("perm");
    auto plan = cuda::plan_transpose(val(ins[0]).dims, s.perm);
    if (!plan)
      return make_error(errc::unsupported, "{}", plan.error().message());
    TROUPE_TRY_STATUS(check_dims("the transpose", plan->out_dims, s.outputs[0]));
    push(std::move(s));
    return status::ok();
  }

  status lower_slice(const node& n, const std::vector<int>& ins) {
    gpu_step s = make_step(step_kind::slice, n, {ins[0]}, {output(n, 0)});
    if (g_.opset < 10) {
      s.starts = n.attr_ints("starts");
      s.ends = n.attr_ints("ends");
      s.axes = n.attr_ints("axes");
    } else {
      std::vector<int64_t>* fields[] = {&s.starts, &s.ends, &s.axes, &s.steps};
      for (size_t i = 1; i < 5; ++i) {
        auto v = const_ints(n, i);
        if (!v)
          return v.error();
        if (*v)
          *fields[i - 1] = std::move(**v);
      }
    }
    auto plan = cuda::plan_slice(val(ins[0]).dims, s.starts, s.ends, s.axes, s.steps);
    if (!plan)
      return make_error(errc::unsupported, "{}", plan.error().message());
    TROUPE_TRY_STATUS(check_dims("the slice", plan->out_dims, s.outputs[0]));
    push(std::move(s));
    return status::ok();
  }

  status lower_split(const node& n, const std::vector<int>& ins) {
    const shape xd = val(ins[0]).dims;
    auto axis = normalize_axis(n.attr_int("axis", 0), static_cast<int64_t>(xd.size()));
    if (!axis)
      return axis.error();
    gpu_step s = make_step(step_kind::split, n, {ins[0]}, {});
    for (size_t i = 0; i < n.outputs.size(); ++i) {
      auto d = descs_.find(n.outputs[i]);
      if (n.outputs[i].empty() || d == descs_.end())
        return make_error(errc::unsupported, "Split with an unnamed output has no GPU lowering");
      const int id = output(n, i);
      s.outputs.push_back(id);
      s.sizes.push_back(val(id).dims[static_cast<size_t>(*axis)]);
    }
    s.axis = *axis;
    auto plan = cuda::plan_split(xd, s.axis, s.sizes);
    if (!plan)
      return make_error(errc::unsupported, "{}", plan.error().message());
    push(std::move(s));
    return status::ok();
  }

  status lower_concat(const node& n, const std::vector<int>& ins) {
    std::vector<shape> dims;
    for (int id : ins) {
      if (id < 0)
        return make_error(errc::invalid_argument, "an input is missing");
      dims.push_back(val(id).dims);
    }
    if (dims.empty())
      return make_error(errc::invalid_argument, "Concat has no inputs");
    auto axis = normalize_axis(n.attr_int("axis", 0), static_cast<int64_t>(dims[0].size()));
    if (!axis)
      return axis.error();
    for (size_t i = 1; i < ins.size(); ++i)
      if (val(ins[i]).type != val(ins[0]).type)
        return make_error(errc::invalid_argument, "inputs of different dtypes");
    gpu_step s = make_step(step_kind::concat, n, ins, {output(n, 0)});
    s.axis = *axis;
    auto plan = cuda::plan_concat(dims, s.axis);
    if (!plan)
      return make_error(errc::unsupported, "{}", plan.error().message());
    TROUPE_TRY_STATUS(check_dims("the concatenation", plan->out_dims, s.outputs[0]));
    push(std::move(s));
    return status::ok();
  }

  status lower_gather(const node& n, const std::vector<int>& ins) {
    const auto index_type = val(ins[1]).type;
    if (index_type != dtype::i32 && index_type != dtype::i64)
      return make_error(errc::invalid_argument, "indices must be int32 or int64, got {}",
                        to_string(index_type));
    const shape dd = val(ins[0]).dims;
    auto axis = normalize_axis(n.attr_int("axis", 0), static_cast<int64_t>(dd.size()));
    if (!axis)
      return axis.error();
    gpu_step s = make_step(step_kind::gather, n, {ins[0], ins[1]}, {output(n, 0)});
    s.axis = *axis;
    auto plan = cuda::plan_gather(dd, val(ins[1]).dims, s.axis);
    if (!plan)
      return make_error(errc::unsupported, "{}", plan.error().message());
    TROUPE_TRY_STATUS(check_dims("the gather", plan->out_dims, s.outputs[0]));
    push(std::move(s));
    return status::ok();
  }

  status lower_cast(const node& n, const std::vector<int>& ins) {
    auto it = descs_.find(n.outputs[0]);
    const dtype to = it == descs_.end() ? dtype::undefined : it->second.type;
    const dtype from = val(ins[0]).type;
    // Floats all live in the compute dtype on the device, so a float-to-float Cast is a view.
    if ((is_device_float(from) && is_device_float(to)) || from == to)
      return lower_view(n, ins);
    return make_error(errc::unsupported, "Cast from {} to {} has no GPU lowering",
                      to_string(from), to_string(to));
  }

  /// AllReduceSum and AllGather of a tensor-parallel rank graph. At fp16/bf16 the values are
  /// exchanged in the compute dtype; the communicator sums them in fp32.
  status lower_collective(const node& n, const std::vector<int>& ins) {
    if (group_size_ <= 1)
      return make_error(errc::invalid_argument, "{} exchanges between tensor-parallel ranks and "
                        "needs a group of GPUs (gpu_session_options::group); the session has none",
                        n.op_type);
    if (ins.size() != 1 || ins[0] < 0)
      return make_error(errc::invalid_argument, "{} takes one input", n.op_type);
    TROUPE_TRY_STATUS(require_float(n, ins));
    const shape xd = val(ins[0]).dims;
    if (n.op_type == "AllReduceSum") {
      const int y = output(n, 0);
      TROUPE_TRY_STATUS(check_dims("the all-reduce", xd, y));
      push(make_step(step_kind::all_reduce, n, ins, {y}));
      return status::ok();
    }
    const int64_t ranks = n.attr_int("ranks", 0);
    if (ranks != group_size_)
      return make_error(errc::invalid_argument, "was split for {} ranks, the group has {}", ranks,
                        group_size_);
    auto axis = normalize_axis(n.attr_int("axis", 0), static_cast<int64_t>(xd.size()));
    if (!axis)
      return axis.error();
    shape whole = xd;
    whole[static_cast<size_t>(*axis)] *= ranks;
    gpu_step s = make_step(step_kind::all_gather, n, ins, {output(n, 0)});
    s.axis = *axis;
    TROUPE_TRY_STATUS(check_dims("the all-gather", whole, s.outputs[0]));
    push(std::move(s));
    return status::ok();
  }

  status lower_view(const node& n, const std::vector<int>& ins) {
    if (n.op_type == "Dropout" && n.outputs.size() > 1 && !n.outputs[1].empty())
      return make_error(errc::unsupported, "Dropout's mask output has no GPU lowering");
    const int y = output(n, 0);
    auto& v = out_.values[static_cast<size_t>(y)];
    v.type = val(ins[0]).type;
    if (numel_of(v.dims) != numel_of(val(ins[0]).dims))
      return make_error(errc::internal, "view {} of {} changes the element count",
                        to_string(v.dims), to_string(val(ins[0]).dims));
    v.alias_of = root_of(out_, ins[0]);
    if (val(v.alias_of).kind == value_kind::constant) { // a view of a constant is constant
      v.kind = value_kind::constant;
      v.host = nullptr;
    }
    return status::ok();
  }

  const graph& g_;
  const std::unordered_map<std::string, value_desc>& descs_;
  int group_size_;
  lowered_graph out_;
  std::unordered_map<std::string, int> names_;
};

} // namespace

int root_of(const lowered_graph& l, int id) {
  while (l.values[static_cast<size_t>(id)].alias_of >= 0)
    id = l.values[static_cast<size_t>(id)].alias_of;
  return id;
}

expected<lowered_graph> lower_graph(const graph& g,
                                    const std::unordered_map<std::string, value_desc>& descs,
                                    std::span<const shape> input_dims, gpu_precision precision,
                                    int group_size) {
  return lowerer(g, descs, precision, group_size).run(input_dims);
}

arena_layout plan_arena(const lowered_graph& l, size_t alignment) {
  const size_t count = l.values.size();
  std::vector<int> first(count, -1), last(count, -1);
  const auto owns_memory = [&](int id) {
    const auto& v = l.values[static_cast<size_t>(id)];
    return v.alias_of < 0 && v.kind != value_kind::constant;
  };
  for (int id : l.inputs) { // written before the first step
    first[static_cast<size_t>(id)] = 0;
    last[static_cast<size_t>(id)] = 0;
  }
  for (size_t s = 0; s < l.steps.size(); ++s) {
    const int step = static_cast<int>(s);
    for (int id : l.steps[s].outputs) {
      const auto r = static_cast<size_t>(root_of(l, id));
      if (first[r] < 0)
        first[r] = step;
      last[r] = std::max(last[r], step);
    }
    for (int id : l.steps[s].inputs)
      if (id >= 0) {
        const auto r = static_cast<size_t>(root_of(l, id));
        last[r] = std::max(last[r], step);
      }
  }
  const int end = static_cast<int>(l.steps.size());
  for (int id : l.outputs) // read by the device-to-host copy after the last step
    last[static_cast<size_t>(root_of(l, id))] = end;

  std::vector<buffer_lifetime> lifetimes;
  std::vector<int> owners;
  for (size_t id = 0; id < count; ++id) {
    if (!owns_memory(static_cast<int>(id)) || first[id] < 0)
      continue;
    const auto& v = l.values[id];
    lifetimes.push_back({static_cast<size_t>(numel_of(v.dims)) * size_of(v.type), first[id],
                         last[id]});
    owners.push_back(static_cast<int>(id));
  }
  const auto layout = plan_memory(lifetimes, alignment);
  arena_layout out;
  out.offsets.assign(count, -1);
  for (size_t i = 0; i < owners.size(); ++i)
    out.offsets[static_cast<size_t>(owners[i])] = static_cast<int64_t>(layout.offsets[i]);
  out.bytes = layout.arena_bytes;
  return out;
}

bool capturable(const lowered_graph& l) {
  return std::none_of(l.steps.begin(), l.steps.end(), is_collective);
}

std::vector<std::string> gpu_op_types() {
  return {"Abs",        "Add",          "AllGather",         "AllReduceSum",
          "AveragePool",       "Cast",      "Clip",
          "Concat",     "Conv",         "Div",               "Dropout",   "Erf",
          "Exp",        "Flatten",      "Gather",            "Gelu",      "Gemm",
          "GlobalAveragePool", "GlobalMaxPool", "Identity",  "LayerNormalization", "Log",
          "MatMul",     "Max",          "MaxPool",           "Min",       "Mul",
          "Neg",        "Pow",          "ReduceMax",         "ReduceMean", "ReduceSum",
          "Relu",       "Reshape",      "Sigmoid",           "Slice",     "Softmax",
          "Split",      "Sqrt",         "Squeeze",           "Sub",       "Tanh",
          "Transpose",  "TroupeFusedConv", "Unsqueeze"};
}

} // namespace troupe::gpu
