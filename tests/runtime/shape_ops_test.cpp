// Tests for the shape operators: views, shape sources, data movement and indexing, checked
// against naive index arithmetic and ONNX's own node tests.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <limits>
#include <map>
#include <numeric>
#include <random>

#include "tests/op_harness.hpp"
#include "runtime/onnx_import.hpp"

using namespace troupe;
using troupe::testing::make_node;
using troupe::testing::run_op;

namespace {

std::mt19937& rng() {
  static std::mt19937 gen = [] {
    const unsigned seed = std::random_device{}();
    MESSAGE("shape_ops_test seed " << seed);
    return std::mt19937{seed};
  }();
  return gen;
}

tensor i64s(shape dims, std::vector<int64_t> values) {
  return tensor::from_vector<int64_t>(std::move(dims), values);
}

tensor i64s(std::vector<int64_t> values) {
  const auto n = static_cast<int64_t>(values.size());
  return i64s({n}, std::move(values));
}

// float tensor whose element i holds i: every output element names its source.
tensor iota_f32(shape dims) {
  tensor t = tensor::empty(dtype::f32, std::move(dims));
  std::iota(t.data<float>(), t.data<float>() + t.numel(), 0.0f);
  return t;
}

tensor random_f32(shape dims) {
  tensor t = tensor::empty(dtype::f32, std::move(dims));
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  for (float& v : t.values<float>())
    v = dist(rng());
  return t;
}

template <class T>
std::vector<T> values_of(const tensor& t) {
  auto v = t.values<T>();
  return {v.begin(), v.end()};
}

std::vector<int64_t> unravel(int64_t flat, const shape& dims) {
  std::vector<int64_t> at(dims.size());
  for (size_t k = dims.size(); k-- > 0;) {
    at[k] = flat % dims[k];
    flat /= dims[k];
  }
  return at;
}

int64_t ravel(const std::vector<int64_t>& at, const shape& dims) {
  int64_t flat = 0;
  for (size_t k = 0; k < dims.size(); ++k)
    flat = flat * dims[k] + at[k];
  return flat;
}

// Builds without running, to inspect output descs and whether the op is a view.
expected<built_op> build(const node& n, const std::vector<tensor>& inputs, int64_t opset = 17,
                         bool constant = true) {
  static cpu::cpu_context cpu;
  std::vector<value_desc> descs;
  for (const auto& t : inputs) {
    value_desc d;
    if (t.defined()) {
      d.type = t.type();
      d.dims = t.dims();
      d.constant = constant ? &t : nullptr;
    }
    descs.push_back(d);
  }
  build_context bctx{cpu, opset, false};
  return cpu_registry().find(n.op_type)->build(n, descs, bctx);
}

// The single output of a successful run.
tensor run1(const node& n, const std::vector<tensor>& inputs, int64_t opset = 17) {
  auto out = run_op(n, inputs, true, opset);
  REQUIRE_MESSAGE(out.has_value(), out.error().to_string());
  return (*out)[0];
}

void check_error(const expected<std::vector<tensor>>& r, errc code, const node& n) {
  REQUIRE(!r.has_value());
  CHECK(r.error().code() == code);
  CHECK_MESSAGE(r.error().message().find(n.label()) != std::string::npos, r.error().message());
}

// Transpose reference: out[o] = in[i] where i[perm[k]] = o[k].
tensor naive_transpose(const tensor& in, const std::vector<int64_t>& perm) {
  shape out_dims;
  for (int64_t p : perm)
    out_dims.push_back(in.dims()[static_cast<size_t>(p)]);
  tensor out = tensor::empty(in.type(), out_dims);
  const size_t es = size_of(in.type());
  for (int64_t o = 0; o < out.numel(); ++o) {
    const auto oat = unravel(o, out_dims);
    std::vector<int64_t> iat(perm.size());
    for (size_t k = 0; k < perm.size(); ++k)
      iat[static_cast<size_t>(perm[k])] = oat[k];
    std::memcpy(static_cast<std::byte*>(out.raw()) + o * int64_t(es),
                static_cast<const std::byte*>(in.raw()) + ravel(iat, in.dims()) * int64_t(es), es);
  }
  return out;
}

} // namespace

