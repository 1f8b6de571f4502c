// stripped_weights: initializers that tools/strip_weights.py took out of a model file (so the
// GPU bundle can carry ResNet-50 under its size limit), filled back with random values.
#pragma once

#include <string>

#include "kernels/tensor.hpp"

namespace troupe {

/// The external-data location that marks a stripped initializer; its other entries record the
/// mean and standard deviation of the values it had ("mean", "std").
inline constexpr const char* stripped_weights_location = "troupe:random";
/// Must be "1" for stripped initializers to load: a model whose weights are random gives
/// meaningless answers, so only benchmarks and backend comparisons ask for it.
inline constexpr const char* random_weights_env = "TROUPE_RANDOM_WEIGHTS";

struct stripped_values {
  std::string name;
  dtype type = dtype::f32;
  shape dims;
  double mean = 0;
  double stddev = 0;
};

/// Uniform values of the recorded mean and standard deviation, from a generator seeded by
/// the name (every load gives the same tensor, so CPU and GPU sessions of one file agree).
/// Floating-point types only; `unavailable` unless TROUPE_RANDOM_WEIGHTS=1.
expected<tensor> fill_stripped(const stripped_values& what);

} // namespace troupe
