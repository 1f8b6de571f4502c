// Every CUDA kernel on fresh random inputs against a naive CPU reference, in FP32, FP16 and
// BF16, with outputs poisoned (NaN) before each run. Suite "gpu": skipped without a device.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/cuda/cublas_gemm.hpp"
#include "kernels/cuda/cuda_plans.hpp"
#include "kernels/cuda/cudnn_conv.hpp"
#include "kernels/cuda/elementwise.hpp"
#include "kernels/cuda/normalization.hpp"
#include "kernels/cuda/reduce.hpp"
#include "kernels/cuda/shape_ops.hpp"
#include "tests/kernels/cuda_test_util.hpp"

using namespace troupe;
using namespace troupe::cuda;
using namespace troupe::test;

namespace {

size_t count(const shape& dims) { return static_cast<size_t>(numel_of(dims)); }

std::vector<int64_t> unravel(int64_t i, const shape& dims) {
  std::vector<int64_t> idx(dims.size());
  for (size_t d = dims.size(); d-- > 0;) {
    idx[d] = i % dims[d];
    i /= dims[d];
  }
  return idx;
}

int64_t ravel(const std::vector<int64_t>& idx, const shape& dims) {
  int64_t flat = 0;
  for (size_t d = 0; d < dims.size(); ++d)
    flat = flat * dims[d] + idx[d];
  return flat;
}

double gelu_tanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x)));
}

std::vector<double> as_double(const std::vector<float>& v) { return {v.begin(), v.end()}; }

} // namespace

TEST_SUITE("gpu") {

TEST_CASE("broadcast binary ops match the CPU in every float dtype") {
  auto& env = gpu_env::get();
  const std::vector<std::pair<shape, shape>> shapes = {
      {{2, 3, 4, 5}, {3, 1, 5}}, {{64, 1}, {1, 48}}, {{1000}, {1000}}, {{7, 9}, {}}};
  const binary_op ops[] = {binary_op::add, binary_op::sub, binary_op::mul, binary_op::div,
                           binary_op::pow, binary_op::max, binary_op::min};
  for (dtype t : gpu_floats)
    for (const auto& [ad, bd] : shapes)
      for (binary_op op : ops) {
        // Positive operands keep Pow real and Div away from zero.
        const auto a = random_values(t, count(ad), 0.5f, 2.0f);
        const auto b = random_values(t, count(bd), 0.5f, 2.0f);
        auto plan = plan_binary(ad, bd);
        REQUIRE(plan);
        const shape& od = plan->out_dims;
        auto da = upload(t, a), db = upload(t, b);
        device_buffer out(count(od) * size_of(t));
        out.poison();
        REQUIRE(binary(op, t, ad, da.get(), bd, db.get(), out.get(), env.stream).is_ok());
        std::vector<double> ref(count(od));
        for (int64_t i = 0; i < numel_of(od); ++i) {
          const auto idx = unravel(i, od);
          auto at = [&](const shape& dims) {
            std::vector<int64_t> sub(dims.size());
            for (size_t d = 0; d < dims.size(); ++d)
              sub[d] = dims[d] == 1 ? 0 : idx[od.size() - dims.size() + d];
            return static_cast<size_t>(ravel(sub, dims));
          };
          const double x = a[at(ad)], y = b[at(bd)];
          ref[static_cast<size_t>(i)] = op == binary_op::add   ? x + y
                                        : op == binary_op::sub ? x - y
                                        : op == binary_op::mul ? x * y
                                        : op == binary_op::div ? x / y
                                        : op == binary_op::pow ? std::pow(x, y)
                                        : op == binary_op::max ? std::max(x, y)
                                                               : std::min(x, y);
        }
        INFO("dtype " << to_string(t) << " op " << static_cast<int>(op) << " " << to_string(ad)
                      << " x " << to_string(bd));
        CHECK(relative_error(download(t, out, ref.size()), ref) <= tolerance(t));
      }
}

TEST_CASE("unary ops, GELU and Erf match the CPU in every float dtype") {
  auto& env = gpu_env::get();
  const unary_op ops[] = {unary_op::relu, unary_op::sigmoid, unary_op::tanh, unary_op::exp,
                          unary_op::log,  unary_op::sqrt,    unary_op::neg,  unary_op::abs,
                          unary_op::clip, unary_op::erf,     unary_op::gelu_erf,
                          unary_op::gelu_tanh};
  const size_t n = 100003; // not a multiple of the block
  for (dtype t : gpu_floats)
    for (unary_op op : ops) {
      const bool positive = op == unary_op::log || op == unary_op::sqrt;
      const auto x = random_values(t, n, positive ? 0.1f : -3.0f, 3.0f);
      auto dx = upload(t, x);
      device_buffer y(n * size_of(t));
      y.poison();
      REQUIRE(unary(op, t, dx.get(), y.get(), static_cast<int64_t>(n), env.stream, -0.5f, 1.5f).is_ok());
      std::vector<double> ref(n);
      for (size_t i = 0; i < n; ++i) {
        const double v = x[i];
        switch (op) {
        case unary_op::relu: ref[i] = std::max(v, 0.0); break;
        case unary_op::sigmoid: ref[i] = 1.0 / (1.0 + std::exp(-v)); break;
        case unary_op::tanh: ref[i] = std::tanh(v); break;
        case unary_op::exp: ref[i] = std::exp(v); break;
        case unary_op::log: ref[i] = std::log(v); break;
        case unary_op::sqrt: ref[i] = std::sqrt(v); break;
        case unary_op::neg: ref[i] = -v; break;
        case unary_op::abs: ref[i] = std::abs(v); break;
        case unary_op::clip: ref[i] = std::clamp(v, -0.5, 1.5); break;
        case unary_op::erf: ref[i] = std::erf(v); break;
        case unary_op::gelu_erf: ref[i] = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0))); break;
        case unary_op::gelu_tanh: ref[i] = gelu_tanh(v); break;
        }
      }
      INFO("dtype " << to_string(t) << " op " << static_cast<int>(op));
      CHECK(relative_error(download(t, y, n), ref) <= tolerance(t));
    }
}

