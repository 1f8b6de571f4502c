// Tests for the elementwise operators: unary math, broadcasting binary ops, Where and Cast.
#include <doctest/doctest.h>

#include <bit>
#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "kernels/cpu/cast.hpp"
#include "tests/op_harness.hpp"

using namespace troupe;
using troupe::testing::make_node;
using troupe::testing::run_op;

namespace {

constexpr float inf = std::numeric_limits<float>::infinity();
constexpr float nan_f = std::numeric_limits<float>::quiet_NaN();

struct random_source {
  unsigned seed = std::random_device{}();
  std::mt19937 gen{seed};

  tensor floats(shape dims, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    tensor t = tensor::empty(dtype::f32, std::move(dims));
    for (float& v : t.values<float>())
      v = dist(gen);
    return t;
  }
  tensor ints(shape dims, int64_t lo, int64_t hi) {
    std::uniform_int_distribution<int64_t> dist(lo, hi);
    tensor t = tensor::empty(dtype::i64, std::move(dims));
    for (int64_t& v : t.values<int64_t>())
      v = dist(gen);
    return t;
  }
};

/// Element of `t` (dims `in`) that output multi-index `idx` reads under numpy broadcasting.
int64_t source_offset(const shape& in, const shape& out, const std::vector<int64_t>& idx) {
  int64_t off = 0;
  const size_t lead = out.size() - in.size();
  for (size_t d = 0; d < in.size(); ++d)
    off = off * in[d] + (in[d] == 1 ? 0 : idx[d + lead]);
  return off;
}

/// Naive broadcasting reference: calls f(out_offset, offset in each input) for every element.
void for_each_broadcast(const shape& out, const std::vector<shape>& ins,
                        const std::function<void(int64_t, const std::vector<int64_t>&)>& f) {
  const int64_t total = numel_of(out);
  std::vector<int64_t> idx(out.size(), 0);
  for (int64_t o = 0; o < total; ++o) {
    int64_t rest = o;
    for (size_t d = out.size(); d-- > 0;) {
      idx[d] = rest % out[d];
      rest /= out[d];
    }
    std::vector<int64_t> offs;
    for (const auto& in : ins)
      offs.push_back(source_offset(in, out, idx));
    f(o, offs);
  }
}

bool close(float got, double want, double rtol, double atol) {
  if (std::isnan(want))
    return std::isnan(got);
  if (std::isinf(want))
    return got == want;
  return std::fabs(got - want) <= atol + rtol * std::fabs(want);
}

tensor run1(const node& n, const std::vector<tensor>& inputs, bool constant = true,
            int64_t opset = 17) {
  auto out = run_op(n, inputs, constant, opset);
  REQUIRE_MESSAGE(out.has_value(), (out.has_value() ? "" : out.error().to_string()));
  return (*out)[0];
}

errc error_of(const node& n, const std::vector<tensor>& inputs, int64_t opset = 17) {
  auto out = run_op(n, inputs, true, opset);
  if (out.has_value())
    return errc::ok;
  CHECK(out.error().message().find(n.label()) != std::string::npos);
  return out.error().code();
}

/// A copy of a tensor's values (safe on temporaries, unlike tensor::values).
template <class T>
std::vector<T> as_vec(const tensor& t) {
  auto v = t.values<T>();
  return {v.begin(), v.end()};
}

template <class T>
tensor vec(shape dims, std::vector<T> values) {
  return tensor::from_vector<T>(std::move(dims), std::span<const T>(values));
}

tensor bools(shape dims, std::vector<uint8_t> values) {
  tensor t = tensor::empty(dtype::boolean, std::move(dims));
  std::copy(values.begin(), values.end(), t.data<uint8_t>());
  return t;
}

} // namespace

