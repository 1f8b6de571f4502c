// Tests for the Gemm and MatMul operators against naive loops.
#include <doctest/doctest.h>

#include <random>

#include "tests/op_harness.hpp"

using namespace troupe;
using troupe::testing::make_node;
using troupe::testing::run_op;

namespace {

struct rng {
  unsigned seed = std::random_device{}();
  std::mt19937 gen{seed};

  tensor uniform(shape dims) {
    tensor t = tensor::empty(dtype::f32, std::move(dims));
    std::uniform_real_distribution<float> dist(-1.f, 1.f);
    for (float& v : t.values<float>())
      v = dist(gen);
    return t;
  }
};

/// numpy matmul with loops: 1-D promotion, broadcast batch dims.
tensor naive_matmul(const tensor& a, const tensor& b) {
  shape ad = a.dims(), bd = b.dims();
  const bool a_vec = ad.size() == 1, b_vec = bd.size() == 1;
  if (a_vec)
    ad.insert(ad.begin(), 1);
  if (b_vec)
    bd.push_back(1);
  const int64_t m = ad[ad.size() - 2], k = ad.back(), n = bd.back();
  const size_t batch_rank = std::max(ad.size(), bd.size()) - 2;
  auto pad = [batch_rank](shape d) {
    shape batch(d.begin(), d.end() - 2);
    batch.insert(batch.begin(), batch_rank - batch.size(), 1);
    return batch;
  };
  const shape ab = pad(ad), bb = pad(bd);
  shape ob(batch_rank);
  for (size_t i = 0; i < batch_rank; ++i)
    ob[i] = std::max(ab[i], bb[i]);
  shape out_dims = ob;
  out_dims.push_back(m);
  out_dims.push_back(n);
  tensor out = tensor::zeros(dtype::f32, out_dims);
  const int64_t batches = numel_of(ob);
  for (int64_t flat = 0; flat < batches; ++flat) {
    int64_t rest = flat, a_off = 0, b_off = 0, a_stride = 1, b_stride = 1;
    for (size_t i = batch_rank; i-- > 0;) {
      const int64_t idx = rest % ob[i];
      rest /= ob[i];
      a_off += (ab[i] == 1 ? 0 : idx) * a_stride;
      b_off += (bb[i] == 1 ? 0 : idx) * b_stride;
      a_stride *= ab[i];
      b_stride *= bb[i];
    }
    const float* pa = a.data<float>() + a_off * m * k;
    const float* pb = b.data<float>() + b_off * k * n;
    float* po = out.data<float>() + flat * m * n;
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < k; ++p)
          acc += double(pa[i * k + p]) * pb[p * n + j];
        po[i * n + j] = static_cast<float>(acc);
      }
  }
  if (b_vec)
    out_dims.pop_back();
  if (a_vec)
    out_dims.erase(out_dims.end() - (b_vec ? 1 : 2));
  return out.reshaped(out_dims);
}

/// Gemm with loops: Y = alpha * op(A) op(B) + beta * C, C broadcast to [M,N].
tensor naive_gemm(const tensor& a, const tensor& b, const tensor& c, bool ta, bool tb,
                  float alpha, float beta) {
  const int64_t m = ta ? a.dim(1) : a.dim(0), k = ta ? a.dim(0) : a.dim(1);
  const int64_t n = tb ? b.dim(0) : b.dim(1);
  tensor out = tensor::empty(dtype::f32, {m, n});
  shape cd = c.defined() ? c.dims() : shape{};
  while (cd.size() < 2)
    cd.insert(cd.begin(), 1);
  for (int64_t i = 0; i < m; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double acc = 0;
      for (int64_t p = 0; p < k; ++p) {
        const float av = ta ? a.data<float>()[p * m + i] : a.data<float>()[i * k + p];
        const float bv = tb ? b.data<float>()[j * k + p] : b.data<float>()[p * n + j];
        acc += double(av) * bv;
      }
      double y = alpha * acc;
      if (c.defined())
        y += beta * c.data<float>()[(cd[0] == 1 ? 0 : i) * cd[1] + (cd[1] == 1 ? 0 : j)];
      out.data<float>()[i * n + j] = static_cast<float>(y);
    }
  return out;
}

} // namespace