TEST_CASE("casts between float32, float16 and bfloat16 round like the CPU conversions") {
  auto& env = gpu_env::get();
  const size_t n = 4099;
  for (dtype from : gpu_floats)
    for (dtype to : gpu_floats) {
      const auto x = random_values(from, n, -1000.0f, 1000.0f);
      auto dx = upload(from, x);
      device_buffer y(n * size_of(to));
      y.poison();
      REQUIRE(cast(from, dx.get(), to, y.get(), static_cast<int64_t>(n), env.stream).is_ok());
      const auto got = download(to, y, n);
      size_t mismatches = 0;
      for (size_t i = 0; i < n; ++i)
        mismatches += got[i] != round_to(to, x[i]) ? 1 : 0;
      INFO(to_string(from) << " -> " << to_string(to));
      CHECK(mismatches == 0);
    }
}

TEST_CASE("layer normalization and softmax match the CPU for narrow and wide rows") {
  auto& env = gpu_env::get();
  const std::vector<std::pair<shape, int64_t>> cases = {
      {{6, 768}, -1}, {{3, 4, 10}, 1}, {{37, 5}, -1}, {{2, 4096}, -1}};
  for (dtype t : gpu_floats)
    for (const auto& [dims, axis] : cases) {
      auto rows = plan_rows(dims, axis);
      REQUIRE(rows);
      const auto cols = static_cast<size_t>(rows->cols), nrows = static_cast<size_t>(rows->rows);
      // An offset mean checks the two-pass variance.
      const auto x = random_values(t, count(dims), 3.0f, 5.0f);
      const auto gamma = random_values(t, cols, 0.5f, 1.5f), beta = random_values(t, cols);
      auto dx = upload(t, x), dg = upload(t, gamma), db = upload(t, beta);
      device_buffer y(count(dims) * size_of(t));
      y.poison();
      REQUIRE(layer_norm(t, dims, axis, dx.get(), dg.get(), db.get(), y.get(), 1e-5f, env.stream).is_ok());
      std::vector<double> ref(x.size());
      for (size_t r = 0; r < nrows; ++r) {
        double mean = 0, var = 0;
        for (size_t c = 0; c < cols; ++c)
          mean += x[r * cols + c];
        mean /= static_cast<double>(cols);
        for (size_t c = 0; c < cols; ++c)
          var += (x[r * cols + c] - mean) * (x[r * cols + c] - mean);
        var /= static_cast<double>(cols);
        for (size_t c = 0; c < cols; ++c)
          ref[r * cols + c] = (x[r * cols + c] - mean) / std::sqrt(var + 1e-5) * gamma[c] + beta[c];
      }
      INFO("layer_norm " << to_string(t) << " " << to_string(dims));
      CHECK(relative_error(download(t, y, ref.size()), ref) <= tolerance(t));

      // Softmax over the last axis with large logits: only a max-shifted kernel stays finite.
      const auto logits = random_values(t, count(dims), -80.0f, 80.0f);
      auto dl = upload(t, logits);
      y.poison();
      REQUIRE(softmax(t, dims, dl.get(), y.get(), env.stream).is_ok());
      const auto last = static_cast<size_t>(dims.back());
      std::vector<double> sref(logits.size());
      for (size_t r = 0; r < logits.size() / last; ++r) {
        double m = -INFINITY, sum = 0;
        for (size_t c = 0; c < last; ++c)
          m = std::max<double>(m, logits[r * last + c]);
        for (size_t c = 0; c < last; ++c)
          sum += std::exp(logits[r * last + c] - m);
        for (size_t c = 0; c < last; ++c)
          sref[r * last + c] = std::exp(logits[r * last + c] - m) / sum;
      }
      INFO("softmax " << to_string(t) << " " << to_string(dims));
      CHECK(relative_error(download(t, y, sref.size()), sref) <= tolerance(t));
    }
}