TEST_CASE("Reshape copies 0 dims, infers -1, honours allowzero and is a view") {
  node n = make_node("Reshape", 2, 1);
  tensor x = iota_f32({2, 3, 4});
  auto built = build(n, {x, i64s({0, -1, 2})});
  REQUIRE(built.has_value());
  CHECK(built->alias_input == 0);
  CHECK(built->kernel == nullptr);
  CHECK(built->outputs[0].dims == shape{2, 6, 2});
  CHECK(run1(n, {x, i64s({-1})}).dims() == shape{24});

  node zero = make_node("Reshape", 2, 1, {{"allowzero", int64_t{1}}});
  tensor empty = tensor::empty(dtype::f32, {0, 3});
  CHECK(build(zero, {empty, i64s({3, 0})})->outputs[0].dims == shape{3, 0});
  CHECK(build(n, {empty, i64s({0, 3})})->outputs[0].dims == shape{0, 3});
}

TEST_CASE("Reshape rejects a product mismatch, two -1 and a non-constant shape") {
  node n = make_node("Reshape", 2, 1);
  tensor x = iota_f32({2, 3, 4});
  check_error(run_op(n, {x, i64s({5, -1})}), errc::invalid_argument, n);
  check_error(run_op(n, {x, i64s({4, 5})}), errc::invalid_argument, n);
  check_error(run_op(n, {x, i64s({-1, -1})}), errc::invalid_argument, n);
  check_error(run_op(n, {x, i64s({4, 6})}, false), errc::unsupported, n);
}

TEST_CASE("Flatten, Squeeze, Unsqueeze and Identity are views with the right dims") {
  tensor x = iota_f32({2, 1, 3, 1});
  auto dims_of = [&](const node& n, std::vector<tensor> in, int64_t opset = 17) {
    auto b = build(n, in, opset);
    REQUIRE_MESSAGE(b.has_value(), b.error().to_string());
    CHECK(b->alias_input == 0);
    return b->outputs[0].dims;
  };
  CHECK(dims_of(make_node("Flatten", 1, 1), {x}) == shape{2, 3});
  CHECK(dims_of(make_node("Flatten", 1, 1, {{"axis", int64_t{-1}}}), {x}) == shape{6, 1});
  CHECK(dims_of(make_node("Flatten", 1, 1, {{"axis", int64_t{0}}}), {x}) == shape{1, 6});
  CHECK(dims_of(make_node("Flatten", 1, 1, {{"axis", int64_t{4}}}), {x}) == shape{6, 1});
  CHECK(dims_of(make_node("Squeeze", 1, 1), {x}) == shape{2, 3});
  CHECK(dims_of(make_node("Squeeze", 2, 1), {x, i64s({-1})}) == shape{2, 1, 3});
  CHECK(dims_of(make_node("Squeeze", 1, 1, {{"axes", std::vector<int64_t>{1}}}), {x}, 11) ==
        shape{2, 3, 1});
  CHECK(dims_of(make_node("Unsqueeze", 2, 1), {x, i64s({0, -1})}) == shape{1, 2, 1, 3, 1, 1});
  CHECK(dims_of(make_node("Unsqueeze", 1, 1, {{"axes", std::vector<int64_t>{2}}}), {x}, 11) ==
        shape{2, 1, 1, 3, 1});
  CHECK(dims_of(make_node("Identity", 1, 1), {x}) == shape{2, 1, 3, 1});
  CHECK(dims_of(make_node("Dropout", 1, 1), {x}) == shape{2, 1, 3, 1});

  node squeeze = make_node("Squeeze", 2, 1);
  check_error(run_op(squeeze, {x, i64s({0})}), errc::invalid_argument, squeeze);
  node unsqueeze = make_node("Unsqueeze", 2, 1);
  check_error(run_op(unsqueeze, {x, i64s({1, 1})}), errc::invalid_argument, unsqueeze);
  check_error(run_op(unsqueeze, {x, i64s({6})}), errc::invalid_argument, unsqueeze);
  node flatten = make_node("Flatten", 1, 1, {{"axis", int64_t{5}}});
  check_error(run_op(flatten, {x}), errc::invalid_argument, flatten);
}

