// Tests for Softmax, LogSoftmax, LayerNormalization and Reduce* against naive loops.
#include <doctest/doctest.h>

#include <cmath>
#include <functional>
#include <random>

#include "tests/op_harness.hpp"

using namespace troupe;
using troupe::testing::make_node;
using troupe::testing::run_op;

namespace {

struct rng {
  unsigned seed = std::random_device{}();
  std::mt19937 gen{seed};

  tensor uniform(shape dims, float lo = -2.f, float hi = 2.f) {
    tensor t = tensor::empty(dtype::f32, std::move(dims));
    std::uniform_real_distribution<float> dist(lo, hi);
    for (float& v : t.values<float>())
      v = dist(gen);
    return t;
  }
};

/// Calls `fn(offset, stride)` once per 1-D line of `count` elements of a row-major tensor
/// seen as [outer, count, inner].
void for_each_line(int64_t outer, int64_t count, int64_t inner,
                   const std::function<void(int64_t, int64_t)>& fn) {
  for (int64_t o = 0; o < outer; ++o)
    for (int64_t i = 0; i < inner; ++i)
      fn(o * count * inner + i, inner);
}

tensor naive_softmax(const tensor& x, int64_t outer, int64_t count, int64_t inner, bool log) {
  tensor y = tensor::empty(dtype::f32, x.dims());
  const float* in = x.data<float>();
  float* out = y.data<float>();
  for_each_line(outer, count, inner, [&](int64_t off, int64_t stride) {
    double mx = -INFINITY, sum = 0;
    for (int64_t k = 0; k < count; ++k)
      mx = std::max<double>(mx, in[off + k * stride]);
    for (int64_t k = 0; k < count; ++k)
      sum += std::exp(in[off + k * stride] - mx);
    for (int64_t k = 0; k < count; ++k) {
      const double v = in[off + k * stride] - mx;
      out[off + k * stride] = static_cast<float>(log ? v - std::log(sum) : std::exp(v) / sum);
    }
  });
  return y;
}

int64_t prod(const shape& d, size_t b, size_t e) {
  int64_t p = 1;
  for (size_t i = b; i < e; ++i)
    p *= d[i];
  return p;
}

/// Layer norm over the last dims from `axis`, with scale and bias broadcast over them.
tensor naive_layer_norm(const tensor& x, size_t axis, const tensor& scale, const tensor& bias,
                        float eps, tensor* mean_out = nullptr, tensor* inv_out = nullptr) {
  const int64_t rows = prod(x.dims(), 0, axis), cols = prod(x.dims(), axis, x.dims().size());
  tensor y = tensor::empty(dtype::f32, x.dims());
  auto param = [](const tensor& p, int64_t j, float fallback) {
    if (!p.defined())
      return fallback;
    return p.data<float>()[j % p.numel()]; // p broadcasts as trailing dims of the row
  };
  for (int64_t r = 0; r < rows; ++r) {
    const float* in = x.data<float>() + r * cols;
    double mean = 0, var = 0;
    for (int64_t j = 0; j < cols; ++j)
      mean += in[j];
    mean /= double(cols);
    for (int64_t j = 0; j < cols; ++j)
      var += (in[j] - mean) * (in[j] - mean);
    var /= double(cols);
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t j = 0; j < cols; ++j)
      y.data<float>()[r * cols + j] =
          static_cast<float>((in[j] - mean) * inv * param(scale, j, 1.f) + param(bias, j, 0.f));
    if (mean_out)
      mean_out->data<float>()[r] = static_cast<float>(mean);
    if (inv_out)
      inv_out->data<float>()[r] = static_cast<float>(inv);
  }
  return y;
}