TEST_CASE("reduce sum, mean and max over axis sets match the CPU") {
  auto& env = gpu_env::get();
  const shape dims{3, 40, 5, 7};
  const std::vector<std::vector<int64_t>> axis_sets = {{3}, {1}, {0, 2}, {}, {1, 2, 3}};
  for (dtype t : gpu_floats)
    for (const auto& axes : axis_sets)
      for (reduce_op op : {reduce_op::sum, reduce_op::mean, reduce_op::max}) {
        const auto x = random_values(t, count(dims));
        auto plan = plan_reduce(dims, axes, true);
        REQUIRE(plan);
        const shape& od = plan->out_dims;
        auto dx = upload(t, x);
        device_buffer y(count(od) * size_of(t));
        y.poison();
        REQUIRE(reduce(op, t, dims, axes, dx.get(), y.get(), env.stream).is_ok());
        std::vector<double> ref(count(od), op == reduce_op::max ? -INFINITY : 0.0);
        const double n = static_cast<double>(numel_of(dims)) / static_cast<double>(ref.size());
        for (int64_t i = 0; i < numel_of(dims); ++i) {
          auto idx = unravel(i, dims);
          for (size_t d = 0; d < dims.size(); ++d)
            if (od[d] == 1)
              idx[d] = 0;
          double& r = ref[static_cast<size_t>(ravel(idx, od))];
          const double v = x[static_cast<size_t>(i)];
          r = op == reduce_op::max ? std::max(r, v) : r + (op == reduce_op::mean ? v / n : v);
        }
        INFO(to_string(t) << " axes " << to_string(axes) << " op " << static_cast<int>(op));
        CHECK(relative_error(download(t, y, ref.size()), ref) <= tolerance(t));
      }
}