TEST_CASE("Dropout with a mask output copies the input and writes an all-true mask") {
  node n = make_node("Dropout", 1, 2);
  tensor x = random_f32({3, 5});
  auto built = build(n, {x});
  REQUIRE(built.has_value());
  CHECK(built->alias_input == -1);
  auto out = run_op(n, {x});
  REQUIRE(out.has_value());
  CHECK(bitwise_equal((*out)[0], x));
  REQUIRE((*out)[1].type() == dtype::boolean);
  CHECK((*out)[1].dims() == shape{3, 5});
  for (bool b : (*out)[1].values<bool>())
    CHECK(b);
}

TEST_CASE("Shape and Size report dims, read only shapes and accept blocked inputs") {
  for (const char* type : {"Shape", "Size"}) {
    const op_def* def = cpu_registry().find(type);
    REQUIRE(def);
    CHECK(def->reads_only_shapes);
    CHECK((def->blocked_inputs & 1u) == 1u);
  }
  tensor x = tensor::empty(dtype::u8, {2, 3, 5, 7});
  CHECK(values_of<int64_t>(run1(make_node("Shape", 1, 1), {x})) ==
        std::vector<int64_t>{2, 3, 5, 7});
  node sliced = make_node("Shape", 1, 1, {{"start", int64_t{1}}, {"end", int64_t{-1}}});
  CHECK(values_of<int64_t>(run1(sliced, {x})) == std::vector<int64_t>{3, 5});
  node clipped = make_node("Shape", 1, 1, {{"start", int64_t{-10}}, {"end", int64_t{10}}});
  CHECK(run1(clipped, {x}).numel() == 4);
  node empty = make_node("Shape", 1, 1, {{"start", int64_t{3}}, {"end", int64_t{1}}});
  CHECK(run1(empty, {x}).dims() == shape{0});
  tensor size = run1(make_node("Size", 1, 1), {x});
  CHECK(size.dims() == shape{});
  CHECK(*size.data<int64_t>() == 210);
}

TEST_CASE("Constant produces its value in every attribute form") {
  tensor v = random_f32({2, 2});
  CHECK(bitwise_equal(run1(make_node("Constant", 0, 1, {{"value", v}}), {}), v));
  tensor f = run1(make_node("Constant", 0, 1, {{"value_float", 2.5f}}), {});
  CHECK(f.dims() == shape{});
  CHECK(*f.data<float>() == 2.5f);
  tensor fs = run1(make_node("Constant", 0, 1, {{"value_floats", std::vector<float>{1, 2}}}), {});
  CHECK(values_of<float>(fs) == std::vector<float>{1, 2});
  tensor i = run1(make_node("Constant", 0, 1, {{"value_int", int64_t{-7}}}), {});
  CHECK(i.type() == dtype::i64);
  CHECK(*i.data<int64_t>() == -7);
  tensor is =
      run1(make_node("Constant", 0, 1, {{"value_ints", std::vector<int64_t>{4, 5, 6}}}), {});
  CHECK(values_of<int64_t>(is) == std::vector<int64_t>{4, 5, 6});
  node sparse = make_node("Constant", 0, 1, {{"sparse_value", v}});
  check_error(run_op(sparse, {}), errc::unsupported, sparse);
  node none = make_node("Constant", 0, 1);
  check_error(run_op(none, {}), errc::invalid_argument, none);
}

TEST_CASE("ConstantOfShape fills with zero floats by default or with the value's dtype") {
  tensor zeros = run1(make_node("ConstantOfShape", 1, 1), {i64s({2, 3})});
  CHECK(zeros.type() == dtype::f32);
  CHECK(values_of<float>(zeros) == std::vector<float>(6, 0.0f));
  tensor seven = run1(make_node("ConstantOfShape", 1, 1, {{"value", i64s({1}, {7})}}),
                      {i64s({4})});
  CHECK(values_of<int64_t>(seven) == std::vector<int64_t>(4, 7));
  tensor scalar = run1(make_node("ConstantOfShape", 1, 1), {i64s({})});
  CHECK(scalar.dims() == shape{});
  node n = make_node("ConstantOfShape", 1, 1);
  check_error(run_op(n, {i64s({2, -3})}), errc::invalid_argument, n);
  check_error(run_op(n, {i64s({2, 3})}, false), errc::unsupported, n);
}

