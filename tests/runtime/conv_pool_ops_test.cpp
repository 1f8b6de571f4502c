// Tests for Conv, TroupeFusedConv, pooling and BatchNormalization against naive loop references.
#include <doctest/doctest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "tests/op_harness.hpp"

using namespace troupe;
using troupe::testing::make_node;
using troupe::testing::run_op;

namespace {

unsigned seed() {
  static const unsigned value = std::random_device{}();
  return value;
}

std::mt19937& rng() {
  static std::mt19937 gen(seed());
  return gen;
}

int64_t pick(int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng());
}

tensor random_tensor(shape dims, float lo = -1.f, float hi = 1.f) {
  tensor t = tensor::empty(dtype::f32, std::move(dims));
  std::uniform_real_distribution<float> dist(lo, hi);
  for (float& v : t.values<float>())
    v = dist(rng());
  return t;
}

/// Window of a reference computation, always 3 spatial dims (missing leading ones are 1).
struct ref_window {
  int64_t k[3] = {1, 1, 1}, s[3] = {1, 1, 1}, d[3] = {1, 1, 1};
  int64_t pb[3] = {0, 0, 0}, pe[3] = {0, 0, 0}, out[3] = {1, 1, 1}, in[3] = {1, 1, 1};
};

/// Spatial attributes as ONNX lists, plus the expected output dims computed independently.
struct window_case {
  std::vector<int64_t> in, k, s, d, pads; // pads: begins then ends
  bool ceil_mode = false;

  std::vector<int64_t> out() const {
    std::vector<int64_t> o;
    const size_t r = in.size();
    for (size_t i = 0; i < r; ++i) {
      const int64_t ext = (k[i] - 1) * d[i] + 1;
      const int64_t span = in[i] + pads[i] + pads[i + r] - ext;
      int64_t v = ceil_mode ? (span + s[i] - 1) / s[i] + 1 : span / s[i] + 1;
      if (ceil_mode && (v - 1) * s[i] >= in[i] + pads[i])
        --v;
      o.push_back(v);
    }
    return o;
  }

  ref_window ref() const {
    ref_window w;
    const size_t r = in.size(), off = 3 - r;
    const auto o = out();
    for (size_t i = 0; i < r; ++i) {
      w.k[off + i] = k[i];
      w.s[off + i] = s[i];
      w.d[off + i] = d[i];
      w.pb[off + i] = pads[i];
      w.pe[off + i] = pads[i + r];
      w.out[off + i] = o[i];
      w.in[off + i] = in[i];
    }
    return w;
  }

  std::map<std::string, attribute> attrs() const {
    return {{"kernel_shape", k}, {"strides", s}, {"dilations", d}, {"pads", pads}};
  }
};

/// Random window over `rank` spatial dims with kernels up to `max_k`.
window_case random_window(size_t rank, int64_t max_k) {
  window_case c;
  for (size_t i = 0; i < rank; ++i) {
    c.k.push_back(pick(1, max_k));
    c.s.push_back(pick(1, 2));
    c.d.push_back(pick(1, 2));
  }
  for (size_t i = 0; i < 2 * rank; ++i)
    c.pads.push_back(pick(0, 1) ? std::min<int64_t>(pick(0, 2), c.k[i % rank] - 1) : 0);
  for (size_t i = 0; i < rank; ++i)
    c.in.push_back(pick((c.k[i] - 1) * c.d[i] + 1, 11));
  return c;
}

shape concat_dims(shape head, const std::vector<int64_t>& tail) {
  head.insert(head.end(), tail.begin(), tail.end());
  return head;
}

