// matmul_ops: ONNX Gemm and MatMul on oneDNN matmul primitives (fp32).
#include "runtime/ops/op_registry.hpp"

#include <vector>

#include "kernels/cpu/matmul.hpp"

namespace troupe {
namespace {

status check_f32_operands(const node& n, std::span<const value_desc> in) {
  if (in.size() < 2 || !in[0].present() || !in[1].present())
    return bad_input(n, "needs inputs A and B");
  for (size_t i = 0; i < in.size(); ++i) {
    if (!in[i].present())
      continue;
    if (in[i].type != in[0].type)
      return bad_input(n, fmt::format("input {} is {} but A is {}", i, to_string(in[i].type),
                                      to_string(in[0].type)));
  }
  if (in[0].type != dtype::f32)
    return make_error(errc::unsupported, "{}: only float32 is supported, got {}", n.label(),
                      to_string(in[0].type));
  return status::ok();
}

class matmul_kernel final : public op_kernel {
public:
  explicit matmul_kernel(std::unique_ptr<cpu::matmul_op> op) : op_(std::move(op)) {}

  status run(exec_context& ctx, std::span<const tensor> in, std::span<tensor> out) override {
    return op_->run(ctx.cpu, in[0].data<float>(), in[1].data<float>(), nullptr,
                    out[0].data<float>());
  }

private:
  std::unique_ptr<cpu::matmul_op> op_;
};

expected<built_op> build_matmul(const node& n, std::span<const value_desc> in,
                                build_context& bctx) {
  if (in.size() != 2)
    return bad_input(n, fmt::format("needs 2 inputs, got {}", in.size()));
  TROUPE_TRY_STATUS(check_f32_operands(n, in));
  cpu::matmul_spec spec{in[0].dims, in[1].dims};
  if (spec.a_dims.empty() || spec.b_dims.empty())
    return bad_input(n, "operands must have rank >= 1");
  // numpy: a 1-D A is a row vector and a 1-D B a column vector; the added dim is dropped
  // from the result again.
  const bool a_vector = spec.a_dims.size() == 1, b_vector = spec.b_dims.size() == 1;
  if (a_vector)
    spec.a_dims.insert(spec.a_dims.begin(), 1);
  if (b_vector)
    spec.b_dims.push_back(1);
  auto out_dims = cpu::matmul_output_dims(spec);
  if (!out_dims)
    return out_dims.error().with_context(n.label());
  auto op = cpu::matmul_op::create(bctx.cpu, spec, in[1].constant, bctx.packed);
  if (!op)
    return op.error().with_context(n.label());
  shape dims = std::move(*out_dims);
  if (b_vector)
    dims.pop_back();
  if (a_vector)
    dims.erase(dims.end() - (b_vector ? 1 : 2));
  built_op built;
  built.outputs.push_back({dtype::f32, std::move(dims), {}, nullptr});
  built.kernel = std::make_unique<matmul_kernel>(std::move(*op));
  return built;
}

/// How Gemm's C joins the product.
enum class c_role {
  none,         // absent, or beta == 0
  bias_direct,  // C is a length-N row and beta == alpha: oneDNN's bias reads C itself
  bias_scaled,  // a row of N values (beta/alpha)*C, precomputed when C is constant
  add_after,    // [M,1] or [M,N], or any C when alpha == 0: added after the product
};

struct gemm_config {
  c_role role = c_role::none;
  bool bias_precomputed = false;
  float beta = 1.f, bias_factor = 1.f;
  int64_t m = 0, n = 0;
  int64_t c_stride_m = 0, c_stride_n = 0; // C's strides broadcast to [M,N]
};

/// The bias row (beta/alpha) * C broadcast to N values.
void fill_bias(const gemm_config& cfg, const float* c, float* bias) {
  for (int64_t j = 0; j < cfg.n; ++j)
    bias[j] = cfg.bias_factor * c[j * cfg.c_stride_n];
}

class gemm_kernel final : public op_kernel {
public:
  gemm_kernel(std::unique_ptr<cpu::matmul_op> op, gemm_config cfg, std::vector<float> bias)
    : op_(std::move(op)), cfg_(cfg), bias_(std::move(bias)) {}