TEST_CASE("transpose moves every element for tiled, strided and rank-6 permutations") {
  auto& env = gpu_env::get();
  const std::vector<std::pair<shape, std::vector<int64_t>>> cases = {
      {{5, 37, 65}, {0, 2, 1}}, {{129, 200}, {1, 0}}, {{3, 4, 5}, {2, 0, 1}},
      {{2, 3, 4, 5, 3, 2}, {5, 3, 1, 0, 2, 4}}};
  for (dtype t : {dtype::f32, dtype::f16, dtype::i64, dtype::u8})
    for (const auto& [dims, perm] : cases) {
      std::vector<int64_t> x(count(dims));
      std::iota(x.begin(), x.end(), int64_t{0});
      std::vector<uint8_t> bytes(x.size() * size_of(t));
      for (size_t i = 0; i < x.size(); ++i) // distinct low bytes, little-endian
        std::memcpy(bytes.data() + i * size_of(t), &x[i], size_of(t));
      auto dx = upload_raw(bytes);
      device_buffer y(bytes.size());
      y.poison();
      REQUIRE(transpose(t, dims, perm, dx.get(), y.get(), env.stream).is_ok());
      const auto got = download_raw<uint8_t>(y, bytes.size());
      auto plan = plan_transpose(dims, perm);
      size_t wrong = 0;
      for (int64_t i = 0; i < numel_of(dims); ++i) {
        const auto out_idx = unravel(i, plan->out_dims);
        std::vector<int64_t> in_idx(dims.size());
        for (size_t d = 0; d < perm.size(); ++d)
          in_idx[static_cast<size_t>(perm[d])] = out_idx[d];
        const auto src = static_cast<size_t>(ravel(in_idx, dims)) * size_of(t);
        wrong += std::memcmp(got.data() + static_cast<size_t>(i) * size_of(t), bytes.data() + src,
                             size_of(t)) != 0;
      }
      INFO(to_string(t) << " " << to_string(dims) << " perm " << to_string(perm));
      CHECK(wrong == 0);
    }
}

TEST_CASE("slice, split and concat copy exactly the selected elements") {
  auto& env = gpu_env::get();
  const shape dims{10, 6, 3};
  std::vector<float> x(count(dims));
  std::iota(x.begin(), x.end(), 0.0f);
  auto dx = upload(dtype::f32, x);

  const int64_t starts[] = {-3, 100}, ends[] = {100, -100}, axes[] = {0, 1}, steps[] = {1, -2};
  device_buffer s(3 * 3 * 3 * 4);
  s.poison();
  REQUIRE(slice(dtype::f32, dims, starts, ends, axes, steps, dx.get(), s.get(), env.stream).is_ok());
  std::vector<float> want;
  for (int64_t r = 7; r < 10; ++r)
    for (int64_t c = 5; c >= 0; c -= 2)
      for (int64_t k = 0; k < 3; ++k)
        want.push_back(static_cast<float>((r * 6 + c) * 3 + k));
  CHECK(download(dtype::f32, s, want.size()) == want);

  const int64_t sizes[] = {1, 2, 3};
  device_buffer p0(10 * 1 * 3 * 4), p1(10 * 2 * 3 * 4), p2(10 * 3 * 3 * 4);
  for (auto* p : {&p0, &p1, &p2})
    p->poison();
  void* outs[] = {p0.get(), p1.get(), p2.get()};
  REQUIRE(split(dtype::f32, dims, 1, sizes, dx.get(), outs, env.stream).is_ok());
  const std::vector<shape> parts = {{10, 1, 3}, {10, 2, 3}, {10, 3, 3}};
  device_buffer joined(x.size() * 4);
  joined.poison();
  const void* ins[] = {p0.get(), p1.get(), p2.get()};
  REQUIRE(concat(dtype::f32, parts, ins, 1, joined.get(), env.stream).is_ok());
  CHECK(download(dtype::f32, joined, x.size()) == x); // split then concat is the identity
  const auto middle = download(dtype::f32, p1, 60);
  CHECK(middle[0] == 3.0f);  // [0][1][0]
  CHECK(middle[6] == 21.0f); // [1][1][0]
}