tensor ref_conv(const tensor& x, const tensor& w, const tensor* b, int64_t group,
                const window_case& wc) {
  const ref_window rw = wc.ref();
  const int64_t n = x.dim(0), c = x.dim(1), m = w.dim(0), cg = c / group, mg = m / group;
  tensor y = tensor::zeros(dtype::f32, concat_dims({n, m}, wc.out()));
  const float* xp = x.data<float>();
  const float* wp = w.data<float>();
  float* yp = y.data<float>();
  const int64_t out_sz = rw.out[0] * rw.out[1] * rw.out[2];
  const int64_t k_sz = rw.k[0] * rw.k[1] * rw.k[2];
  for (int64_t in = 0; in < n; ++in)
    for (int64_t om = 0; om < m; ++om) {
      const int64_t g = om / mg;
      for (int64_t o0 = 0; o0 < rw.out[0]; ++o0)
        for (int64_t o1 = 0; o1 < rw.out[1]; ++o1)
          for (int64_t o2 = 0; o2 < rw.out[2]; ++o2) {
            double acc = b ? b->data<float>()[om] : 0.0;
            for (int64_t ic = 0; ic < cg; ++ic)
              for (int64_t k0 = 0; k0 < rw.k[0]; ++k0)
                for (int64_t k1 = 0; k1 < rw.k[1]; ++k1)
                  for (int64_t k2 = 0; k2 < rw.k[2]; ++k2) {
                    const int64_t i0 = o0 * rw.s[0] - rw.pb[0] + k0 * rw.d[0];
                    const int64_t i1 = o1 * rw.s[1] - rw.pb[1] + k1 * rw.d[1];
                    const int64_t i2 = o2 * rw.s[2] - rw.pb[2] + k2 * rw.d[2];
                    if (i0 < 0 || i0 >= rw.in[0] || i1 < 0 || i1 >= rw.in[1] || i2 < 0 ||
                        i2 >= rw.in[2])
                      continue;
                    const float xv =
                        xp[((in * c + g * cg + ic) * rw.in[0] + i0) * rw.in[1] * rw.in[2] +
                           i1 * rw.in[2] + i2];
                    const float wv = wp[(om * cg + ic) * k_sz + (k0 * rw.k[1] + k1) * rw.k[2] + k2];
                    acc += static_cast<double>(xv) * wv;
                  }
            yp[(in * m + om) * out_sz + (o0 * rw.out[1] + o1) * rw.out[2] + o2] =
                static_cast<float>(acc);
          }
    }
  return y;
}

enum class ref_pool_kind { max, avg_exclude, avg_include };

tensor ref_pool(const tensor& x, ref_pool_kind kind, const window_case& wc) {
  const ref_window rw = wc.ref();
  const int64_t planes = x.dim(0) * x.dim(1);
  tensor y = tensor::empty(dtype::f32, concat_dims({x.dim(0), x.dim(1)}, wc.out()));
  const int64_t in_sz = rw.in[0] * rw.in[1] * rw.in[2];
  const int64_t out_sz = rw.out[0] * rw.out[1] * rw.out[2];
  for (int64_t p = 0; p < planes; ++p)
    for (int64_t o0 = 0; o0 < rw.out[0]; ++o0)
      for (int64_t o1 = 0; o1 < rw.out[1]; ++o1)
        for (int64_t o2 = 0; o2 < rw.out[2]; ++o2) {
          double acc = kind == ref_pool_kind::max ? -std::numeric_limits<double>::infinity() : 0.0;
          int64_t count = 0, padded_count = 0;
          for (int64_t k0 = 0; k0 < rw.k[0]; ++k0)
            for (int64_t k1 = 0; k1 < rw.k[1]; ++k1)
              for (int64_t k2 = 0; k2 < rw.k[2]; ++k2) {
                const int64_t idx[3] = {o0 * rw.s[0] - rw.pb[0] + k0 * rw.d[0],
                                        o1 * rw.s[1] - rw.pb[1] + k1 * rw.d[1],
                                        o2 * rw.s[2] - rw.pb[2] + k2 * rw.d[2]};
                bool inside = true, inside_pads = true;
                for (int a = 0; a < 3; ++a) {
                  inside = inside && idx[a] >= 0 && idx[a] < rw.in[a];
                  inside_pads = inside_pads && idx[a] >= -rw.pb[a] && idx[a] < rw.in[a] + rw.pe[a];
                }
                padded_count += inside_pads;
                if (!inside)
                  continue;
                const float v =
                    x.data<float>()[p * in_sz + (idx[0] * rw.in[1] + idx[1]) * rw.in[2] + idx[2]];
                acc = kind == ref_pool_kind::max ? std::max<double>(acc, v) : acc + v;
                ++count;
              }
          if (kind == ref_pool_kind::avg_exclude)
            acc /= static_cast<double>(count);
          else if (kind == ref_pool_kind::avg_include)
            acc /= static_cast<double>(padded_count);
          y.data<float>()[p * out_sz + (o0 * rw.out[1] + o1) * rw.out[2] + o2] =
              static_cast<float>(acc);
        }
  return y;
}