TEST_CASE("Range counts ceil((limit-start)/delta) and needs constant operands") {
  node n = make_node("Range", 3, 1);
  tensor r = run1(n, {tensor::scalar<int32_t>(10), tensor::scalar<int32_t>(1),
                      tensor::scalar<int32_t>(-3)});
  CHECK(values_of<int32_t>(r) == std::vector<int32_t>{10, 7, 4});
  tensor f = run1(n, {tensor::scalar(0.5f), tensor::scalar(2.0f), tensor::scalar(0.5f)});
  CHECK(values_of<float>(f) == std::vector<float>{0.5f, 1.0f, 1.5f});
  tensor none = run1(n, {tensor::scalar<int64_t>(5), tensor::scalar<int64_t>(1),
                         tensor::scalar<int64_t>(1)});
  CHECK(none.dims() == shape{0});
  check_error(run_op(n, {tensor::scalar<int64_t>(0), tensor::scalar<int64_t>(4),
                         tensor::scalar<int64_t>(1)},
                     false),
              errc::unsupported, n);
  check_error(run_op(n, {tensor::scalar<int64_t>(0), tensor::scalar<int64_t>(4),
                         tensor::scalar<int64_t>(0)}),
              errc::invalid_argument, n);
}

TEST_CASE("Transpose matches index arithmetic for every permutation of a 4-D iota tensor") {
  tensor x = iota_f32({2, 3, 4, 5});
  std::vector<int64_t> perm{0, 1, 2, 3};
  do {
    node n = make_node("Transpose", 1, 1, {{"perm", perm}});
    tensor out = run1(n, {x});
    tensor ref = naive_transpose(x, perm);
    CHECK_MESSAGE(bitwise_equal(out, ref), "perm " << to_string(perm));
  } while (std::next_permutation(perm.begin(), perm.end()));
  tensor rev = run1(make_node("Transpose", 1, 1), {x});
  CHECK(bitwise_equal(rev, naive_transpose(x, {3, 2, 1, 0})));
}

TEST_CASE("Transpose handles BERT's head split, tiled inner transposes and all element sizes") {
  tensor heads = random_f32({8, 128, 4, 64});
  node bert = make_node("Transpose", 1, 1, {{"perm", std::vector<int64_t>{0, 2, 1, 3}}});
  CHECK(bitwise_equal(run1(bert, {heads}), naive_transpose(heads, {0, 2, 1, 3})));
  node keys = make_node("Transpose", 1, 1, {{"perm", std::vector<int64_t>{0, 1, 3, 2}}});
  CHECK(bitwise_equal(run1(keys, {heads}), naive_transpose(heads, {0, 1, 3, 2})));

  // Odd sizes leave partial tiles on both edges.
  std::uniform_int_distribution<int> byte(0, 255);
  for (dtype t : {dtype::u8, dtype::f16, dtype::i32, dtype::i64, dtype::boolean}) {
    tensor x = tensor::empty(t, {3, 37, 53});
    auto* bytes = static_cast<uint8_t*>(x.raw());
    for (size_t i = 0; i < x.nbytes(); ++i)
      bytes[i] = t == dtype::boolean ? uint8_t(byte(rng()) & 1) : uint8_t(byte(rng()));
    for (std::vector<int64_t> perm : {std::vector<int64_t>{0, 2, 1}, {2, 1, 0}, {1, 2, 0}}) {
      node n = make_node("Transpose", 1, 1, {{"perm", perm}});
      CHECK_MESSAGE(bitwise_equal(run1(n, {x}), naive_transpose(x, perm)),
                    to_string(t) << " perm " << to_string(perm));
    }
  }
}

TEST_CASE("Transpose that moves only size-1 dims is a view; a bad perm is rejected") {
  tensor x = iota_f32({1, 6, 1});
  node n = make_node("Transpose", 1, 1, {{"perm", std::vector<int64_t>{2, 1, 0}}});
  auto built = build(n, {x});
  REQUIRE(built.has_value());
  CHECK(built->alias_input == 0);
  CHECK(built->outputs[0].dims == shape{1, 6, 1});
  node short_perm = make_node("Transpose", 1, 1, {{"perm", std::vector<int64_t>{1, 0}}});
  check_error(run_op(short_perm, {x}), errc::invalid_argument, short_perm);
  node repeated = make_node("Transpose", 1, 1, {{"perm", std::vector<int64_t>{0, 0, 1}}});
  check_error(run_op(repeated, {x}), errc::invalid_argument, repeated);
}