TEST_CASE("gather takes int32 and int64 indices, negative ones from the end, and flags out-of-range") {
  auto& env = gpu_env::get();
  const shape dims{4, 5, 6};
  for (dtype t : gpu_floats) {
    const auto x = random_values(t, count(dims));
    auto dx = upload(t, x);
    const std::vector<int64_t> idx64 = {4, -1, 0, 2, -5, 3};
    const std::vector<int32_t> idx32(idx64.begin(), idx64.end());
    const shape index_dims{2, 3};
    for (bool wide : {false, true}) {
      auto di = wide ? upload_raw(idx64) : upload_raw(idx32);
      device_buffer y(4 * 6 * 6 * size_of(t));
      y.poison();
      auto flag = upload_raw(std::vector<int>{0});
      REQUIRE(gather(t, dims, dx.get(), wide ? dtype::i64 : dtype::i32, index_dims, di.get(), 1,
                     y.get(), flag.as<int>(), env.stream)
                  .is_ok());
      CHECK(gather_error(flag.as<int>(), env.stream).is_ok());
      std::vector<double> ref;
      for (int64_t o = 0; o < 4; ++o)
        for (int64_t j : idx64)
          for (int64_t k = 0; k < 6; ++k)
            ref.push_back(x[static_cast<size_t>((o * 5 + (j < 0 ? j + 5 : j)) * 6 + k)]);
      CHECK(relative_error(download(t, y, ref.size()), ref) == 0.0);
    }
    const std::vector<int64_t> bad = {1, 5};
    auto dbad = upload_raw(bad);
    device_buffer y(4 * 2 * 6 * size_of(t));
    auto flag = upload_raw(std::vector<int>{0});
    REQUIRE(gather(t, dims, dx.get(), dtype::i64, shape{2}, dbad.get(), 1, y.get(), flag.as<int>(),
                   env.stream)
                .is_ok());
    CHECK(gather_error(flag.as<int>(), env.stream).code() == errc::out_of_range);
  }
}