/// Runs `n` and checks its single output against `ref` within a relative L2 tolerance.
void check_op(const node& n, const std::vector<tensor>& inputs, const tensor& ref,
              bool constant = true) {
  INFO("seed " << seed());
  auto out = run_op(n, inputs, constant);
  REQUIRE_MESSAGE(out.has_value(), out.error().to_string());
  REQUIRE(out->at(0).dims() == ref.dims());
  CHECK(relative_error(out->at(0), ref) < 1e-5);
}

std::map<std::string, attribute> with(std::map<std::string, attribute> a, const std::string& key,
                                      attribute v) {
  a[key] = std::move(v);
  return a;
}

} // namespace

TEST_CASE("Conv 2D matches the naive reference over random strides, pads, dilations, groups") {
  for (int iter = 0; iter < 24; ++iter) {
    const window_case wc = random_window(2, 3);
    const int64_t group = std::array<int64_t, 3>{1, 2, 4}[static_cast<size_t>(pick(0, 2))];
    const int64_t c = group * pick(1, 3), m = group * pick(1, 3), n = pick(1, 2);
    const tensor x = random_tensor(concat_dims({n, c}, wc.in));
    const tensor w = random_tensor(concat_dims({m, c / group}, wc.k));
    const tensor b = random_tensor({m});
    const bool use_bias = iter % 2 == 0;
    const bool constant = iter % 3 != 0;
    CAPTURE(iter);
    CAPTURE(group);
    CAPTURE(constant);
    node nd = make_node("Conv", use_bias ? 3 : 2, 1, with(wc.attrs(), "group", group));
    check_op(nd, use_bias ? std::vector{x, w, b} : std::vector{x, w},
             ref_conv(x, w, use_bias ? &b : nullptr, group, wc), constant);
  }
}

TEST_CASE("Conv depthwise (group == channels) with stride 2 matches the reference") {
  window_case wc{{14, 13}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}};
  const int64_t c = 32;
  const tensor x = random_tensor(concat_dims({2, c}, wc.in));
  const tensor w = random_tensor(concat_dims({c, 1}, wc.k));
  const tensor b = random_tensor({c});
  check_op(make_node("Conv", 3, 1, with(wc.attrs(), "group", c)), {x, w, b},
           ref_conv(x, w, &b, c, wc));
}

TEST_CASE("Conv 1D and 3D match the reference") {
  for (size_t rank : {size_t{1}, size_t{3}}) {
    const window_case wc = random_window(rank, 3);
    const tensor x = random_tensor(concat_dims({2, 4}, wc.in));
    const tensor w = random_tensor(concat_dims({6, 2}, wc.k));
    CAPTURE(rank);
    check_op(make_node("Conv", 2, 1, with(wc.attrs(), "group", int64_t{2})), {x, w},
             ref_conv(x, w, nullptr, 2, wc));
  }
}