/// Reduction by gathering every output's inputs into a list first.
tensor naive_reduce(const std::string& op, const tensor& x, const std::vector<int64_t>& axes,
                    bool keepdims) {
  const shape& d = x.dims();
  std::vector<bool> red(d.size(), axes.empty());
  for (int64_t a : axes)
    red[static_cast<size_t>(a < 0 ? a + static_cast<int64_t>(d.size()) : a)] = true;
  shape out_dims;
  for (size_t i = 0; i < d.size(); ++i)
    if (!red[i] || keepdims)
      out_dims.push_back(red[i] ? 1 : d[i]);
  int64_t out_numel = 1;
  for (size_t i = 0; i < d.size(); ++i)
    if (!red[i])
      out_numel *= d[i];
  std::vector<std::vector<double>> groups(static_cast<size_t>(out_numel));
  for (int64_t flat = 0; flat < x.numel(); ++flat) {
    int64_t rest = flat, out_index = 0, out_stride = 1;
    for (size_t i = d.size(); i-- > 0;) {
      const int64_t idx = rest % d[i];
      rest /= d[i];
      if (!red[i]) {
        out_index += idx * out_stride;
        out_stride *= d[i];
      }
    }
    groups[static_cast<size_t>(out_index)].push_back(x.data<float>()[flat]);
  }
  tensor y = tensor::empty(dtype::f32, out_dims);
  for (size_t g = 0; g < groups.size(); ++g) {
    const auto& v = groups[g];
    double r = 0;
    if (op == "ReduceSum" || op == "ReduceMean") {
      for (double e : v)
        r += e;
      if (op == "ReduceMean")
        r /= double(v.size());
    } else if (op == "ReduceMax") {
      r = *std::max_element(v.begin(), v.end());
    } else if (op == "ReduceMin") {
      r = *std::min_element(v.begin(), v.end());
    } else if (op == "ReduceProd") {
      r = 1;
      for (double e : v)
        r *= e;
    } else if (op == "ReduceSumSquare" || op == "ReduceL2") {
      for (double e : v)
        r += e * e;
      if (op == "ReduceL2")
        r = std::sqrt(r);
    } else if (op == "ReduceL1") {
      for (double e : v)
        r += std::abs(e);
    } else if (op == "ReduceLogSum") {
      for (double e : v)
        r += e;
      r = std::log(r);
    } else if (op == "ReduceLogSumExp") {
      for (double e : v)
        r += std::exp(e);
      r = std::log(r);
    }
    y.data<float>()[g] = static_cast<float>(r);
  }
  return y;
}

tensor axes_tensor(const std::vector<int64_t>& axes) {
  return tensor::from_vector<int64_t>({static_cast<int64_t>(axes.size())}, axes);
}

} // namespace

TEST_CASE("Softmax and LogSoftmax from opset 13 normalize along one axis, any position") {
  rng r;
  INFO("seed " << r.seed);
  const shape dims{3, 4, 5};
  for (const char* op : {"Softmax", "LogSoftmax"}) {
    for (int64_t axis : {0, 1, 2, -1, -2}) {
      INFO(op << " axis " << axis);
      tensor x = r.uniform(dims, -5.f, 5.f);
      auto out = run_op(make_node(op, 1, 1, {{"axis", axis}}), {x}, false, 13);
      REQUIRE_MESSAGE(out.has_value(), out.error().to_string());
      const auto a = static_cast<size_t>(axis < 0 ? axis + 3 : axis);
      tensor ref = naive_softmax(x, prod(dims, 0, a), dims[a], prod(dims, a + 1, 3),
                                 std::string{op} == "LogSoftmax");
      CHECK(relative_error((*out)[0], ref) < 1e-5);
    }
    tensor x = r.uniform({2, 3, 8}, -5.f, 5.f);
    auto by_default = run_op(make_node(op, 1, 1), {x}, false, 17);
    REQUIRE(by_default.has_value());
    CHECK(relative_error((*by_default)[0],
                         naive_softmax(x, 6, 8, 1, std::string{op} == "LogSoftmax")) < 1e-5);
  }
}

TEST_CASE("Softmax before opset 13 coerces the input to 2-D at axis (default 1)") {
  rng r;
  INFO("seed " << r.seed);
  const shape dims{2, 3, 4, 5};
  for (const char* op : {"Softmax", "LogSoftmax"}) {
    const bool log = std::string{op} == "LogSoftmax";
    tensor x = r.uniform(dims, -5.f, 5.f);
    auto by_default = run_op(make_node(op, 1, 1), {x}, false, 11);
    REQUIRE(by_default.has_value());
    CHECK(relative_error((*by_default)[0], naive_softmax(x, 2, 60, 1, log)) < 1e-5);
    auto axis2 = run_op(make_node(op, 1, 1, {{"axis", int64_t{2}}}), {x}, false, 11);
    REQUIRE(axis2.has_value());
    CHECK(relative_error((*axis2)[0], naive_softmax(x, 6, 20, 1, log)) < 1e-5);
    auto axis_neg = run_op(make_node(op, 1, 1, {{"axis", int64_t{-3}}}), {x}, false, 9);
    REQUIRE(axis_neg.has_value());
    CHECK(relative_error((*axis_neg)[0], naive_softmax(x, 2, 60, 1, log)) < 1e-5);
  }
}