TEST_CASE("Concat joins any number of inputs on an axis, including empty ones") {
  tensor a = random_f32({2, 3, 4}), b = random_f32({2, 0, 4}), c = random_f32({2, 5, 4});
  node n = make_node("Concat", 3, 1, {{"axis", int64_t{-2}}});
  tensor out = run1(n, {a, b, c});
  REQUIRE(out.dims() == shape{2, 8, 4});
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 8; ++j)
      for (int64_t k = 0; k < 4; ++k) {
        const float want = j < 3 ? a.data<float>()[(i * 3 + j) * 4 + k]
                                 : c.data<float>()[(i * 5 + j - 3) * 4 + k];
        CHECK(out.data<float>()[(i * 8 + j) * 4 + k] == want);
      }
  tensor ints = run1(make_node("Concat", 2, 1, {{"axis", int64_t{0}}}),
                     {i64s({1, 2}), i64s({3})});
  CHECK(values_of<int64_t>(ints) == std::vector<int64_t>{1, 2, 3});
  check_error(run_op(n, {a, random_f32({3, 3, 4}), c}), errc::invalid_argument, n);
  node no_axis = make_node("Concat", 2, 1);
  check_error(run_op(no_axis, {a, c}), errc::invalid_argument, no_axis);
}

TEST_CASE("Split divides unevenly by sizes, equally by default, and by num_outputs") {
  tensor x = iota_f32({2, 7});
  node n = make_node("Split", 2, 3, {{"axis", int64_t{1}}});
  auto out = run_op(n, {x, i64s({2, 0, 5})});
  REQUIRE(out.has_value());
  CHECK(values_of<float>((*out)[0]) == std::vector<float>{0, 1, 7, 8});
  CHECK((*out)[1].dims() == shape{2, 0});
  CHECK(values_of<float>((*out)[2]) == std::vector<float>{2, 3, 4, 5, 6, 9, 10, 11, 12, 13});

  node old = make_node("Split", 1, 2, {{"axis", int64_t{1}}, {"split", std::vector<int64_t>{3, 4}}});
  auto old_out = run_op(old, {x}, true, 11);
  REQUIRE(old_out.has_value());
  CHECK(values_of<float>((*old_out)[0]) == std::vector<float>{0, 1, 2, 7, 8, 9});

  auto equal = run_op(make_node("Split", 1, 2), {x});
  REQUIRE(equal.has_value());
  CHECK(values_of<float>((*equal)[1]) == std::vector<float>{7, 8, 9, 10, 11, 12, 13});

  node parts = make_node("Split", 1, 3, {{"axis", int64_t{1}}, {"num_outputs", int64_t{3}}});
  auto uneven = run_op(parts, {x}, true, 18);
  REQUIRE(uneven.has_value());
  CHECK((*uneven)[0].dims() == shape{2, 3});
  CHECK(values_of<float>((*uneven)[2]) == std::vector<float>{6, 13});

  check_error(run_op(n, {x, i64s({2, 2, 2})}), errc::invalid_argument, n);
  node three = make_node("Split", 1, 3, {{"axis", int64_t{1}}});
  check_error(run_op(three, {x}), errc::invalid_argument, three);
}