TEST_CASE("Conv auto_pad SAME_UPPER, SAME_LOWER and VALID pad as ONNX specifies") {
  for (const char* mode : {"SAME_UPPER", "SAME_LOWER", "VALID"}) {
    window_case wc{{11, 10}, {3, 4}, {2, 1}, {1, 1}, {}};
    const std::string m = mode;
    for (size_t i = 0; i < 2; ++i) {
      if (m == "VALID") {
        wc.pads = {0, 0, 0, 0};
        break;
      }
      const int64_t out = (wc.in[i] + wc.s[i] - 1) / wc.s[i];
      const int64_t total = std::max<int64_t>(0, (out - 1) * wc.s[i] + wc.k[i] - wc.in[i]);
      const int64_t small = total / 2, big = total - small;
      wc.pads.resize(4);
      wc.pads[i] = m == "SAME_UPPER" ? small : big;
      wc.pads[i + 2] = m == "SAME_UPPER" ? big : small;
    }
    const tensor x = random_tensor(concat_dims({1, 3}, wc.in));
    const tensor w = random_tensor(concat_dims({5, 3}, wc.k));
    CAPTURE(m);
    check_op(
        make_node("Conv", 2, 1,
                  {{"auto_pad", m}, {"strides", wc.s}, {"pads", std::vector<int64_t>{9, 9, 9, 9}}}),
        {x, w}, ref_conv(x, w, nullptr, 1, wc));
  }
}

TEST_CASE("TroupeFusedConv adds Sum then applies the activation") {
  struct act_case {
    std::string name;
    std::function<float(float)> f;
    std::map<std::string, attribute> attrs;
  };
  const std::vector<act_case> acts = {
      {"", [](float v) { return v; }, {}},
      {"Relu", [](float v) { return std::max(v, 0.f); }, {}},
      {"LeakyRelu", [](float v) { return v < 0 ? 0.2f * v : v; }, {{"alpha", 0.2f}}},
      {"Clip", [](float v) { return std::clamp(v, -0.5f, 0.7f); }, {{"min", -0.5f}, {"max", 0.7f}}},
      {"Sigmoid", [](float v) { return 1.f / (1.f + std::exp(-v)); }, {}},
  };
  for (const auto& act : acts)
    for (bool use_sum : {false, true}) {
      window_case wc{{9, 8}, {3, 3}, {2, 1}, {1, 1}, {1, 0, 1, 2}};
      const tensor x = random_tensor(concat_dims({2, 8}, wc.in));
      const tensor w = random_tensor(concat_dims({16, 8}, wc.k));
      const tensor b = random_tensor({16});
      tensor ref = ref_conv(x, w, &b, 1, wc);
      const tensor sum = random_tensor(ref.dims());
      for (int64_t i = 0; i < ref.numel(); ++i)
        ref.data<float>()[i] = act.f(ref.data<float>()[i] + (use_sum ? sum.data<float>()[i] : 0.f));
      auto attrs = wc.attrs();
      attrs["activation"] = act.name;
      for (const auto& [k, v] : act.attrs)
        attrs[k] = v;
      CAPTURE(act.name);
      CAPTURE(use_sum);
      check_op(make_node("TroupeFusedConv", use_sum ? 4 : 3, 1, attrs),
               use_sum ? std::vector{x, w, b, sum} : std::vector{x, w, b}, ref);
    }
}

TEST_CASE("MaxPool and AveragePool match the reference with ceil_mode, pads and dilations") {
  for (int iter = 0; iter < 40; ++iter) {
    const size_t rank = iter % 10 == 0 ? 1 : iter % 10 == 1 ? 3 : 2;
    window_case wc = random_window(rank, 3);
    const int kind = iter % 3; // 0 max, 1 avg exclude, 2 avg include
    if (kind != 0)
      wc.d.assign(rank, 1);
    wc.ceil_mode = kind != 2 && pick(0, 1) == 1;
    const tensor x = random_tensor(concat_dims({2, 3}, wc.in));
    auto attrs = wc.attrs();
    attrs["ceil_mode"] = int64_t{wc.ceil_mode};
    if (kind != 0) {
      attrs.erase("dilations");
      attrs["count_include_pad"] = int64_t{kind == 2};
    }
    CAPTURE(iter);
    CAPTURE(kind);
    CAPTURE(wc.ceil_mode);
    const auto ref_kind = kind == 0   ? ref_pool_kind::max
                          : kind == 1 ? ref_pool_kind::avg_exclude
                                      : ref_pool_kind::avg_include;
    check_op(make_node(kind == 0 ? "MaxPool" : "AveragePool", 1, 1, attrs), {x},
             ref_pool(x, ref_kind, wc));
  }
}