TEST_CASE("cuBLASLt gemm matches the CPU for transposes, batches, epilogues and TF32") {
  auto& env = gpu_env::get();
  gemm_algo_cache cache;
  struct gemm_case {
    bool ta, tb;
    int64_t m, n, k, batch;
    gemm_epilogue epilogue;
    bool shared_b;
  };
  const gemm_case cases[] = {{false, false, 64, 96, 128, 1, gemm_epilogue::none, false},
                             {true, false, 33, 17, 65, 1, gemm_epilogue::bias, false},
                             {false, true, 48, 40, 72, 3, gemm_epilogue::bias_relu, false},
                             {true, true, 16, 24, 32, 4, gemm_epilogue::bias_gelu, true},
                             {false, false, 128, 64, 256, 2, gemm_epilogue::relu, true}};
  for (dtype t : gpu_floats)
    for (bool tf32 : {false, true}) {
      if (tf32 && t != dtype::f32)
        continue;
      for (const auto& g : cases) {
        gemm_params p;
        p.type = t, p.trans_a = g.ta, p.trans_b = g.tb, p.m = g.m, p.n = g.n, p.k = g.k;
        p.batch = g.batch, p.epilogue = g.epilogue, p.allow_tf32 = tf32;
        if (g.shared_b)
          p.stride_b = 0;
        const size_t a_size = static_cast<size_t>(g.batch * g.m * g.k);
        const size_t b_size = static_cast<size_t>((g.shared_b ? 1 : g.batch) * g.k * g.n);
        const auto a = random_values(t, a_size), b = random_values(t, b_size);
        const auto bias = random_values(t, static_cast<size_t>(g.n));
        auto da = upload(t, a), db = upload(t, b), dbias = upload(t, bias);
        const size_t c_size = static_cast<size_t>(g.batch * g.m * g.n);
        device_buffer c(c_size * size_of(t));
        c.poison();
        REQUIRE(gemm(env.cublas, cache, p, da.get(), db.get(), dbias.get(), c.get(),
                     env.workspace.get(), env.workspace.bytes(), env.stream)
                    .is_ok());
        std::vector<double> ref(c_size);
        for (int64_t bi = 0; bi < g.batch; ++bi)
          for (int64_t i = 0; i < g.m; ++i)
            for (int64_t j = 0; j < g.n; ++j) {
              double acc = 0;
              for (int64_t kk = 0; kk < g.k; ++kk) {
                const size_t ai = static_cast<size_t>(bi * g.m * g.k + (g.ta ? kk * g.m + i : i * g.k + kk));
                const size_t bo = static_cast<size_t>(g.shared_b ? 0 : bi * g.k * g.n);
                const size_t bj = bo + static_cast<size_t>(g.tb ? j * g.k + kk : kk * g.n + j);
                acc += static_cast<double>(a[ai]) * b[bj];
              }
              const bool biased = g.epilogue == gemm_epilogue::bias ||
                                  g.epilogue == gemm_epilogue::bias_relu ||
                                  g.epilogue == gemm_epilogue::bias_gelu;
              if (biased)
                acc += bias[static_cast<size_t>(j)];
              if (g.epilogue == gemm_epilogue::relu || g.epilogue == gemm_epilogue::bias_relu)
                acc = std::max(acc, 0.0);
              if (g.epilogue == gemm_epilogue::bias_gelu)
                acc = gelu_tanh(acc);
              ref[static_cast<size_t>((bi * g.m + i) * g.n + j)] = acc;
            }
        INFO(to_string(t) << (tf32 ? " tf32" : "") << " m " << g.m << " n " << g.n << " k " << g.k
                          << " batch " << g.batch << " ta " << g.ta << " tb " << g.tb);
        CHECK(relative_error(download(t, c, c_size), ref) <= tolerance(t, tf32));
      }
    }
  CHECK(cache.size() > 0);
}