TEST_CASE("unary float ops match double-precision references on random inputs") {
  random_source rnd;
  CAPTURE(rnd.seed);
  struct unary_case {
    const char* op;
    float lo, hi;
    std::function<double(double)> ref;
    std::map<std::string, attribute> attrs = {};
  };
  const double selu_a = 1.67326319217681884765625, selu_g = 1.05070102214813232421875;
  const std::vector<unary_case> cases = {
      {"Relu", -5, 5, [](double x) { return x < 0 ? 0 : x; }},
      {"LeakyRelu", -5, 5, [](double x) { return x < 0 ? 0.01 * x : x; }},
      {"LeakyRelu", -5, 5, [](double x) { return x < 0 ? 0.2 * x : x; }, {{"alpha", 0.2f}}},
      {"Sigmoid", -30, 30, [](double x) { return 1 / (1 + std::exp(-x)); }},
      {"Tanh", -12, 12, [](double x) { return std::tanh(x); }},
      {"Tanh", -0.7f, 0.7f, [](double x) { return std::tanh(x); }},
      {"Sqrt", 0, 100, [](double x) { return std::sqrt(x); }},
      {"Erf", -5, 5, [](double x) { return std::erf(x); }},
      {"Erf", -0.6f, 0.6f, [](double x) { return std::erf(x); }},
      {"Exp", -80, 80, [](double x) { return std::exp(x); }},
      {"Exp", -1, 1, [](double x) { return std::exp(x); }},
      {"Log", 1e-30f, 1e30f, [](double x) { return std::log(x); }},
      {"Log", 0.5f, 2, [](double x) { return std::log(x); }},
      {"Neg", -5, 5, [](double x) { return -x; }},
      {"Abs", -5, 5, [](double x) { return std::fabs(x); }},
      {"Reciprocal", 0.1f, 10, [](double x) { return 1 / x; }},
      {"Floor", -50, 50, [](double x) { return std::floor(x); }},
      {"Ceil", -50, 50, [](double x) { return std::ceil(x); }},
      {"Sign", -5, 5, [](double x) { return x > 0 ? 1.0 : (x < 0 ? -1.0 : 0.0); }},
      {"HardSigmoid", -6, 6, [](double x) { return std::clamp(0.2 * x + 0.5, 0.0, 1.0); }},
      {"HardSigmoid", -6, 6, [](double x) { return std::clamp(0.5 * x + 0.1, 0.0, 1.0); },
       {{"alpha", 0.5f}, {"beta", 0.1f}}},
      {"HardSwish", -6, 6, [](double x) { return x * std::clamp(x / 6 + 0.5, 0.0, 1.0); }},
      {"Softplus", -40, 40, [](double x) { return std::log1p(std::exp(x)); }},
      {"Softsign", -5, 5, [](double x) { return x / (1 + std::fabs(x)); }},
      {"Elu", -5, 5, [](double x) { return x < 0 ? std::expm1(x) : x; }},
      {"Elu", -0.3f, 0.3f, [](double x) { return x < 0 ? 0.5 * std::expm1(x) : x; },
       {{"alpha", 0.5f}}},
      {"Selu", -5, 5,
       [&](double x) { return selu_g * (x <= 0 ? selu_a * std::expm1(x) : x); }},
      {"Celu", -5, 5, [](double x) { return x < 0 ? 2 * std::expm1(x / 2) : x; },
       {{"alpha", 2.0f}}},
      {"ThresholdedRelu", -5, 5, [](double x) { return x > 1 ? x : 0; }},
  };
  for (const auto& c : cases) {
    CAPTURE(c.op);
    // An odd size above the threading grain also exercises vector tails and thread splits.
    for (int64_t size : {int64_t{37}, int64_t{100003}}) {
      tensor x = rnd.floats({size}, c.lo, c.hi);
      tensor y = run1(make_node(c.op, 1, 1, c.attrs), {x});
      REQUIRE(y.type() == dtype::f32);
      REQUIRE(y.dims() == x.dims());
      int bad = 0;
      for (int64_t i = 0; i < size; ++i) {
        const float xi = x.data<float>()[i];
        const double want = c.ref(static_cast<double>(xi));
        if (!close(y.data<float>()[i], want, 1e-6, 1e-7) && bad++ < 3)
          FAIL_CHECK(c.op << "(" << xi << ") = " << y.data<float>()[i] << ", want " << want);
      }
    }
  }
}

TEST_CASE("Erf is accurate to 1e-6 relative, also for tiny arguments") {
  random_source rnd;
  CAPTURE(rnd.seed);
  std::vector<float> xs;
  for (float e = -30; e <= 1; e += 0.01f)
    xs.push_back(std::pow(10.0f, e));
  tensor x = vec<float>({static_cast<int64_t>(xs.size())}, xs);
  tensor y = run1(make_node("Erf", 1, 1), {x});
  for (size_t i = 0; i < xs.size(); ++i)
    REQUIRE_MESSAGE(close(y.data<float>()[i], std::erf(double{xs[i]}), 1e-6, 0),
                    "erf(" << xs[i] << ")");
}

TEST_CASE("unary ops handle infinities, NaN, zero and subnormals") {
  tensor special = vec<float>({5}, {-inf, inf, nan_f, 0.0f, 1e-40f});
  auto at = [&](const char* op) { return as_vec<float>(run1(make_node(op, 1, 1), {special})); };
  auto exp = at("Exp");
  CHECK(exp[0] == 0.0f);
  CHECK(exp[1] == inf);
  CHECK(std::isnan(exp[2]));
  CHECK(exp[3] == 1.0f);
  auto log = at("Log");
  CHECK(std::isnan(log[0]));
  CHECK(log[1] == inf);
  CHECK(std::isnan(log[2]));
  CHECK(log[3] == -inf);
  CHECK(log[4] == doctest::Approx(std::log(1e-40)).epsilon(1e-6));
  auto tanh = at("Tanh");
  CHECK(tanh[0] == -1.0f);
  CHECK(tanh[1] == 1.0f);
  CHECK(std::isnan(tanh[2]));
  auto sig = at("Sigmoid");
  CHECK(sig[0] == 0.0f);
  CHECK(sig[1] == 1.0f);
  CHECK(sig[3] == 0.5f);
  auto erf = at("Erf");
  CHECK(erf[0] == -1.0f);
  CHECK(erf[1] == 1.0f);
  CHECK(std::isnan(erf[2]));
  CHECK(std::isnan(at("Relu")[2]));
  auto sp = at("Softplus");
  CHECK(sp[0] == 0.0f);
  CHECK(sp[1] == inf);
}