TEST_CASE("MaxPool auto_pad SAME_UPPER with stride 2 pads at the end") {
  // in 7, k 3, s 2 -> out 4, total pad 2: one before, one after; in 8 -> total 1, after.
  window_case wc{{7, 8}, {3, 3}, {2, 2}, {1, 1}, {1, 0, 1, 1}};
  const tensor x = random_tensor(concat_dims({1, 4}, wc.in));
  check_op(
      make_node(
          "MaxPool", 1, 1,
          {{"auto_pad", std::string("SAME_UPPER")}, {"kernel_shape", wc.k}, {"strides", wc.s}}),
      {x}, ref_pool(x, ref_pool_kind::max, wc));
}

TEST_CASE("GlobalAveragePool and GlobalMaxPool reduce every spatial dim to 1") {
  const tensor x = random_tensor({2, 5, 6, 7});
  window_case wc{{6, 7}, {6, 7}, {1, 1}, {1, 1}, {0, 0, 0, 0}};
  check_op(make_node("GlobalAveragePool", 1, 1), {x}, ref_pool(x, ref_pool_kind::avg_exclude, wc));
  check_op(make_node("GlobalMaxPool", 1, 1), {x}, ref_pool(x, ref_pool_kind::max, wc));
}

TEST_CASE("BatchNormalization in inference mode normalizes with the given statistics") {
  for (shape dims : {shape{2, 6, 5, 4}, shape{3, 4}, shape{2, 3, 7}}) {
    const int64_t c = dims[1];
    const tensor x = random_tensor(dims);
    const tensor scale = random_tensor({c}), bias = random_tensor({c});
    const tensor mean = random_tensor({c}), var = random_tensor({c}, 0.1f, 2.f);
    const float eps = 1e-3f;
    tensor ref = tensor::empty(dtype::f32, dims);
    const int64_t inner = x.numel() / (dims[0] * c);
    for (int64_t i = 0; i < x.numel(); ++i) {
      const int64_t ch = (i / inner) % c;
      ref.data<float>()[i] = (x.data<float>()[i] - mean.data<float>()[ch]) /
                                 std::sqrt(var.data<float>()[ch] + eps) * scale.data<float>()[ch] +
                             bias.data<float>()[ch];
    }
    CAPTURE(to_string(dims));
    for (bool constant : {false, true})
      check_op(make_node("BatchNormalization", 5, 1, {{"epsilon", eps}}),
               {x, scale, bias, mean, var}, ref, constant);
  }
}