TEST_CASE("cuDNN convolution with groups, strides, pads, dilations, bias, a residual and ReLU "
          "matches the CPU") {
  auto& env = gpu_env::get();
  struct conv_case {
    int64_t n, c, h, w, k, r, s, groups, stride, pad, dilation;
    bool bias;
    conv_activation act;
    bool residual; // bias + ReLU: one fused call; otherwise added after the convolution
  };
  const conv_case cases[] = {
      {2, 8, 15, 13, 16, 3, 3, 1, 1, 1, 1, true, conv_activation::relu, false},
      {2, 8, 15, 13, 16, 3, 3, 1, 1, 1, 1, true, conv_activation::relu, true},
      {1, 8, 20, 20, 12, 3, 3, 2, 2, 1, 1, true, conv_activation::none, false},
      {1, 8, 20, 20, 12, 3, 3, 2, 2, 1, 1, true, conv_activation::none, true},
      {2, 4, 17, 17, 8, 3, 3, 4, 1, 2, 2, false, conv_activation::relu, false},
      {1, 3, 32, 32, 16, 7, 7, 1, 2, 3, 1, false, conv_activation::none, false}};
  // Both ways of choosing: cuDNN's heuristics, and timing the candidates on the first run
  // (what PyTorch calls benchmark mode, the GPU session's default).
  for (conv_search search : {conv_search::heuristic, conv_search::exhaustive}) {
  CAPTURE(search == conv_search::exhaustive);
  conv_algo_cache cache(std::min(size_t{32} << 20, env.workspace.bytes()), search);
  for (dtype t : gpu_floats)
    for (tensor_layout layout : {tensor_layout::nchw, tensor_layout::nhwc})
      for (const auto& cc : cases) {
        conv_params p;
        p.type = t, p.layout = layout, p.n = cc.n, p.c = cc.c, p.h = cc.h, p.w = cc.w;
        p.k = cc.k, p.r = cc.r, p.s = cc.s, p.groups = cc.groups;
        p.stride_h = p.stride_w = cc.stride;
        p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = cc.pad;
        p.dilation_h = p.dilation_w = cc.dilation;
        p.bias = cc.bias, p.activation = cc.act;
        auto out = conv_output(p);
        REQUIRE(out);
        const int64_t cg = p.c / p.groups, kg = p.k / p.groups;
        const auto x = random_values(t, static_cast<size_t>(p.n * p.c * p.h * p.w));
        const auto w = random_values(t, static_cast<size_t>(p.k * cg * p.r * p.s));
        const auto bias = random_values(t, static_cast<size_t>(p.k));
        auto dx = upload(t, x), dw = upload(t, w), dbias = upload(t, bias);
        const size_t y_size = static_cast<size_t>(out->n * out->k * out->p * out->q);
        const auto z = random_values(t, cc.residual ? y_size : 1);
        auto dz = upload(t, z);
        device_buffer y(y_size * size_of(t));
        y.poison();
        auto needed = conv_workspace_size(env.cudnn, cache, p);
        REQUIRE(needed);
        REQUIRE(*needed <= env.workspace.bytes());
        auto st = conv_forward(env.cudnn, cache, p, dx.get(), dw.get(), dbias.get(), y.get(),
                               env.workspace.get(), env.workspace.bytes(), env.stream,
                               cc.residual ? dz.get() : nullptr);
        INFO(to_string(t) << (layout == tensor_layout::nhwc ? " NHWC " : " NCHW ")
                          << (cc.residual ? "residual " : "") << st.to_string());
        REQUIRE(st.is_ok());
        const bool nhwc = layout == tensor_layout::nhwc;
        auto x_at = [&](int64_t n, int64_t c, int64_t h, int64_t ww) {
          return x[static_cast<size_t>(nhwc ? ((n * p.h + h) * p.w + ww) * p.c + c
                                            : ((n * p.c + c) * p.h + h) * p.w + ww)];
        };
        auto w_at = [&](int64_t k, int64_t c, int64_t r, int64_t s) {
          return w[static_cast<size_t>(nhwc ? ((k * p.r + r) * p.s + s) * cg + c
                                            : ((k * cg + c) * p.r + r) * p.s + s)];
        };
        std::vector<double> ref(y_size);
        for (int64_t n = 0; n < out->n; ++n)
          for (int64_t k = 0; k < out->k; ++k)
            for (int64_t oh = 0; oh < out->p; ++oh)
              for (int64_t ow = 0; ow < out->q; ++ow) {
                const int64_t g = k / kg;
                double acc = p.bias ? bias[static_cast<size_t>(k)] : 0.0;
                for (int64_t c = 0; c < cg; ++c)
                  for (int64_t r = 0; r < p.r; ++r)
                    for (int64_t s = 0; s < p.s; ++s) {
                      const int64_t ih = oh * p.stride_h - p.pad_top + r * p.dilation_h;
                      const int64_t iw = ow * p.stride_w - p.pad_left + s * p.dilation_w;
                      if (ih >= 0 && ih < p.h && iw >= 0 && iw < p.w)
                        acc += static_cast<double>(x_at(n, g * cg + c, ih, iw)) * w_at(k, c, r, s);
                    }
                const int64_t at = nhwc ? ((n * out->p + oh) * out->q + ow) * out->k + k
                                        : ((n * out->k + k) * out->p + oh) * out->q + ow;
                if (cc.residual)
                  acc += z[static_cast<size_t>(at)];
                if (p.activation == conv_activation::relu)
                  acc = std::max(acc, 0.0);
                ref[static_cast<size_t>(at)] = acc;
              }
        CHECK(relative_error(download(t, y, y_size), ref) <= tolerance(t));
        // The shape's algorithm ran, so it is settled for every later run.
        conv_algo_cache::entry chosen;
        REQUIRE(cache.find(conv_key_of(p), chosen));
        CHECK(chosen.verified);
        CHECK(chosen.workspace <= env.workspace.bytes());
        // A second run takes the settled algorithm and gives the same answer.
        y.poison();
        REQUIRE(conv_forward(env.cudnn, cache, p, dx.get(), dw.get(), dbias.get(), y.get(),
                             env.workspace.get(), env.workspace.bytes(), env.stream,
                             cc.residual ? dz.get() : nullptr)
                    .is_ok());
        CHECK(relative_error(download(t, y, y_size), ref) <= tolerance(t));
      }
  CHECK(cache.size() > 0);
  }
}