TEST_CASE("Slice matches a naive loop for random starts, ends and positive or negative steps") {
  const shape dims{5, 6, 7};
  tensor x = iota_f32(dims);
  node n = make_node("Slice", 5, 1);
  std::uniform_int_distribution<int64_t> pos(-9, 9), step(-3, 3);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<int64_t> starts, ends, axes{2, 0, -2}, steps;
    for (int k = 0; k < 3; ++k) {
      starts.push_back(pos(rng()));
      ends.push_back(pos(rng()));
      int64_t s = 0;
      while (s == 0)
        s = step(rng());
      steps.push_back(s);
    }
    // Naive ONNX semantics: walk from the clamped start by step while before the end.
    std::vector<std::vector<int64_t>> picks(3);
    for (size_t i = 0; i < 3; ++i) {
      const size_t a = static_cast<size_t>(axes[i] < 0 ? axes[i] + 3 : axes[i]);
      const int64_t d = dims[a];
      int64_t s = starts[i] < 0 ? starts[i] + d : starts[i];
      int64_t e = ends[i] < 0 ? ends[i] + d : ends[i];
      std::vector<int64_t>& pick = picks[a];
      if (steps[i] > 0) {
        s = std::clamp<int64_t>(s, 0, d);
        e = std::clamp<int64_t>(e, 0, d);
        for (int64_t v = s; v < e; v += steps[i])
          pick.push_back(v);
      } else {
        s = std::clamp<int64_t>(s, 0, d - 1);
        e = std::clamp<int64_t>(e, -1, d - 1);
        for (int64_t v = s; v > e; v += steps[i])
          pick.push_back(v);
      }
    }
    tensor out = run1(n, {x, i64s(starts), i64s(ends), i64s(axes), i64s(steps)});
    const shape want{int64_t(picks[0].size()), int64_t(picks[1].size()), int64_t(picks[2].size())};
    REQUIRE(out.dims() == want);
    bool same = true;
    for (int64_t o = 0; o < out.numel(); ++o) {
      const auto at = unravel(o, want);
      const std::vector<int64_t> src{picks[0][size_t(at[0])], picks[1][size_t(at[1])],
                                     picks[2][size_t(at[2])]};
      same = same && out.data<float>()[o] == float(ravel(src, dims));
    }
    CHECK_MESSAGE(same, "starts " << to_string(starts) << " ends " << to_string(ends)
                                  << " steps " << to_string(steps));
  }
}

TEST_CASE("Slice reverses with INT64 bounds, takes attributes before opset 10, and rejects bad input") {
  tensor x = iota_f32({2, 4});
  node n = make_node("Slice", 5, 1);
  const int64_t big = std::numeric_limits<int64_t>::max();
  tensor rev = run1(n, {x, i64s({-1}), i64s({-big - 1}), i64s({1}), i64s({-1})});
  CHECK(values_of<float>(rev) == std::vector<float>{3, 2, 1, 0, 7, 6, 5, 4});
  node old = make_node("Slice", 1, 1,
                       {{"starts", std::vector<int64_t>{1}}, {"ends", std::vector<int64_t>{big}},
                        {"axes", std::vector<int64_t>{1}}});
  CHECK(values_of<float>(run1(old, {x}, 9)) == std::vector<float>{1, 2, 3, 5, 6, 7});
  node three = make_node("Slice", 3, 1);
  check_error(run_op(three, {x, i64s({0}), i64s({1})}, false), errc::unsupported, three);
  check_error(run_op(n, {x, i64s({0}), i64s({1}), i64s({0}), i64s({0})}),
              errc::invalid_argument, n);
  check_error(run_op(n, {x, i64s({0, 0}), i64s({1, 1}), i64s({1, 1}), i64s({1, 1})}),
              errc::invalid_argument, n);
}

TEST_CASE("Gather picks rows and columns with negative and int32 indices") {
  tensor x = random_f32({4, 3, 2});
  node rows = make_node("Gather", 2, 1);
  tensor idx = i64s({2, 2}, {3, -4, 0, -1});
  tensor out = run1(rows, {x, idx});
  REQUIRE(out.dims() == shape{2, 2, 3, 2});
  const int64_t picked[] = {3, 0, 0, 3};
  for (int64_t j = 0; j < 4; ++j)
    for (int64_t k = 0; k < 6; ++k)
      CHECK(out.data<float>()[j * 6 + k] == x.data<float>()[picked[j] * 6 + k]);

  node cols = make_node("Gather", 2, 1, {{"axis", int64_t{1}}});
  std::vector<int32_t> idx32{-1, 1};
  tensor out1 = run1(cols, {x, tensor::from_vector<int32_t>({2}, idx32)});
  REQUIRE(out1.dims() == shape{4, 2, 2});
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t k = 0; k < 2; ++k)
        CHECK(out1.data<float>()[(i * 2 + j) * 2 + k] ==
              x.data<float>()[(i * 3 + (j == 0 ? 2 : 1)) * 2 + k]);

  // Scalar index on the last axis drops it; int64 data gathers by element.
  node last = make_node("Gather", 2, 1, {{"axis", int64_t{-1}}});
  tensor ints = i64s({2, 3}, {10, 11, 12, 20, 21, 22});
  tensor col = run1(last, {ints, tensor::scalar<int64_t>(-2)});
  CHECK(col.dims() == shape{2});
  CHECK(values_of<int64_t>(col) == std::vector<int64_t>{11, 21});
}