TEST_CASE("Conv chain passes a blocked layout from one conv to the next without reorders") {
  static cpu::cpu_context cpu;
  INFO("seed " << seed());
  const op_def* def = cpu_registry().find("Conv");
  REQUIRE(def != nullptr);
  CHECK((def->blocked_inputs & 1u) != 0);
  window_case wc1{{12, 12}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}};
  window_case wc2{{12, 12}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 0, 0}};
  const tensor x = random_tensor(concat_dims({2, 16}, wc1.in));
  const tensor w1 = random_tensor(concat_dims({32, 16}, wc1.k)), b1 = random_tensor({32});
  const tensor w2 = random_tensor(concat_dims({32, 32}, wc2.k)), b2 = random_tensor({32});

  const node n1 = make_node("Conv", 3, 1, wc1.attrs());
  std::vector<value_desc> d1(3);
  const std::vector<tensor> in1{x, w1, b1};
  for (size_t i = 0; i < 3; ++i)
    d1[i] = {dtype::f32, in1[i].dims(), {}, i == 0 ? nullptr : &in1[i]};
  build_context blocked{cpu, 17, true};
  auto op1 = def->build(n1, d1, blocked);
  REQUIRE_MESSAGE(op1.has_value(), op1.error().to_string());
  const value_desc& mid = op1->outputs[0];
  CHECK_FALSE(mid.layout.is_plain());
  CHECK(mid.dims == shape{2, 32, 12, 12});
  tensor mid_t = tensor::wrap(dtype::f32, mid.dims, storage::allocate_host(mid.buffer_bytes()));
  exec_context ectx{cpu};
  std::vector<tensor> outs1{mid_t};
  REQUIRE(op1->kernel->run(ectx, in1, outs1).is_ok());

  const node n2 = make_node("Conv", 3, 1, wc2.attrs());
  const std::vector<tensor> in2{mid_t, w2, b2};
  std::vector<value_desc> d2{
      mid, {dtype::f32, w2.dims(), {}, &w2}, {dtype::f32, b2.dims(), {}, &b2}};
  build_context plain{cpu, 17, false};
  auto op2 = def->build(n2, d2, plain);
  REQUIRE_MESSAGE(op2.has_value(), op2.error().to_string());
  CHECK(op2->outputs[0].layout.is_plain());
  tensor y = tensor::empty(dtype::f32, op2->outputs[0].dims);
  std::vector<tensor> outs2{y};
  REQUIRE(op2->kernel->run(ectx, in2, outs2).is_ok());

  const tensor ref = ref_conv(ref_conv(x, w1, &b1, 1, wc1), w2, &b2, 1, wc2);
  REQUIRE(y.dims() == ref.dims());
  CHECK(relative_error(y, ref) < 1e-5);
}

namespace {

/// One op built for the given input descs and run once; the output keeps its layout.
struct layout_run {
  value_desc desc;
  tensor value;
};

layout_run build_and_run(cpu::cpu_context& cpu, const node& n, std::vector<value_desc> descs,
                         const std::vector<tensor>& inputs, bool allow_blocked) {
  build_context bctx{cpu, 17, allow_blocked};
  auto op = cpu_registry().find(n.op_type)->build(n, descs, bctx);
  REQUIRE_MESSAGE(op.has_value(), op.error().to_string());
  const value_desc& d = op->outputs[0];
  tensor out = tensor::wrap(dtype::f32, d.dims, storage::allocate_host(d.buffer_bytes()));
  std::vector<tensor> outs{out};
  exec_context ectx{cpu};
  const status st = op->kernel->run(ectx, inputs, outs);
  REQUIRE_MESSAGE(st.is_ok(), st.to_string());
  return {d, out};
}

value_desc desc_of(const tensor& t, bool constant) {
  return value_desc{dtype::f32, t.dims(), {}, constant ? &t : nullptr};
}

} // namespace