TEST_CASE("Relu, Neg, Abs and Sign work on integer tensors") {
  tensor x = vec<int64_t>({4}, {-3, 0, 5, std::numeric_limits<int64_t>::min()});
  CHECK(as_vec<int64_t>(run1(make_node("Relu", 1, 1), {x}))[0] == 0);
  CHECK(as_vec<int64_t>(run1(make_node("Relu", 1, 1), {x}))[2] == 5);
  auto neg = as_vec<int64_t>(run1(make_node("Neg", 1, 1), {x}));
  CHECK(neg[0] == 3);
  CHECK(neg[3] == std::numeric_limits<int64_t>::min()); // wraps, as in two's complement
  CHECK(as_vec<int64_t>(run1(make_node("Abs", 1, 1), {x}))[0] == 3);
  tensor x8 = vec<int8_t>({3}, {-7, 0, 9});
  auto sign = as_vec<int8_t>(run1(make_node("Sign", 1, 1), {x8}));
  CHECK(sign[0] == -1);
  CHECK(sign[1] == 0);
  CHECK(sign[2] == 1);
  CHECK(error_of(make_node("Sigmoid", 1, 1), {x}) == errc::unsupported);
}

TEST_CASE("Clip takes bounds from attributes before opset 11 and from optional inputs after") {
  random_source rnd;
  CAPTURE(rnd.seed);
  tensor x = rnd.floats({3, 50}, -10, 10);
  auto check = [&](const tensor& y, float lo, float hi) {
    for (int64_t i = 0; i < x.numel(); ++i)
      REQUIRE(y.data<float>()[i] == std::clamp(x.data<float>()[i], lo, hi));
  };
  check(run1(make_node("Clip", 1, 1, {{"min", -1.0f}, {"max", 2.0f}}), {x}, true, 6), -1, 2);
  check(run1(make_node("Clip", 1, 1, {{"max", 2.0f}}), {x}, true, 6), -inf, 2);
  // Opset 11+: min absent (empty input name), max given.
  node n = make_node("Clip", 3, 1);
  n.inputs[1] = "";
  check(run1(n, {x, tensor{}, tensor::scalar(3.0f)}), -inf, 3);
  check(run1(make_node("Clip", 2, 1), {x, tensor::scalar(-0.5f)}), -0.5f, inf);
  check(run1(make_node("Clip", 1, 1), {x}), -inf, inf);
  // Bounds not known at build time are read when running.
  check(run1(make_node("Clip", 3, 1), {x, tensor::scalar(0.0f), tensor::scalar(6.0f)}, false), 0,
        6);
  tensor xi = vec<int8_t>({4}, {-128, -3, 5, 127});
  auto yi = as_vec<int8_t>(run1(make_node("Clip", 3, 1), {xi, tensor::scalar<int8_t>(-4), tensor::scalar<int8_t>(4)}));
  CHECK(std::vector<int8_t>(yi.begin(), yi.end()) == std::vector<int8_t>{-4, -3, 4, 4});
  tensor nan_in = vec<float>({1}, {nan_f});
  CHECK(std::isnan(as_vec<float>(run1(make_node("Clip", 3, 1), {nan_in, tensor::scalar(0.0f),
                                                  tensor::scalar(1.0f)}))[0]));
  CHECK(error_of(make_node("Clip", 3, 1), {x, tensor::scalar(0.0), tensor::scalar(1.0)}) ==
        errc::invalid_argument);
}

TEST_CASE("binary float ops broadcast like numpy") {
  random_source rnd;
  CAPTURE(rnd.seed);
  const std::vector<std::pair<shape, shape>> shapes = {
      {{2, 3, 4}, {4}},       {{2, 1, 4}, {3, 1}},     {{2, 3, 4}, {}},
      {{}, {5, 2}},           {{4, 1}, {3}},           {{7, 5}, {7, 5}},
      {{2, 3, 1, 5}, {3, 4, 1}}, {{64, 3, 32, 33}, {3, 1, 33}}, {{1}, {1}},
      {{100001}, {1}},        {{2, 0, 3}, {3}},
  };
  const std::vector<std::pair<const char*, std::function<float(float, float)>>> ops = {
      {"Add", [](float a, float b) { return a + b; }},
      {"Sub", [](float a, float b) { return a - b; }},
      {"Mul", [](float a, float b) { return a * b; }},
      {"Div", [](float a, float b) { return a / b; }},
      {"Max", [](float a, float b) { return std::max(a, b); }},
      {"Min", [](float a, float b) { return std::min(a, b); }},
      {"Pow", [](float a, float b) { return std::pow(a, b); }},
  };
  for (const auto& [sa, sb] : shapes) {
    tensor a = rnd.floats(sa, 0.5f, 4);
    tensor b = rnd.floats(sb, -2, 2);
    auto out_dims = *broadcast_shapes(sa, sb);
    for (const auto& [op, f] : ops) {
      CAPTURE(op);
      CAPTURE(to_string(sa));
      CAPTURE(to_string(sb));
      tensor y = run1(make_node(op, 2, 1), {a, b}, false);
      REQUIRE(y.dims() == out_dims);
      int bad = 0;
      for_each_broadcast(out_dims, {sa, sb}, [&](int64_t o, const std::vector<int64_t>& offs) {
        float want = f(a.data<float>()[offs[0]], b.data<float>()[offs[1]]);
        if (!close(y.data<float>()[o], want, 1e-6, 0) && bad++ < 3)
          FAIL_CHECK("element " << o << ": " << y.data<float>()[o] << " want " << want);
      });
    }
  }
}