TEST_CASE("Gather with an out-of-range index at run time returns out_of_range") {
  node n = make_node("Gather", 2, 1);
  tensor x = random_f32({4, 8});
  auto built = build(n, {x, i64s({1, 2})}, 17, false);
  REQUIRE(built.has_value());
  std::vector<tensor> outs{tensor::empty(dtype::f32, {2, 8})};
  cpu::cpu_context cpu;
  exec_context ctx{cpu};
  for (int64_t bad : {int64_t{4}, int64_t{-5}, std::numeric_limits<int64_t>::min()}) {
    std::vector<tensor> inputs{x, i64s({1, bad})};
    status st = built->kernel->run(ctx, inputs, outs);
    CHECK(st.code() == errc::out_of_range);
    CHECK(st.message().find(n.label()) != std::string::npos);
  }
  std::vector<tensor> good{x, i64s({3, -4})};
  CHECK(built->kernel->run(ctx, good, outs).is_ok());
  CHECK(outs[0].data<float>()[8] == x.data<float>()[0]);
  node bad_type = make_node("Gather", 2, 1);
  check_error(run_op(bad_type, {x, random_f32({2})}), errc::invalid_argument, bad_type);
}

TEST_CASE("GatherElements reads each element at its index along the axis") {
  tensor x = i64s({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9});
  node n = make_node("GatherElements", 2, 1, {{"axis", int64_t{0}}});
  tensor out = run1(n, {x, i64s({2, 3}, {1, 2, 0, 2, -3, 1})});
  CHECK(values_of<int64_t>(out) == std::vector<int64_t>{4, 8, 3, 7, 2, 6});
  node cols = make_node("GatherElements", 2, 1, {{"axis", int64_t{1}}});
  tensor out1 = run1(cols, {x, i64s({3, 1}, {2, 0, -1})});
  CHECK(values_of<int64_t>(out1) == std::vector<int64_t>{3, 4, 9});
  check_error(run_op(n, {x, i64s({1, 1}, {3})}), errc::out_of_range, n);
}

TEST_CASE("Expand broadcasts both ways and Tile repeats along each axis") {
  tensor x = random_f32({3, 1});
  tensor out = run1(make_node("Expand", 2, 1), {x, i64s({2, 1, 4})});
  REQUIRE(out.dims() == shape{2, 3, 4});
  for (int64_t o = 0; o < out.numel(); ++o)
    CHECK(out.data<float>()[o] == x.data<float>()[(o / 4) % 3]);
  node expand = make_node("Expand", 2, 1);
  check_error(run_op(expand, {x, i64s({2, 4})}), errc::invalid_argument, expand);

  tensor y = random_f32({2, 3});
  tensor tiled = run1(make_node("Tile", 2, 1), {y, i64s({2, 3})});
  REQUIRE(tiled.dims() == shape{4, 9});
  for (int64_t i = 0; i < 4; ++i)
    for (int64_t j = 0; j < 9; ++j)
      CHECK(tiled.data<float>()[i * 9 + j] == y.data<float>()[(i % 2) * 3 + j % 3]);
  node tile = make_node("Tile", 2, 1);
  check_error(run_op(tile, {y, i64s({2})}), errc::invalid_argument, tile);
}