TEST_CASE("TroupeFusedConv, pools and BatchNormalization consume blocked inputs and Sum") {
  static cpu::cpu_context cpu;
  INFO("seed " << seed());
  window_case wc{{10, 10}, {3, 3}, {1, 1}, {1, 1}, {1, 1, 1, 1}};
  const tensor x = random_tensor(concat_dims({2, 16}, wc.in));
  const tensor w1 = random_tensor(concat_dims({16, 16}, wc.k));
  const tensor w2 = random_tensor(concat_dims({16, 16}, wc.k));
  const tensor plain_sum = random_tensor({2, 16, 10, 10});
  const auto fused_attrs = with(wc.attrs(), "activation", std::string("Relu"));
  const node fused = make_node("TroupeFusedConv", 4, 1, fused_attrs);

  // a = conv(x) blocked; y = relu(conv(a) + a) with a blocked Sum; v = relu(conv(a) + s)
  // with a plain Sum reordered into the blocked dst.
  const auto a = build_and_run(cpu, make_node("Conv", 2, 1, wc.attrs()),
                               {desc_of(x, false), desc_of(w1, true)}, {x, w1}, true);
  REQUIRE_FALSE(a.desc.layout.is_plain());
  const auto y = build_and_run(cpu, fused, {a.desc, desc_of(w2, false), {}, a.desc},
                               {a.value, w2, tensor{}, a.value}, true);
  REQUIRE_FALSE(y.desc.layout.is_plain());
  const auto v =
      build_and_run(cpu, fused, {a.desc, desc_of(w2, true), {}, desc_of(plain_sum, false)},
                    {a.value, w2, tensor{}, plain_sum}, true);

  const tensor ra = ref_conv(x, w1, nullptr, 1, wc);
  const tensor rc = ref_conv(ra, w2, nullptr, 1, wc);
  tensor ry = tensor::empty(dtype::f32, rc.dims()), rv = tensor::empty(dtype::f32, rc.dims());
  for (int64_t i = 0; i < rc.numel(); ++i) {
    ry.data<float>()[i] = std::max(0.f, rc.data<float>()[i] + ra.data<float>()[i]);
    rv.data<float>()[i] = std::max(0.f, rc.data<float>()[i] + plain_sum.data<float>()[i]);
  }

  // Plain results of consumers reading blocked values, each against its reference.
  window_case pool{{10, 10}, {2, 2}, {2, 2}, {1, 1}, {0, 0, 0, 0}};
  window_case pool3{{10, 10}, {3, 3}, {2, 2}, {1, 1}, {1, 1, 1, 1}};
  window_case global{{10, 10}, {10, 10}, {1, 1}, {1, 1}, {0, 0, 0, 0}};
  window_case identity{{10, 10}, {1, 1}, {1, 1}, {1, 1}, {0, 0, 0, 0}};
  auto plain_of = [&](const node& n, const layout_run& in, std::vector<tensor> extra = {}) {
    std::vector<value_desc> descs{in.desc};
    std::vector<tensor> inputs{in.value};
    for (const tensor& t : extra) {
      descs.push_back(desc_of(t, true));
      inputs.push_back(t);
    }
    const auto r = build_and_run(cpu, n, descs, inputs, false);
    CHECK(r.desc.layout.is_plain());
    return r.value;
  };
  CHECK(relative_error(plain_of(make_node("MaxPool", 1, 1, identity.attrs()), v), rv) < 1e-5);
  CHECK(relative_error(plain_of(make_node("MaxPool", 1, 1, pool.attrs()), y),
                       ref_pool(ry, ref_pool_kind::max, pool)) < 1e-5);
  CHECK(relative_error(plain_of(make_node("AveragePool", 1, 1,
                                          with(pool3.attrs(), "count_include_pad", int64_t{1})),
                                y),
                       ref_pool(ry, ref_pool_kind::avg_include, pool3)) < 1e-5);
  CHECK(relative_error(plain_of(make_node("GlobalAveragePool", 1, 1), y),
                       ref_pool(ry, ref_pool_kind::avg_exclude, global)) < 1e-5);
  CHECK(relative_error(plain_of(make_node("GlobalMaxPool", 1, 1), y),
                       ref_pool(ry, ref_pool_kind::max, global)) < 1e-5);
  const tensor ones = tensor::from_vector<float>({16}, std::vector<float>(16, 1.f));
  const tensor zeros = tensor::zeros(dtype::f32, {16});
  CHECK(relative_error(plain_of(make_node("BatchNormalization", 5, 1, {{"epsilon", 0.f}}), y,
                                {ones, zeros, zeros, ones}),
                       ry) < 1e-5);
}