TEST_CASE("Max and Min propagate NaN") {
  tensor a = vec<float>({3}, {nan_f, 1.0f, 2.0f});
  tensor b = vec<float>({3}, {0.0f, nan_f, 3.0f});
  auto mx = as_vec<float>(run1(make_node("Max", 2, 1), {a, b}));
  CHECK(std::isnan(mx[0]));
  CHECK(std::isnan(mx[1]));
  CHECK(mx[2] == 3.0f);
  auto mn = as_vec<float>(run1(make_node("Min", 2, 1), {a, b}));
  CHECK(std::isnan(mn[0]));
  CHECK(mn[2] == 2.0f);
}

TEST_CASE("int64 arithmetic wraps, divides toward zero and rejects division by zero") {
  random_source rnd;
  CAPTURE(rnd.seed);
  tensor a = rnd.ints({5, 6}, -1000, 1000);
  tensor b = rnd.ints({6}, 1, 50);
  for (int64_t& v : b.values<int64_t>())
    v = (v % 2) ? v : -v; // both signs of divisor
  auto check = [&](const char* op, const std::function<int64_t(int64_t, int64_t)>& f) {
    CAPTURE(op);
    tensor y = run1(make_node(op, 2, 1), {a, b});
    REQUIRE(y.type() == dtype::i64);
    for_each_broadcast({5, 6}, {{5, 6}, {6}}, [&](int64_t o, const std::vector<int64_t>& offs) {
      REQUIRE(y.data<int64_t>()[o] == f(a.data<int64_t>()[offs[0]], b.data<int64_t>()[offs[1]]));
    });
  };
  check("Add", [](int64_t x, int64_t y) { return x + y; });
  check("Sub", [](int64_t x, int64_t y) { return x - y; });
  check("Mul", [](int64_t x, int64_t y) { return x * y; });
  check("Div", [](int64_t x, int64_t y) { return x / y; }); // C++ truncates, as ONNX Runtime
  check("Max", [](int64_t x, int64_t y) { return std::max(x, y); });
  CHECK(as_vec<int64_t>(run1(make_node("Div", 2, 1), {vec<int64_t>({2}, {-7, 7}), tensor::scalar<int64_t>(2)}))[0] == -3);
  const int64_t min64 = std::numeric_limits<int64_t>::min();
  CHECK(as_vec<int64_t>(run1(make_node("Div", 2, 1), {tensor::scalar(min64), tensor::scalar<int64_t>(-1)}))[0] == min64);
  CHECK(as_vec<int64_t>(run1(make_node("Add", 2, 1), {tensor::scalar(std::numeric_limits<int64_t>::max()),
                                      tensor::scalar<int64_t>(1)}))[0] == min64);
  CHECK(error_of(make_node("Div", 2, 1), {vec<int64_t>({2}, {1, 2}), vec<int64_t>({2}, {1, 0})}) ==
        errc::invalid_argument);
  tensor i32 = vec<int32_t>({3}, {-7, 8, 9});
  auto q = as_vec<int32_t>(run1(make_node("Div", 2, 1), {i32, tensor::scalar<int32_t>(2)}));
  CHECK(q[0] == -3);
  CHECK(q[1] == 4);
}

TEST_CASE("Mod follows the divisor's sign unless fmod=1") {
  tensor a = vec<int32_t>({4}, {-7, 7, -7, 7});
  tensor b = vec<int32_t>({4}, {3, -3, -3, 3});
  auto m = as_vec<int32_t>(run1(make_node("Mod", 2, 1), {a, b}));
  CHECK(std::vector<int32_t>(m.begin(), m.end()) == std::vector<int32_t>{2, -2, -1, 1});
  auto f = as_vec<int32_t>(run1(make_node("Mod", 2, 1, {{"fmod", int64_t{1}}}), {a, b}));
  CHECK(std::vector<int32_t>(f.begin(), f.end()) == std::vector<int32_t>{-1, 1, -1, 1});
  tensor af = vec<float>({2}, {-7.5f, 7.5f});
  auto ff = as_vec<float>(run1(make_node("Mod", 2, 1, {{"fmod", int64_t{1}}}), {af, tensor::scalar(2.0f)}));
  CHECK(ff[0] == -1.5f);
  CHECK(ff[1] == 1.5f);
  CHECK(error_of(make_node("Mod", 2, 1), {af, tensor::scalar(2.0f)}) == errc::invalid_argument);
}