TEST_CASE("Softmax rejects an out-of-range axis and a scalar input") {
  tensor x = tensor::zeros(dtype::f32, {2, 3, 4});
  auto bad = run_op(make_node("Softmax", 1, 1, {{"axis", int64_t{3}}}), {x}, false, 13);
  REQUIRE(!bad);
  CHECK(bad.error().code() == errc::invalid_argument);
  auto bad_neg = run_op(make_node("LogSoftmax", 1, 1, {{"axis", int64_t{-4}}}), {x}, false, 11);
  REQUIRE(!bad_neg);
  CHECK(bad_neg.error().code() == errc::invalid_argument);
  auto scalar = run_op(make_node("Softmax", 1, 1), {tensor::scalar(1.f)});
  REQUIRE(!scalar);
  CHECK(scalar.error().code() == errc::invalid_argument);
  auto ints = run_op(make_node("Softmax", 1, 1), {tensor::zeros(dtype::i64, {2, 2})});
  REQUIRE(!ints);
  CHECK(ints.error().code() == errc::unsupported);
}

TEST_CASE("LayerNormalization normalizes over the last one or two dims with scale and bias") {
  rng r;
  INFO("seed " << r.seed);
  const shape dims{2, 7, 24};
  for (int64_t axis : {-1, 2, -2, 1}) {
    const size_t a = static_cast<size_t>(axis < 0 ? axis + 3 : axis);
    const shape normalized(dims.begin() + static_cast<std::ptrdiff_t>(a), dims.end());
    for (bool constant : {false, true}) {
      INFO("axis " << axis << " constant " << constant);
      tensor x = r.uniform(dims, -3.f, 5.f), scale = r.uniform(normalized), bias = r.uniform(normalized);
      node ln = make_node("LayerNormalization", 3, 1, {{"axis", axis}, {"epsilon", 1e-3f}});
      auto out = run_op(ln, {x, scale, bias}, constant);
      REQUIRE_MESSAGE(out.has_value(), out.error().to_string());
      CHECK(relative_error((*out)[0], naive_layer_norm(x, a, scale, bias, 1e-3f)) < 1e-5);
    }
  }
}

TEST_CASE("LayerNormalization broadcasts a smaller Scale and works without B") {
  rng r;
  INFO("seed " << r.seed);
  tensor x = r.uniform({3, 5, 16});
  tensor scale = r.uniform({16}); // broadcast over the 5 x 16 normalized block
  for (bool constant : {false, true}) {
    auto out = run_op(make_node("LayerNormalization", 2, 1, {{"axis", int64_t{1}}}), {x, scale},
                      constant);
    REQUIRE_MESSAGE(out.has_value(), out.error().to_string());
    CHECK(relative_error((*out)[0], naive_layer_norm(x, 1, scale, {}, 1e-5f)) < 1e-5);
  }
  auto absent_bias = run_op(make_node("LayerNormalization", 3, 1), {x, scale, tensor{}}, false);
  REQUIRE(absent_bias.has_value());
  CHECK(relative_error((*absent_bias)[0], naive_layer_norm(x, 2, scale, {}, 1e-5f)) < 1e-5);
}

TEST_CASE("LayerNormalization returns Mean and InvStdDev when asked") {
  rng r;
  INFO("seed " << r.seed);
  tensor x = r.uniform({4, 3, 10}), scale = r.uniform({3, 10}), bias = r.uniform({3, 10});
  auto out = run_op(make_node("LayerNormalization", 3, 3, {{"axis", int64_t{1}}}),
                    {x, scale, bias});
  REQUIRE_MESSAGE(out.has_value(), out.error().to_string());
  REQUIRE(out->size() == 3);
  CHECK((*out)[1].dims() == shape{4, 1, 1});
  CHECK((*out)[2].dims() == shape{4, 1, 1});
  tensor mean = tensor::empty(dtype::f32, {4, 1, 1}), inv = tensor::empty(dtype::f32, {4, 1, 1});
  tensor ref = naive_layer_norm(x, 1, scale, bias, 1e-5f, &mean, &inv);
  CHECK(relative_error((*out)[0], ref) < 1e-5);
  CHECK(relative_error((*out)[1], mean) < 1e-5);
  CHECK(relative_error((*out)[2], inv) < 1e-4);
}