TEST_CASE("Conv rejects mismatched channels, groups, ranks and non-float inputs") {
  const tensor x = random_tensor({1, 4, 5, 5});
  auto code_of = [](const node& n, const std::vector<tensor>& in) {
    auto r = run_op(n, in);
    return r ? errc::ok : r.error().code();
  };
  const node conv = make_node("Conv", 2, 1);
  CHECK(code_of(conv, {x, random_tensor({2, 3, 3, 3})}) == errc::invalid_argument);
  CHECK(code_of(make_node("Conv", 2, 1, {{"group", int64_t{3}}}),
                {x, random_tensor({3, 1, 3, 3})}) == errc::invalid_argument);
  CHECK(code_of(make_node("Conv", 2, 1, {{"group", int64_t{2}}}),
                {x, random_tensor({2, 4, 3, 3})}) == errc::invalid_argument);
  CHECK(code_of(conv, {x, random_tensor({2, 4, 3})}) == errc::invalid_argument);
  CHECK(code_of(conv, {random_tensor({4, 5}), random_tensor({2, 4})}) == errc::invalid_argument);
  CHECK(code_of(conv, {x, random_tensor({2, 4, 7, 7})}) == errc::invalid_argument);
  CHECK(code_of(make_node("Conv", 3, 1), {x, random_tensor({2, 4, 3, 3}), random_tensor({3})}) ==
        errc::invalid_argument);
  CHECK(code_of(make_node("Conv", 2, 1, {{"strides", std::vector<int64_t>{1}}}),
                {x, random_tensor({2, 4, 3, 3})}) == errc::invalid_argument);
  CHECK(code_of(make_node("Conv", 2, 1, {{"auto_pad", std::string("SAME")}}),
                {x, random_tensor({2, 4, 3, 3})}) == errc::invalid_argument);
  CHECK(code_of(make_node("TroupeFusedConv", 2, 1, {{"activation", std::string("Gelu")}}),
                {x, random_tensor({2, 4, 3, 3})}) == errc::invalid_argument);
  const tensor xd = tensor::zeros(dtype::f64, {1, 4, 5, 5});
  CHECK(code_of(conv, {xd, tensor::zeros(dtype::f64, {2, 4, 3, 3})}) == errc::unsupported);
}

TEST_CASE("Pools and BatchNormalization reject bad inputs and unsupported outputs") {
  const tensor x = random_tensor({1, 3, 6, 6});
  auto code_of = [](const node& n, const std::vector<tensor>& in) {
    auto r = run_op(n, in);
    return r ? errc::ok : r.error().code();
  };
  const std::vector<int64_t> k2{2, 2};
  CHECK(code_of(make_node("MaxPool", 1, 1), {x}) == errc::invalid_argument);
  CHECK(code_of(make_node("MaxPool", 1, 1, {{"kernel_shape", std::vector<int64_t>{2}}}), {x}) ==
        errc::invalid_argument);
  CHECK(code_of(make_node("MaxPool", 1, 1, {{"kernel_shape", k2}}), {random_tensor({3, 6})}) ==
        errc::invalid_argument);
  CHECK(code_of(make_node("MaxPool", 1, 2, {{"kernel_shape", k2}}), {x}) == errc::unsupported);
  CHECK(code_of(make_node("AveragePool", 1, 1, {{"kernel_shape", std::vector<int64_t>{7, 7}}}),
                {x}) == errc::invalid_argument);
  CHECK(code_of(make_node("MaxPool", 1, 1, {{"kernel_shape", k2}}),
                {tensor::zeros(dtype::u8, {1, 3, 6, 6})}) == errc::unsupported);
  CHECK(code_of(make_node("GlobalAveragePool", 1, 1), {random_tensor({6})}) ==
        errc::invalid_argument);

  const tensor p = random_tensor({3});
  const node bn = make_node("BatchNormalization", 5, 1);
  CHECK(code_of(bn, {x, p, p, p, random_tensor({4})}) == errc::invalid_argument);
  CHECK(code_of(bn, {x, p, p, p}) == errc::invalid_argument);
  CHECK(code_of(make_node("BatchNormalization", 5, 1, {{"training_mode", int64_t{1}}}),
                {x, p, p, p, p}) == errc::unsupported);
  CHECK(code_of(make_node("BatchNormalization", 5, 3), {x, p, p, p, p}) == errc::unsupported);
}