TEST_CASE("comparisons produce bool and Equal also compares bools") {
  random_source rnd;
  CAPTURE(rnd.seed);
  tensor a = rnd.ints({4, 5}, -3, 3);
  tensor b = rnd.ints({5}, -3, 3);
  const std::vector<std::pair<const char*, std::function<bool(int64_t, int64_t)>>> ops = {
      {"Equal", std::equal_to<>{}},        {"Less", std::less<>{}},
      {"Greater", std::greater<>{}},       {"LessOrEqual", std::less_equal<>{}},
      {"GreaterOrEqual", std::greater_equal<>{}},
  };
  for (const auto& [op, f] : ops) {
    CAPTURE(op);
    tensor y = run1(make_node(op, 2, 1), {a, b});
    REQUIRE(y.type() == dtype::boolean);
    for_each_broadcast({4, 5}, {{4, 5}, {5}}, [&](int64_t o, const std::vector<int64_t>& offs) {
      REQUIRE(y.data<uint8_t>()[o] ==
              f(a.data<int64_t>()[offs[0]], b.data<int64_t>()[offs[1]]));
    });
  }
  tensor fa = vec<float>({3}, {1.0f, nan_f, 2.0f});
  auto lt = as_vec<uint8_t>(run1(make_node("Less", 2, 1), {fa, tensor::scalar(1.5f)}));
  CHECK(std::vector<uint8_t>(lt.begin(), lt.end()) == std::vector<uint8_t>{1, 0, 0});
  tensor ba = bools({4}, {0, 0, 1, 1}), bb = bools({4}, {0, 1, 0, 1});
  auto eq = as_vec<uint8_t>(run1(make_node("Equal", 2, 1), {ba, bb}));
  CHECK(std::vector<uint8_t>(eq.begin(), eq.end()) == std::vector<uint8_t>{1, 0, 0, 1});
}

TEST_CASE("And, Or, Xor and Not implement boolean logic with broadcasting") {
  tensor a = bools({2, 2}, {0, 0, 1, 1}), b = bools({2}, {0, 1});
  auto get = [&](const char* op) {
    auto v = as_vec<uint8_t>(run1(make_node(op, 2, 1), {a, b}));
    return std::vector<uint8_t>(v.begin(), v.end());
  };
  CHECK(get("And") == std::vector<uint8_t>{0, 0, 0, 1});
  CHECK(get("Or") == std::vector<uint8_t>{0, 1, 1, 1});
  CHECK(get("Xor") == std::vector<uint8_t>{0, 1, 1, 0});
  auto n = as_vec<uint8_t>(run1(make_node("Not", 1, 1), {a}));
  CHECK(std::vector<uint8_t>(n.begin(), n.end()) == std::vector<uint8_t>{1, 1, 0, 0});
  CHECK(error_of(make_node("And", 2, 1), {vec<float>({1}, {1}), vec<float>({1}, {1})}) ==
        errc::unsupported);
  CHECK(error_of(make_node("Not", 1, 1), {vec<float>({1}, {1})}) == errc::invalid_argument);
}

TEST_CASE("Pow handles float and integer exponents and constant-exponent fast paths") {
  random_source rnd;
  CAPTURE(rnd.seed);
  tensor x = rnd.floats({3, 7}, 0.1f, 3);
  for (float e : {2.0f, 0.5f, 3.0f, -1.0f, 1.0f, 1.7f}) {
    CAPTURE(e);
    tensor y = run1(make_node("Pow", 2, 1), {x, tensor::scalar(e)});
    for (int64_t i = 0; i < x.numel(); ++i)
      REQUIRE(close(y.data<float>()[i], std::pow(double{x.data<float>()[i]}, double{e}), 1e-6, 0));
  }
  tensor y = run1(make_node("Pow", 2, 1), {x, vec<int64_t>({7}, {0, 1, 2, 3, -1, -2, 4})}, false);
  REQUIRE(y.type() == dtype::f32);
  for (int64_t i = 0; i < x.numel(); ++i) {
    const int64_t e = std::vector<int64_t>{0, 1, 2, 3, -1, -2, 4}[static_cast<size_t>(i % 7)];
    REQUIRE(close(y.data<float>()[i], std::pow(double{x.data<float>()[i]}, double(e)), 1e-6, 0));
  }
  auto ip = as_vec<int64_t>(run1(make_node("Pow", 2, 1), {vec<int64_t>({3}, {2, -3, 5}), vec<int64_t>({3}, {10, 3, 0})}));
  CHECK(std::vector<int64_t>(ip.begin(), ip.end()) == std::vector<int64_t>{1024, -27, 1});
  auto mixed = as_vec<int32_t>(run1(make_node("Pow", 2, 1), {vec<int32_t>({2}, {2, 3}), vec<float>({2}, {2.0f, 0.5f})}));
  CHECK(mixed[0] == 4);
  CHECK(mixed[1] == 1); // 3^0.5 = 1.73 truncates
}