TEST_CASE("LayerNormalization rejects a bad axis and a Scale that does not broadcast") {
  tensor x = tensor::zeros(dtype::f32, {2, 3, 4});
  auto bad_axis = run_op(make_node("LayerNormalization", 2, 1, {{"axis", int64_t{3}}}),
                         {x, tensor::zeros(dtype::f32, {4})});
  REQUIRE(!bad_axis);
  CHECK(bad_axis.error().code() == errc::invalid_argument);
  auto bad_scale = run_op(make_node("LayerNormalization", 2, 1),
                          {x, tensor::zeros(dtype::f32, {3})});
  REQUIRE(!bad_scale);
  CHECK(bad_scale.error().code() == errc::invalid_argument);
  auto too_big = run_op(make_node("LayerNormalization", 2, 1),
                        {x, tensor::zeros(dtype::f32, {3, 4})});
  REQUIRE(!too_big);
  CHECK(too_big.error().code() == errc::invalid_argument);
}

TEST_CASE("Reduce ops over several axes match naive loops with keepdims 0 and 1") {
  rng r;
  INFO("seed " << r.seed);
  const shape dims{3, 4, 5, 6};
  const std::vector<std::vector<int64_t>> axes_cases = {
      {3}, {0}, {1}, {0, 2}, {1, 3}, {-1, -2}, {0, 1, 2, 3}, {}, {0, 3}, {2, 0}};
  for (const char* op : {"ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd",
                         "ReduceSumSquare", "ReduceL1", "ReduceL2", "ReduceLogSum",
                         "ReduceLogSumExp"}) {
    const bool positive = std::string{op} == "ReduceLogSum" || std::string{op} == "ReduceProd";
    for (const auto& axes : axes_cases) {
      for (int64_t keepdims : {0, 1}) {
        const std::string name = op;
        INFO(name << " axes " << to_string(axes) << " keepdims " << keepdims);
        tensor x = positive ? r.uniform(dims, 0.5f, 1.5f) : r.uniform(dims);
        std::map<std::string, attribute> attrs{{"keepdims", keepdims}};
        if (!axes.empty())
          attrs["axes"] = axes;
        auto out = run_op(make_node(op, 1, 1, attrs), {x}, false, 11);
        REQUIRE_MESSAGE(out.has_value(), out.error().to_string());
        tensor ref = naive_reduce(op, x, axes, keepdims != 0);
        REQUIRE((*out)[0].dims() == ref.dims());
        // A float32 sum over all 360 signed values can nearly cancel, which magnifies the
        // rounding of the accumulation order in the relative error (1.3e-5 was seen).
        CHECK(relative_error((*out)[0], ref) < 1e-4);
      }
    }
  }
}

TEST_CASE("Reduce ops take axes as an input from opset 13 (ReduceSum) and 18 (others)") {
  rng r;
  INFO("seed " << r.seed);
  tensor x = r.uniform({4, 6, 8});
  auto sum = run_op(make_node("ReduceSum", 2, 1, {{"keepdims", int64_t{0}}}),
                    {x, axes_tensor({0, 2})}, true, 13);
  REQUIRE_MESSAGE(sum.has_value(), sum.error().to_string());
  CHECK(relative_error((*sum)[0], naive_reduce("ReduceSum", x, {0, 2}, false)) < 1e-5);
  auto mean = run_op(make_node("ReduceMean", 2, 1), {x, axes_tensor({-1})}, true, 18);
  REQUIRE(mean.has_value());
  CHECK(relative_error((*mean)[0], naive_reduce("ReduceMean", x, {-1}, true)) < 1e-5);
  // Empty axes reduce everything unless noop_with_empty_axes is set.
  auto all = run_op(make_node("ReduceSum", 2, 1), {x, axes_tensor({})}, true, 13);
  REQUIRE(all.has_value());
  CHECK((*all)[0].dims() == shape{1, 1, 1});
  CHECK(relative_error((*all)[0], naive_reduce("ReduceSum", x, {}, true)) < 1e-5);
  auto noop = run_op(make_node("ReduceSum", 2, 1, {{"noop_with_empty_axes", int64_t{1}}}),
                     {x, axes_tensor({})}, true, 13);
  REQUIRE(noop.has_value());
  CHECK(bitwise_equal((*noop)[0], x));
  auto absent = run_op(make_node("ReduceMax", 1, 1, {{"noop_with_empty_axes", int64_t{1}}}),
                       {x}, true, 18);
  REQUIRE(absent.has_value());
  CHECK(bitwise_equal((*absent)[0], x));
}