  status run(exec_context& ctx, std::span<const tensor> in, std::span<tensor> out) override {
    const float* c = cfg_.role == c_role::none ? nullptr : in[2].data<float>();
    const float* bias = nullptr;
    if (cfg_.role == c_role::bias_direct) {
      bias = c;
    } else if (cfg_.role == c_role::bias_scaled) {
      if (!cfg_.bias_precomputed)
        fill_bias(cfg_, c, bias_.data());
      bias = bias_.data();
    }
    float* y = out[0].data<float>();
    TROUPE_TRY_STATUS(op_->run(ctx.cpu, in[0].data<float>(), in[1].data<float>(), bias, y));
    if (cfg_.role == c_role::add_after) {
      // One pass over [M,N], cheap next to the M*N*K product.
      for (int64_t i = 0; i < cfg_.m; ++i)
        for (int64_t j = 0; j < cfg_.n; ++j)
          y[i * cfg_.n + j] += cfg_.beta * c[i * cfg_.c_stride_m + j * cfg_.c_stride_n];
    }
    return status::ok();
  }

private:
  std::unique_ptr<cpu::matmul_op> op_;
  gemm_config cfg_;
  std::vector<float> bias_;
};

expected<built_op> build_gemm(const node& n, std::span<const value_desc> in, build_context& bctx) {
  if (in.size() != 2 && in.size() != 3)
    return bad_input(n, fmt::format("needs 2 or 3 inputs, got {}", in.size()));
  TROUPE_TRY_STATUS(check_f32_operands(n, in));
  const shape& a = in[0].dims;
  const shape& b = in[1].dims;
  if (a.size() != 2 || b.size() != 2)
    return bad_input(n, fmt::format("A and B must be 2-D, got {} and {}", to_string(a),
                                    to_string(b)));
  const float alpha = n.attr_float("alpha", 1.f), beta = n.attr_float("beta", 1.f);
  cpu::matmul_spec spec;
  spec.trans_a = n.attr_int("transA", 0) != 0;
  spec.trans_b = n.attr_int("transB", 0) != 0;
  spec.a_dims = spec.trans_a ? shape{a[1], a[0]} : a;
  spec.b_dims = spec.trans_b ? shape{b[1], b[0]} : b;
  spec.scale = alpha;
  auto out_dims = cpu::matmul_output_dims(spec);
  if (!out_dims)
    return out_dims.error().with_context(n.label());
  gemm_config cfg;
  cfg.m = (*out_dims)[0];
  cfg.n = (*out_dims)[1];
  cfg.beta = beta;
  std::vector<float> bias;
  const value_desc* c = in.size() == 3 && in[2].present() ? &in[2] : nullptr;
  if (c && beta != 0.f) {
    if (c->dims.size() > 2)
      return bad_input(n, fmt::format("C must have rank <= 2, got {}", to_string(c->dims)));
    shape cd = c->dims;
    while (cd.size() < 2)
      cd.insert(cd.begin(), 1);
    if ((cd[0] != 1 && cd[0] != cfg.m) || (cd[1] != 1 && cd[1] != cfg.n))
      return bad_input(n, fmt::format("C {} does not broadcast to [{},{}]", to_string(c->dims),
                                      cfg.m, cfg.n));
    cfg.c_stride_m = cd[0] == 1 ? 0 : cd[1];
    cfg.c_stride_n = cd[1] == 1 ? 0 : 1;
    // oneDNN computes scale * (A·B + bias), so a row C becomes the bias (beta/alpha)*C.
    if (cd[0] == 1 && alpha != 0.f) {
      spec.with_bias = true;
      cfg.bias_factor = beta / alpha;
      if (cd[1] == cfg.n && cfg.bias_factor == 1.f) {
        cfg.role = c_role::bias_direct;
      } else {
        cfg.role = c_role::bias_scaled;
        bias.resize(static_cast<size_t>(cfg.n));
      }
    } else {
      cfg.role = c_role::add_after;
    }
  }
  auto op = cpu::matmul_op::create(bctx.cpu, spec, in[1].constant, bctx.packed);
  if (!op)
    return op.error().with_context(n.label());
  if (cfg.role == c_role::bias_scaled && c->constant) {
    fill_bias(cfg, c->constant->data<float>(), bias.data());
    cfg.bias_precomputed = true;
  }
  built_op built;
  built.outputs.push_back({dtype::f32, std::move(*out_dims), {}, nullptr});
  built.kernel = std::make_unique<gemm_kernel>(std::move(*op), cfg, std::move(bias));
  return built;
}

} // namespace

void register_matmul_ops(op_registry& registry) {
  registry.add({.type = "MatMul", .build = build_matmul});
  registry.add({.type = "Gemm", .build = build_gemm});
}

} // namespace troupe