TEST_CASE("Max, Min, Sum and Mean fold any number of broadcasting inputs") {
  random_source rnd;
  CAPTURE(rnd.seed);
  tensor a = rnd.floats({2, 1, 4}, -5, 5), b = rnd.floats({3, 1}, -5, 5),
         c = rnd.floats({4}, -5, 5);
  const shape out{2, 3, 4};
  auto check = [&](const char* op, const std::function<float(float, float, float)>& f) {
    CAPTURE(op);
    tensor y = run1(make_node(op, 3, 1), {a, b, c});
    REQUIRE(y.dims() == out);
    for_each_broadcast(out, {a.dims(), b.dims(), c.dims()},
                       [&](int64_t o, const std::vector<int64_t>& offs) {
                         float want = f(a.data<float>()[offs[0]], b.data<float>()[offs[1]],
                                        c.data<float>()[offs[2]]);
                         REQUIRE(close(y.data<float>()[o], want, 1e-6, 1e-6));
                       });
  };
  check("Max", [](float x, float y, float z) { return std::max({x, y, z}); });
  check("Min", [](float x, float y, float z) { return std::min({x, y, z}); });
  check("Sum", [](float x, float y, float z) { return x + y + z; });
  check("Mean", [](float x, float y, float z) { return (x + y + z) / 3; });
  tensor one = run1(make_node("Max", 1, 1), {a});
  CHECK(bitwise_equal(one, a));
  auto isum = as_vec<int32_t>(run1(make_node("Sum", 2, 1), {vec<int32_t>({2}, {1, 2}), tensor::scalar<int32_t>(10)}));
  CHECK(isum[1] == 12);
}

TEST_CASE("float16 binary and variadic ops compute in float32 and round back") {
  auto halves = [](std::vector<float> v) {
    tensor t = tensor::empty(dtype::f16, {static_cast<int64_t>(v.size())});
    for (size_t i = 0; i < v.size(); ++i)
      t.data<uint16_t>()[i] = cpu::float_to_half(v[i]);
    return t;
  };
  auto floats_of = [](const tensor& t) {
    REQUIRE(t.type() == dtype::f16);
    std::vector<float> v;
    for (int64_t i = 0; i < t.numel(); ++i)
      v.push_back(cpu::half_to_float(t.data<uint16_t>()[i]));
    return v;
  };
  tensor a = halves({1.5f, -2.0f, 1000.0f}), b = halves({0.25f, 3.0f, 0.5f});
  CHECK(floats_of(run1(make_node("Add", 2, 1), {a, b})) == std::vector<float>{1.75f, 1.0f, 1000.5f});
  CHECK(floats_of(run1(make_node("Max", 3, 1), {a, b, halves({2.0f})})) ==
        std::vector<float>{2.0f, 3.0f, 1000.0f});
  CHECK(floats_of(run1(make_node("Mean", 2, 1), {a, b})) ==
        std::vector<float>{0.875f, 0.5f, 500.25f});
  tensor lt = run1(make_node("Less", 2, 1), {a, b});
  CHECK(as_vec<uint8_t>(lt) == std::vector<uint8_t>{0, 1, 0});
}

TEST_CASE("PRelu scales negatives by a slope broadcast to the input") {
  tensor x = vec<float>({2, 3}, {-1, 2, -3, 4, -5, 6});
  tensor slope = vec<float>({3, 1}, {0.5f, 0.25f, 0.1f});
  CHECK(error_of(make_node("PRelu", 2, 1), {x, slope}) == errc::invalid_argument);
  auto y = as_vec<float>(run1(make_node("PRelu", 2, 1), {x, vec<float>({3}, {0.5f, 0.25f, 0.1f})}));
  CHECK(std::vector<float>(y.begin(), y.end()) ==
        std::vector<float>{-0.5f, 2, -0.3f, 4, -1.25f, 6});
}

TEST_CASE("Where selects with broadcasting over condition and both branches") {
  random_source rnd;
  CAPTURE(rnd.seed);
  tensor cond = bools({3, 1}, {1, 0, 1});
  tensor x = rnd.floats({2, 1, 4}, -5, 5);
  tensor y = rnd.floats({4}, -5, 5);
  tensor out = run1(make_node("Where", 3, 1), {cond, x, y}, false);
  const shape dims{2, 3, 4};
  REQUIRE(out.dims() == dims);
  for_each_broadcast(dims, {cond.dims(), x.dims(), y.dims()},
                     [&](int64_t o, const std::vector<int64_t>& offs) {
                       REQUIRE(out.data<float>()[o] == (cond.data<uint8_t>()[offs[0]]
                                                            ? x.data<float>()[offs[1]]
                                                            : y.data<float>()[offs[2]]));
                     });
  tensor wi = run1(make_node("Where", 3, 1),
                   {bools({2}, {0, 1}), tensor::scalar<int64_t>(7), vec<int64_t>({2}, {1, 2})});
  CHECK(wi.values<int64_t>()[0] == 1);
  CHECK(wi.values<int64_t>()[1] == 7);
  CHECK(error_of(make_node("Where", 3, 1), {x, x, y}) == errc::invalid_argument);
}

