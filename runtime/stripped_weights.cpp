// stripped_weights: random values for initializers stripped from a model file.
#include "runtime/stripped_weights.hpp"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <random>

#include "kernels/cpu/cast.hpp"

namespace troupe {

namespace {

/// FNV-1a: a seed that does not depend on the standard library's std::hash.
uint64_t seed_of(const std::string& name) {
  uint64_t h = 14695981039346656037ull;
  for (unsigned char c : name) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

bool random_weights_allowed() {
  const char* v = std::getenv(random_weights_env);
  return v && std::strcmp(v, "1") == 0;
}

} // namespace

expected<tensor> fill_stripped(const stripped_values& what) {
  if (!random_weights_allowed())
    return make_error(errc::unavailable,
                      "its values were stripped (tools/strip_weights.py) and are only filled "
                      "with random ones when {}=1 (benchmarks and backend comparisons)",
                      random_weights_env);
  if (!std::isfinite(what.mean) || !std::isfinite(what.stddev) || what.stddev < 0)
    return make_error(errc::parse_error, "the recorded mean {} and std {} are not usable",
                      what.mean, what.stddev);
  if (what.type != dtype::f32 && what.type != dtype::f16 && what.type != dtype::bf16)
    return make_error(errc::unsupported, "only float32, float16 and bfloat16 values are filled "
                      "at random, not {}", to_string(what.type));
  for (int64_t d : what.dims)
    if (d < 0)
      return make_error(errc::parse_error, "negative dim in {}", to_string(what.dims));
  // Uniform on [mean - a, mean + a] has standard deviation a / sqrt(3).
  const double half_width = what.stddev * std::sqrt(3.0);
  std::mt19937_64 rng{seed_of(what.name)};
  std::uniform_real_distribution<float> dist(static_cast<float>(what.mean - half_width),
                                             static_cast<float>(what.mean + half_width));
  tensor values = tensor::empty(dtype::f32, what.dims);
  for (float& v : values.values<float>())
    v = dist(rng);
  if (what.type == dtype::f32)
    return values;
  tensor narrow = tensor::empty(what.type, what.dims);
  cpu::cast(dtype::f32, values.raw(), what.type, narrow.raw(), values.numel());
  return narrow;
}

} // namespace troupe
