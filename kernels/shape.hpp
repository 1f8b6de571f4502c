// shape: tensor dimensions and overflow-checked size arithmetic.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kernels/status.hpp"

namespace troupe {

using shape = std::vector<int64_t>;

/// Product of the dimensions; an error when a dimension is negative or the product
/// overflows int64 (a shape from a user or a file is never trusted).
expected<int64_t> checked_numel(std::span<const int64_t> dims);

/// checked_numel(dims) * element_size, overflow-checked.
expected<int64_t> checked_bytes(std::span<const int64_t> dims, size_t element_size);

/// Product of dims that are known valid (no checks).
int64_t numel_of(std::span<const int64_t> dims);

/// "[8,3,224,224]"
std::string to_string(std::span<const int64_t> dims);

/// Row-major strides in elements (0 where an empty tensor's strides would overflow).
std::vector<int64_t> strides_of(std::span<const int64_t> dims);

/// Numpy-style broadcast of two shapes; an error names both shapes when they are incompatible.
expected<shape> broadcast_shapes(std::span<const int64_t> a, std::span<const int64_t> b);

/// Normalizes a possibly negative axis for a tensor of `rank` dims; error when out of range.
expected<int64_t> normalize_axis(int64_t axis, int64_t rank);

} // namespace troupe