TEST_CASE("MatMul matches numpy semantics for 2-D, batched, broadcast and 1-D operands") {
  rng r;
  INFO("seed " << r.seed);
  const std::vector<std::pair<shape, shape>> cases = {
      {{5, 7}, {7, 3}},
      {{2, 3, 6, 8}, {2, 3, 8, 6}},   // attention scores [B,H,S,D]x[B,H,D,S]
      {{4, 16, 32}, {32, 24}},        // FC layer: batch folded into M
      {{2, 1, 4, 5}, {3, 5, 6}},      // batch broadcast on both sides
      {{1, 3, 4, 5}, {2, 1, 5, 6}},
      {{4, 5}, {2, 3, 5, 6}},         // 2-D A against batched B
      {{2, 4, 5}, {1, 5, 3}},
      {{5}, {5, 3}},
      {{2, 4, 5}, {5}},
      {{5}, {5}},
      {{4}, {2, 4, 3}},
      {{3, 0}, {0, 4}},               // K == 0 gives zeros
      {{0, 3}, {3, 4}},
  };
  for (const auto& [ad, bd] : cases) {
    for (bool constant : {false, true}) {
      INFO(to_string(ad) << " x " << to_string(bd) << " constant=" << constant);
      tensor a = r.uniform(ad), b = r.uniform(bd);
      auto out = run_op(make_node("MatMul", 2, 1), {a, b}, constant);
      REQUIRE_MESSAGE(out.has_value(), out.error().to_string());
      tensor ref = naive_matmul(a, b);
      REQUIRE((*out)[0].dims() == ref.dims());
      if (ref.numel() > 0)
        CHECK(relative_error((*out)[0], ref) < 1e-5);
    }
  }
}

TEST_CASE("MatMul with constant weights gives the same result on repeated runs") {
  rng r;
  INFO("seed " << r.seed);
  cpu::cpu_context cpu;
  tensor a = r.uniform({3, 10, 64}), b = r.uniform({64, 48});
  std::vector<value_desc> descs{{dtype::f32, a.dims(), {}, nullptr},
                                {dtype::f32, b.dims(), {}, &b}};
  build_context bctx{cpu, 17, false};
  auto built = cpu_registry().find("MatMul")->build(make_node("MatMul", 2, 1), descs, bctx);
  REQUIRE(built.has_value());
  exec_context ectx{cpu};
  for (int run = 0; run < 3; ++run) {
    a = r.uniform(a.dims());
    std::vector<tensor> outs{tensor::empty(dtype::f32, built->outputs[0].dims)};
    // The kernel must read the packed copy of B, not the buffer it saw at build time.
    std::vector<tensor> ins{a, tensor{}};
    REQUIRE(built->kernel->run(ectx, ins, outs).is_ok());
    CHECK(relative_error(outs[0], naive_matmul(a, b)) < 1e-5);
  }
}

TEST_CASE("Gemm applies transA, transB, alpha, beta and every C broadcast") {
  rng r;
  INFO("seed " << r.seed);
  const int64_t m = 6, k = 9, n = 5;
  const std::vector<shape> c_shapes = {{}, {1}, {n}, {1, n}, {m, 1}, {m, n}, {1, 1}};
  for (int t = 0; t < 4; ++t) {
    const bool ta = t & 1, tb = t & 2;
    tensor a = r.uniform(ta ? shape{k, m} : shape{m, k});
    tensor b = r.uniform(tb ? shape{n, k} : shape{k, n});
    for (const shape& cd : c_shapes) {
      for (auto [alpha, beta] : {std::pair{1.f, 1.f}, {0.5f, 2.f}, {1.5f, 1.5f}, {0.f, 0.75f}}) {
        for (bool constant : {false, true}) {
          INFO("transA=" << ta << " transB=" << tb << " C=" << to_string(cd) << " alpha="
                         << alpha << " beta=" << beta << " constant=" << constant);
          tensor c = r.uniform(cd);
          node g = make_node("Gemm", 3, 1,
                             {{"transA", int64_t{ta}}, {"transB", int64_t{tb}},
                              {"alpha", alpha}, {"beta", beta}});
          auto out = run_op(g, {a, b, c}, constant);
          REQUIRE_MESSAGE(out.has_value(), out.error().to_string());
          tensor ref = naive_gemm(a, b, c, ta, tb, alpha, beta);
          REQUIRE((*out)[0].dims() == ref.dims());
          CHECK(relative_error((*out)[0], ref) < 1e-5);
        }
      }
    }
  }
}