TEST_CASE("float16 conversion rounds to nearest even and keeps inf, NaN and subnormals") {
  using cpu::float_to_half;
  using cpu::half_to_float;
  CHECK(float_to_half(1.0f) == 0x3C00);
  CHECK(float_to_half(-2.0f) == 0xC000);
  CHECK(float_to_half(65504.0f) == 0x7BFF);
  CHECK(float_to_half(65519.0f) == 0x7BFF);
  CHECK(float_to_half(65520.0f) == 0x7C00); // halfway to the next binade rounds to inf
  CHECK(float_to_half(inf) == 0x7C00);
  CHECK(float_to_half(-0.0f) == 0x8000);
  CHECK(float_to_half(1.0f / 3.0f) == 0x3555);
  CHECK(float_to_half(std::ldexp(1.0f, -24)) == 0x0001); // smallest subnormal
  CHECK(float_to_half(std::ldexp(1.0f, -25)) == 0x0000); // tie rounds to even (0)
  CHECK(float_to_half(std::ldexp(3.0f, -25)) == 0x0002); // tie rounds to even (2)
  CHECK(float_to_half(std::ldexp(1.0f, -14)) == 0x0400); // smallest normal
  CHECK(float_to_half(1.0f + std::ldexp(1.0f, -11)) == 0x3C00); // tie to even
  CHECK(float_to_half(1.0f + std::ldexp(3.0f, -11)) == 0x3C02);
  CHECK((float_to_half(nan_f) & 0x7FFF) > 0x7C00);
  CHECK(half_to_float(0x7BFF) == 65504.0f);
  CHECK(half_to_float(0x0001) == std::ldexp(1.0f, -24));
  CHECK(half_to_float(0xFC00) == -inf);
  CHECK(std::isnan(half_to_float(0x7E00)));
  // Every non-NaN half survives a round trip through float.
  for (uint32_t h = 0; h < 0x10000; ++h) {
    if ((h & 0x7C00) == 0x7C00 && (h & 0x3FF))
      continue;
    REQUIRE(float_to_half(half_to_float(static_cast<uint16_t>(h))) == h);
  }
}

TEST_CASE("bfloat16 conversion rounds to nearest even and keeps NaN") {
  using cpu::bfloat16_to_float;
  using cpu::float_to_bfloat16;
  CHECK(float_to_bfloat16(1.0f) == 0x3F80);
  CHECK(float_to_bfloat16(std::bit_cast<float>(0x3F808000u)) == 0x3F80); // tie, even stays
  CHECK(float_to_bfloat16(std::bit_cast<float>(0x3F818000u)) == 0x3F82); // tie, odd rounds up
  CHECK(float_to_bfloat16(std::bit_cast<float>(0x3F808001u)) == 0x3F81);
  CHECK(float_to_bfloat16(std::bit_cast<float>(0x7F7FFFFFu)) == 0x7F80); // FLT_MAX -> inf
  CHECK(std::isnan(bfloat16_to_float(float_to_bfloat16(nan_f))));
  CHECK(std::isnan(bfloat16_to_float(float_to_bfloat16(std::bit_cast<float>(0x7F800001u)))));
  CHECK(bfloat16_to_float(0xC040) == -3.0f);
}

TEST_CASE("Cast converts between numeric types, bool, float16 and bfloat16") {
  tensor f = vec<float>({6}, {1.0f, -2.7f, 65504.0f, nan_f, 3e9f, 0.0f});
  auto cast = [&](const tensor& x, dtype to) {
    return run1(make_node("Cast", 1, 1, {{"to", int64_t{onnx_type_of(to)}}}), {x});
  };
  tensor h = cast(f, dtype::f16);
  REQUIRE(h.type() == dtype::f16);
  CHECK(h.data<uint16_t>()[0] == 0x3C00);
  CHECK(h.data<uint16_t>()[2] == 0x7BFF);
  tensor back = cast(h, dtype::f32);
  CHECK(back.data<float>()[0] == 1.0f);
  CHECK(back.data<float>()[1] == doctest::Approx(-2.7f).epsilon(1e-3));
  CHECK(std::isnan(back.data<float>()[3]));
  CHECK(back.data<float>()[4] == inf);
  tensor bf = cast(f, dtype::bf16);
  CHECK(bf.data<uint16_t>()[0] == 0x3F80);
  CHECK(cast(bf, dtype::f32).data<float>()[1] == doctest::Approx(-2.7f).epsilon(1e-2));
  auto i32 = as_vec<int32_t>(cast(f, dtype::i32));
  CHECK(i32[0] == 1);
  CHECK(i32[1] == -2); // truncation
  CHECK(i32[3] == 0);  // NaN
  CHECK(i32[4] == std::numeric_limits<int32_t>::max()); // saturates
  auto b = as_vec<uint8_t>(cast(f, dtype::boolean));
  CHECK(std::vector<uint8_t>(b.begin(), b.end()) == std::vector<uint8_t>{1, 1, 1, 1, 1, 0});
  auto fb = as_vec<float>(cast(bools({2}, {1, 0}), dtype::f32));
  CHECK(fb[0] == 1.0f);
  CHECK(fb[1] == 0.0f);
  auto i8 = as_vec<int8_t>(cast(vec<int64_t>({2}, {300, -1}), dtype::i8));
  CHECK(i8[0] == 44); // wraps
  CHECK(i8[1] == -1);
  auto d = as_vec<double>(cast(vec<int64_t>({1}, {int64_t{1} << 53}), dtype::f64));
  CHECK(d[0] == 9007199254740992.0);
  tensor like = run1(make_node("CastLike", 2, 1), {f, tensor::scalar<int64_t>(0)});
  CHECK(like.type() == dtype::i64);
  CHECK(like.values<int64_t>()[1] == -2);
  CHECK(error_of(make_node("Cast", 1, 1), {f}) == errc::invalid_argument);
}

