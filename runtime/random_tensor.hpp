// random_tensor: inputs for benchmarks and smoke runs, shaped from a model's declared inputs.
#pragma once

#include <random>

#include "runtime/graph.hpp"

namespace troupe {

/// Uniform values in [-1, 1) for floats, [0, 10) for integers, coin flips for bool.
tensor random_tensor(dtype type, const shape& dims, std::mt19937_64& rng);

/// Concrete dims for a declared input: dynamic dims take `batch` for the first dimension
/// and 1 elsewhere.
shape concrete_dims(const value_info& info, int64_t batch);

} // namespace troupe