TEST_CASE("Gemm without C or with beta 0 computes alpha times the product") {
  rng r;
  INFO("seed " << r.seed);
  tensor a = r.uniform({4, 3}), b = r.uniform({3, 7}), c = r.uniform({4, 7});
  auto two_inputs = run_op(make_node("Gemm", 2, 1, {{"alpha", 2.f}}), {a, b});
  REQUIRE(two_inputs.has_value());
  CHECK(relative_error((*two_inputs)[0], naive_gemm(a, b, {}, false, false, 2.f, 0.f)) < 1e-5);
  auto absent_c = run_op(make_node("Gemm", 3, 1), {a, b, tensor{}}, false);
  REQUIRE(absent_c.has_value());
  CHECK(relative_error((*absent_c)[0], naive_gemm(a, b, {}, false, false, 1.f, 0.f)) < 1e-5);
  auto beta_zero = run_op(make_node("Gemm", 3, 1, {{"beta", 0.f}}), {a, b, c}, false);
  REQUIRE(beta_zero.has_value());
  CHECK(relative_error((*beta_zero)[0], naive_gemm(a, b, {}, false, false, 1.f, 0.f)) < 1e-5);
}

TEST_CASE("Gemm with K == 0 yields beta * C") {
  rng r;
  INFO("seed " << r.seed);
  tensor a = tensor::empty(dtype::f32, {3, 0}), b = tensor::empty(dtype::f32, {0, 4});
  tensor c = r.uniform({4});
  auto out = run_op(make_node("Gemm", 3, 1, {{"beta", 2.f}}), {a, b, c}, false);
  REQUIRE(out.has_value());
  CHECK(relative_error((*out)[0], naive_gemm(a, b, c, false, false, 1.f, 2.f)) < 1e-6);
}

TEST_CASE("MatMul and Gemm reject mismatched K, bad ranks and bad C with invalid_argument") {
  tensor a = tensor::zeros(dtype::f32, {4, 5}), b = tensor::zeros(dtype::f32, {6, 3});
  auto k_mismatch = run_op(make_node("MatMul", 2, 1), {a, b});
  REQUIRE(!k_mismatch);
  CHECK(k_mismatch.error().code() == errc::invalid_argument);
  CHECK(k_mismatch.error().message().find("MatMul") != std::string::npos);

  auto batch = run_op(make_node("MatMul", 2, 1),
                      {tensor::zeros(dtype::f32, {2, 4, 5}), tensor::zeros(dtype::f32, {3, 5, 2})});
  REQUIRE(!batch);
  CHECK(batch.error().code() == errc::invalid_argument);

  auto scalar = run_op(make_node("MatMul", 2, 1), {tensor::scalar(1.f), b});
  REQUIRE(!scalar);
  CHECK(scalar.error().code() == errc::invalid_argument);

  auto gemm_k = run_op(make_node("Gemm", 2, 1, {{"transB", int64_t{1}}}), {a, b});
  REQUIRE(!gemm_k);
  CHECK(gemm_k.error().code() == errc::invalid_argument);

  auto gemm_rank = run_op(make_node("Gemm", 2, 1),
                          {tensor::zeros(dtype::f32, {1, 4, 5}), tensor::zeros(dtype::f32, {5, 3})});
  REQUIRE(!gemm_rank);
  CHECK(gemm_rank.error().code() == errc::invalid_argument);

  auto bad_c = run_op(make_node("Gemm", 3, 1),
                      {a, tensor::zeros(dtype::f32, {5, 3}), tensor::zeros(dtype::f32, {3, 4})});
  REQUIRE(!bad_c);
  CHECK(bad_c.error().code() == errc::invalid_argument);

  auto mixed = run_op(make_node("MatMul", 2, 1), {a, tensor::zeros(dtype::f64, {5, 3})});
  REQUIRE(!mixed);
  CHECK(mixed.error().code() == errc::invalid_argument);
}

TEST_CASE("MatMul on integers is reported as unsupported") {
  auto out = run_op(make_node("MatMul", 2, 1),
                    {tensor::zeros(dtype::i32, {2, 2}), tensor::zeros(dtype::i32, {2, 2})});
  REQUIRE(!out);
  CHECK(out.error().code() == errc::unsupported);
}