TEST_CASE("elementwise ops reject incompatible shapes and mixed types naming the node") {
  tensor a = vec<float>({3}, {1, 2, 3}), b = vec<float>({4}, {1, 2, 3, 4});
  for (const char* op : {"Add", "Mul", "Equal", "Max"})
    CHECK(error_of(make_node(op, 2, 1), {a, b}) == errc::invalid_argument);
  tensor i = vec<int64_t>({3}, {1, 2, 3});
  for (const char* op : {"Add", "Sub", "Div", "Less", "Sum"})
    CHECK(error_of(make_node(op, 2, 1), {a, i}) == errc::invalid_argument);
  CHECK(error_of(make_node("Where", 3, 1), {bools({3}, {1, 0, 1}), a, b}) ==
        errc::invalid_argument);
  CHECK(error_of(make_node("Add", 1, 1), {a}) == errc::invalid_argument);
  CHECK(error_of(make_node("Relu", 2, 1), {a, a}) == errc::invalid_argument);
  CHECK(error_of(make_node("Celu", 1, 1, {{"alpha", 0.0f}}), {a}) == errc::invalid_argument);
}

TEST_CASE("activations on a oneDNN blocked input keep the layout or return plain") {
  random_source rnd;
  CAPTURE(rnd.seed);
  cpu::cpu_context cpu;
  // 20 channels in nChw16c: padded to 32, so the padding must stay zero for later primitives.
  const shape dims{2, 20, 3, 5};
  tensor x = rnd.floats(dims, -4, 4);
  dnnl::memory::desc plain_md(dims, dnnl::memory::data_type::f32, strides_of(dims));
  dnnl::memory::desc blocked_md(dims, dnnl::memory::data_type::f32,
                                dnnl::memory::format_tag::nChw16c);
  auto reorder = [&](const dnnl::memory::desc& from, void* src, const dnnl::memory::desc& to,
                     void* dst) {
    dnnl::memory s(from, cpu.engine(), src), d(to, cpu.engine(), dst);
    dnnl::reorder(s, d).execute(cpu.stream(), s, d);
    cpu.stream().wait();
  };
  // A blocked tensor keeps its logical dims over a buffer of the blocked size.
  auto blocked_tensor = [&](size_t bytes) {
    auto buffer = storage::allocate_host(bytes);
    std::memset(buffer->data(), 0, bytes);
    return tensor::wrap(dtype::f32, dims, buffer);
  };
  tensor xb = blocked_tensor(blocked_md.get_size());
  reorder(plain_md, x.raw(), blocked_md, xb.raw());
  value_desc in{dtype::f32, dims, value_layout::of(blocked_md), nullptr};
  for (const char* op : {"Relu", "Sigmoid", "Tanh", "LeakyRelu", "Clip"}) {
    CAPTURE(op);
    const op_def* def = cpu_registry().find(op);
    REQUIRE(def);
    CHECK((def->blocked_inputs & 1u) == 1u);
    node n = make_node(op, 1, 1, {{"alpha", 0.1f}});
    std::vector<tensor> plain_out = {run1(n, {x})};
    for (bool allow : {true, false}) {
      CAPTURE(allow);
      build_context bctx{cpu, 17, allow};
      std::vector<value_desc> descs{in};
      auto built = def->build(n, descs, bctx);
      REQUIRE(built.has_value());
      const value_desc& o = built->outputs[0];
      CHECK(o.layout.is_plain() == !allow);
      tensor out = blocked_tensor(o.buffer_bytes());
      std::vector<tensor> outs{out}, ins{xb};
      exec_context ectx{cpu};
      REQUIRE(built->kernel->run(ectx, ins, outs).is_ok());
      tensor got = tensor::empty(dtype::f32, dims);
      if (allow) {
        reorder(blocked_md, out.raw(), plain_md, got.raw());
        // nChw16c is [N][C/16][H][W][16]; channels 20..31 of the second block are padding.
        const float* raw = out.data<float>();
        bool padding_zero = true;
        for (int64_t i = 0; i < 2 * 2 * 3 * 5; ++i)
          for (int64_t c = 4; c < 16; ++c)
            if ((i / 15) % 2 == 1)
              padding_zero = padding_zero && raw[i * 16 + c] == 0.0f;
        CHECK(padding_zero);
      } else {
        std::memcpy(got.raw(), out.raw(), got.nbytes());
      }
      CHECK(relative_error(got, plain_out[0]) < 1e-5);
    }
  }
  CHECK(cpu_registry().find("Add")->blocked_inputs == 0u);
}