TEST_CASE("Pad reflects, repeats edges, fills constants and crops with negative pads") {
  std::vector<float> v{1.0f, 1.2f, 2.3f, 3.4f, 4.5f, 5.7f};
  tensor x = tensor::from_vector<float>({3, 2}, v);
  node reflect = make_node("Pad", 2, 1, {{"mode", std::string{"reflect"}}});
  CHECK(values_of<float>(run1(reflect, {x, i64s({0, 2, 0, 0})})) ==
        std::vector<float>{1.0f, 1.2f, 1.0f, 1.2f, 2.3f, 3.4f, 2.3f, 3.4f, 4.5f, 5.7f, 4.5f, 5.7f});
  tensor y = iota_f32({3, 3});
  CHECK(values_of<float>(run1(reflect, {y, i64s({1, 1, 1, 0})})) ==
        std::vector<float>{4, 3, 4, 5, 1, 0, 1, 2, 4, 3, 4, 5, 7, 6, 7, 8, 4, 3, 4, 5});

  node edge = make_node("Pad", 2, 1, {{"mode", std::string{"edge"}}});
  CHECK(values_of<float>(run1(edge, {y, i64s({0, 1, 0, 2})})) ==
        std::vector<float>{0, 0, 1, 2, 2, 2, 3, 3, 4, 5, 5, 5, 6, 6, 7, 8, 8, 8});

  node constant = make_node("Pad", 3, 1);
  CHECK(values_of<float>(run1(constant, {y, i64s({-1, 1, 0, -1}), tensor::scalar(9.5f)})) ==
        std::vector<float>{9.5f, 3, 4, 9.5f, 6, 7});
  tensor ints = i64s({2, 2}, {1, 2, 3, 4});
  node old = make_node("Pad", 1, 1, {{"pads", std::vector<int64_t>{1, 0, 0, 1}}, {"value", 5.0f}});
  CHECK(values_of<int64_t>(run1(old, {ints}, 10)) == std::vector<int64_t>{5, 5, 5, 1, 2, 5, 3, 4, 5});

  check_error(run_op(constant, {y, i64s({0, 0, -4, 0}), tensor::scalar(0.0f)}),
              errc::invalid_argument, constant);
  check_error(run_op(constant, {y, i64s({0, 0, 0})}), errc::invalid_argument, constant);
  node wrap = make_node("Pad", 2, 1, {{"mode", std::string{"wrap"}}});
  check_error(run_op(wrap, {y, i64s({0, 0, 0, 0})}), errc::unsupported, wrap);
}

TEST_CASE("shape operators pass ONNX's node tests") {
  const std::filesystem::path root{"/usr/share/libonnx-testdata/data/node"};
  if (!std::filesystem::exists(root))
    return;
  const std::vector<std::string> prefixes{
      "test_reshape", "test_flatten", "test_squeeze", "test_unsqueeze", "test_identity",
      "test_dropout_default", "test_shape", "test_size", "test_constant", "test_range",
      "test_transpose", "test_concat", "test_split", "test_slice", "test_gather_",
      "test_expand", "test_tile", "test_edge_pad", "test_reflect_pad"};
  // Optional and sequence values are not tensors.
  const std::vector<std::string> skipped{"test_identity_opt", "test_identity_sequence"};
  int checked = 0;
  for (const auto& entry : std::filesystem::directory_iterator(root)) {
    const std::string name = entry.path().filename().string();
    auto starts = [&](const std::string& p) { return name.rfind(p, 0) == 0; };
    if (std::none_of(prefixes.begin(), prefixes.end(), starts) ||
        std::any_of(skipped.begin(), skipped.end(), starts) ||
        name.find("_expanded") != std::string::npos)
      continue;
    CAPTURE(name);
    auto g = load_onnx((entry.path() / "model.onnx").string());
    REQUIRE_MESSAGE(g.has_value(), g.error().to_string());
    REQUIRE(g->nodes.size() == 1);
    const node& n = g->nodes[0];
    std::map<std::string, tensor> values{g->initializers.begin(), g->initializers.end()};
    const auto data = entry.path() / "test_data_set_0";
    for (size_t i = 0; i < g->inputs.size(); ++i) {
      auto t = load_tensor_pb((data / ("input_" + std::to_string(i) + ".pb")).string());
      REQUIRE(t.has_value());
      values[g->inputs[i].name] = *t;
    }
    std::vector<tensor> inputs;
    for (const auto& in : n.inputs)
      inputs.push_back(in.empty() ? tensor{} : values.at(in));
    auto out = run_op(n, inputs, true, g->opset);
    REQUIRE_MESSAGE(out.has_value(), out.error().to_string());
    REQUIRE(out->size() == g->outputs.size());
    for (size_t j = 0; j < out->size(); ++j) {
      auto want = load_tensor_pb((data / ("output_" + std::to_string(j) + ".pb")).string());
      REQUIRE(want.has_value());
      const tensor& got = (*out)[j];
      CHECK_MESSAGE((bitwise_equal(got, *want) ||
                     (got.type() == dtype::f32 && got.dims() == want->dims() &&
                      relative_error(got, *want) < 1e-6)),
                    "output " << j);
    }
    ++checked;
  }
  CHECK(checked > 80);
}