TEST_CASE("ReduceSum and ReduceMax work on int64") {
  tensor x = tensor::from_vector<int64_t>({2, 3}, std::vector<int64_t>{1, -7, 3, 4, 5, 6});
  auto sum = run_op(make_node("ReduceSum", 1, 1, {{"axes", std::vector<int64_t>{1}}}), {x},
                    true, 11);
  REQUIRE(sum.has_value());
  CHECK((*sum)[0].dims() == shape{2, 1});
  CHECK((*sum)[0].data<int64_t>()[0] == -3);
  CHECK((*sum)[0].data<int64_t>()[1] == 15);
  auto max = run_op(make_node("ReduceMax", 1, 1, {{"keepdims", int64_t{0}}}), {x}, true, 11);
  REQUIRE(max.has_value());
  CHECK((*max)[0].dims() == shape{});
  CHECK((*max)[0].data<int64_t>()[0] == 6);
  auto l2 = run_op(make_node("ReduceL2", 1, 1), {x}, true, 11);
  REQUIRE(!l2);
  CHECK(l2.error().code() == errc::unsupported);
}

TEST_CASE("ReduceMax and ReduceMin propagate NaN like numpy") {
  std::vector<float> v(40, 1.f);
  v[13] = std::nanf("");
  tensor x = tensor::from_vector<float>({2, 20}, v);
  for (const char* op : {"ReduceMax", "ReduceMin"}) {
    auto out = run_op(make_node(op, 1, 1, {{"axes", std::vector<int64_t>{1}}}), {x}, true, 11);
    REQUIRE(out.has_value());
    CHECK(std::isnan((*out)[0].data<float>()[0]));
    CHECK((*out)[0].data<float>()[1] == 1.f);
  }
}

TEST_CASE("Reduce over an empty dim yields the identity of the reduction") {
  tensor x = tensor::empty(dtype::f32, {2, 0, 3});
  auto sum = run_op(make_node("ReduceSum", 1, 1, {{"axes", std::vector<int64_t>{1}}}), {x},
                    true, 11);
  REQUIRE(sum.has_value());
  CHECK((*sum)[0].dims() == shape{2, 1, 3});
  for (float v : (*sum)[0].values<float>())
    CHECK(v == 0.f);
  auto prod = run_op(make_node("ReduceProd", 1, 1, {{"axes", std::vector<int64_t>{1}}}), {x},
                     true, 11);
  REQUIRE(prod.has_value());
  for (float v : (*prod)[0].values<float>())
    CHECK(v == 1.f);
}

TEST_CASE("Reduce rejects out-of-range and repeated axes, and non-constant axes inputs") {
  tensor x = tensor::zeros(dtype::f32, {2, 3});
  auto range = run_op(make_node("ReduceMean", 1, 1, {{"axes", std::vector<int64_t>{2}}}), {x},
                      true, 11);
  REQUIRE(!range);
  CHECK(range.error().code() == errc::invalid_argument);
  auto twice = run_op(make_node("ReduceMax", 1, 1, {{"axes", std::vector<int64_t>{1, -1}}}),
                      {x}, true, 11);
  REQUIRE(!twice);
  CHECK(twice.error().code() == errc::invalid_argument);
  auto dynamic = run_op(make_node("ReduceSum", 2, 1), {x, axes_tensor({0})}, false, 13);
  REQUIRE(!dynamic);
  CHECK(dynamic.error().code() == errc::unsupported);
  auto float_axes = run_op(make_node("ReduceSum", 2, 1), {x, tensor::zeros(dtype::f32, {1})},
                           true, 13);
  REQUIRE(!float_axes);
  CHECK(float_axes.error().code() == errc::invalid_argument);
}