TEST_CASE("cuDNN max, average and global pooling and activations match the CPU") {
  auto& env = gpu_env::get();
  for (dtype t : gpu_floats)
    for (pool_mode mode : {pool_mode::max, pool_mode::average_exclude_pad, pool_mode::average_include_pad})
      for (bool global : {false, true}) {
        pool_params p;
        p.type = t, p.mode = mode, p.n = 2, p.c = 5, p.h = 11, p.w = 9, p.global = global;
        p.kernel_h = p.kernel_w = 3, p.stride_h = p.stride_w = 2;
        p.pad_top = p.pad_left = p.pad_bottom = p.pad_right = 1;
        auto out = pool_output(p);
        REQUIRE(out);
        const auto x = random_values(t, static_cast<size_t>(p.n * p.c * p.h * p.w));
        auto dx = upload(t, x);
        const size_t y_size = static_cast<size_t>(out->n * out->k * out->p * out->q);
        device_buffer y(y_size * size_of(t));
        y.poison();
        REQUIRE(pool_forward(env.cudnn, p, dx.get(), y.get(), env.stream).is_ok());
        const int64_t kh = global ? p.h : 3, kw = global ? p.w : 3, pad = global ? 0 : 1, st = global ? 1 : 2;
        std::vector<double> ref;
        for (int64_t nc = 0; nc < p.n * p.c; ++nc)
          for (int64_t oh = 0; oh < out->p; ++oh)
            for (int64_t ow = 0; ow < out->q; ++ow) {
              double m = -INFINITY, sum = 0;
              int64_t inside = 0;
              for (int64_t r = 0; r < kh; ++r)
                for (int64_t s = 0; s < kw; ++s) {
                  const int64_t ih = oh * st - pad + r, iw = ow * st - pad + s;
                  if (ih < 0 || ih >= p.h || iw < 0 || iw >= p.w)
                    continue;
                  const double v = x[static_cast<size_t>((nc * p.h + ih) * p.w + iw)];
                  m = std::max(m, v);
                  sum += v;
                  ++inside;
                }
              ref.push_back(mode == pool_mode::max ? m
                            : mode == pool_mode::average_exclude_pad
                                ? sum / static_cast<double>(inside)
                                : sum / static_cast<double>(kh * kw));
            }
        INFO(to_string(t) << " mode " << static_cast<int>(mode) << " global " << global);
        CHECK(relative_error(download(t, y, y_size), ref) <= tolerance(t));
      }

  for (dtype t : gpu_floats) {
    const size_t n = 5000;
    const auto x = random_values(t, n, -4.0f, 4.0f);
    auto dx = upload(t, x);
    device_buffer y(n * size_of(t));
    y.poison();
    REQUIRE(activation_forward(env.cudnn, cudnn_activation_kind::sigmoid, t, static_cast<int64_t>(n),
                               dx.get(), y.get(), env.stream)
                .is_ok());
    std::vector<double> ref(n);
    for (size_t i = 0; i < n; ++i)
      ref[i] = 1.0 / (1.0 + std::exp(-static_cast<double>(x[i])));
    CHECK(relative_error(download(t, y, n), ref) <= tolerance(t));
  }
}

} // TEST_SUITE("gpu")
