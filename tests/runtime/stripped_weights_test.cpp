// stripped_weights_test: initializers stripped by tools/strip_weights.py load as random values
// of their recorded statistics only when asked to, the same values every time; malformed or
// hostile entries are errors.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include <fmt/format.h>
#include <onnx/onnx_pb.h>

#include "kernels/cpu/cast.hpp"
#include "runtime/onnx_import.hpp"
#include "runtime/stripped_weights.hpp"

using namespace troupe;

namespace {

/// Sets TROUPE_RANDOM_WEIGHTS for one test and restores its absence after.
struct random_weights_allowed {
  explicit random_weights_allowed(const char* value = "1") { setenv(random_weights_env, value, 1); }
  ~random_weights_allowed() { unsetenv(random_weights_env); }
};

onnx::TensorProto stripped(const std::string& name, int type, std::vector<int64_t> dims,
                           const std::string& mean, const std::string& std_dev) {
  onnx::TensorProto p;
  p.set_name(name);
  p.set_data_type(type);
  for (int64_t d : dims)
    p.add_dims(d);
  p.set_data_location(onnx::TensorProto::EXTERNAL);
  for (auto [key, value] : {std::pair<std::string, std::string>{"location", "troupe:random"},
                            {"mean", mean}, {"std", std_dev}}) {
    auto* e = p.add_external_data();
    e->set_key(key);
    e->set_value(value);
  }
  return p;
}

struct moments {
  double mean = 0, stddev = 0, low = 1e300, high = -1e300;
};

moments moments_of(const std::vector<double>& xs) {
  moments m;
  for (double x : xs) {
    m.mean += x;
    m.low = std::min(m.low, x);
    m.high = std::max(m.high, x);
  }
  m.mean /= static_cast<double>(xs.size());
  for (double x : xs)
    m.stddev += (x - m.mean) * (x - m.mean);
  m.stddev = std::sqrt(m.stddev / static_cast<double>(xs.size()));
  return m;
}

} // namespace

TEST_CASE("a stripped initializer does not load unless TROUPE_RANDOM_WEIGHTS=1") {
  unsetenv(random_weights_env);
  auto t = tensor_from_onnx(stripped("conv.weight", onnx::TensorProto::FLOAT, {8, 4}, "0", "1"));
  REQUIRE_FALSE(t);
  CHECK(t.error().code() == errc::unavailable);
  CHECK(t.error().message().find("'conv.weight'") != std::string::npos);
  CHECK(t.error().message().find("TROUPE_RANDOM_WEIGHTS=1") != std::string::npos);
  random_weights_allowed other{"yes"};
  CHECK_FALSE(tensor_from_onnx(stripped("w", onnx::TensorProto::FLOAT, {2}, "0", "1")));
}

TEST_CASE("stripped float32 and float16 initializers come back with their recorded mean and "
          "std, the same values on every load and different ones per name") {
  random_weights_allowed allow;
  std::mt19937 rng(std::random_device{}());
  const double mean = std::uniform_real_distribution<double>(-0.5, 0.5)(rng);
  const double std_dev = std::uniform_real_distribution<double>(0.01, 0.2)(rng);
  const auto text = [](double x) { return fmt::format("{:.17g}", x); };
  for (int type : {onnx::TensorProto::FLOAT, onnx::TensorProto::FLOAT16}) {
    CAPTURE(type);
    auto proto = stripped("layer1.0.conv1.weight", type, {64, 64, 3, 3}, text(mean), text(std_dev));
    auto a = tensor_from_onnx(proto);
    REQUIRE_MESSAGE(a, (a ? "" : a.error().to_string()));
    CHECK(a->dims() == shape{64, 64, 3, 3});
    std::vector<double> xs;
    for (int64_t i = 0; i < a->numel(); ++i)
      xs.push_back(type == onnx::TensorProto::FLOAT
                       ? a->data<float>()[i]
                       : cpu::half_to_float(a->data<uint16_t>()[i]));
    CHECK(a->type() == (type == onnx::TensorProto::FLOAT ? dtype::f32 : dtype::f16));
    const auto m = moments_of(xs);
    // 36864 uniform values: the sample moments are within a few percent of the recorded ones.
    CHECK(std::abs(m.mean - mean) < 0.02 * std_dev + 1e-3 * std::abs(mean));
    CHECK(std::abs(m.stddev - std_dev) < 0.03 * std_dev);
    const double half_width = std::sqrt(3.0) * std_dev;
    CHECK(m.low >= mean - half_width * 1.001 - 1e-3 * std::abs(mean));
    CHECK(m.high <= mean + half_width * 1.001 + 1e-3 * std::abs(mean));

    auto again = tensor_from_onnx(proto);
    REQUIRE(again);
    CHECK(std::memcmp(again->raw(), a->raw(), a->nbytes()) == 0);
    proto.set_name("layer1.0.conv2.weight");
    auto other = tensor_from_onnx(proto);
    REQUIRE(other);
    CHECK(std::memcmp(other->raw(), a->raw(), a->nbytes()) != 0);
  }
}

TEST_CASE("malformed stripped initializers are errors that name them, before allocating") {
  random_weights_allowed allow;
  auto code_of = [](const onnx::TensorProto& p) {
    auto t = tensor_from_onnx(p);
    REQUIRE_FALSE(t);
    CHECK(t.error().message().find("'w'") != std::string::npos);
    return t.error().code();
  };
  CHECK(code_of(stripped("w", onnx::TensorProto::FLOAT, {4}, "0", "fast")) == errc::parse_error);
  CHECK(code_of(stripped("w", onnx::TensorProto::FLOAT, {4}, "0", "-1")) == errc::parse_error);
  CHECK(code_of(stripped("w", onnx::TensorProto::FLOAT, {4}, "nan", "1")) == errc::parse_error);
  CHECK(code_of(stripped("w", onnx::TensorProto::INT64, {4}, "0", "1")) == errc::unsupported);
  // 4 TiB promised by a file of a few bytes.
  CHECK(code_of(stripped("w", onnx::TensorProto::FLOAT, {int64_t{1} << 20, int64_t{1} << 20},
                         "0", "1")) == errc::resource_exhausted);
  auto no_std = stripped("w", onnx::TensorProto::FLOAT, {4}, "0", "1");
  no_std.mutable_external_data()->RemoveLast();
  CHECK(code_of(no_std) == errc::parse_error);
  auto elsewhere = stripped("w", onnx::TensorProto::FLOAT, {4}, "0", "1");
  elsewhere.mutable_external_data(0)->set_value("weights.bin");
  CHECK(code_of(elsewhere) == errc::unsupported);
}
