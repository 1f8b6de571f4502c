// gather: index-driven copies of rows (Gather, embeddings) and of single elements (GatherElements).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace troupe::cpu {

/// Row gather: the data is [outer, axis_dim, block_bytes] and the output is
/// [outer, indices.size(), block_bytes] with out[o, j] = data[o, indices[j]]. Indices must
/// already be in [0, axis_dim).
void gather_blocks(const void* data, int64_t outer, int64_t axis_dim, size_t block_bytes,
                   std::span<const int64_t> indices, void* out);

/// Element gather: out has `index_dims` and out[i] = data[i with coordinate `axis` replaced
/// by indices[i]] (indices row-major over index_dims, already in range for data_dims[axis]).
/// Every other coordinate of index_dims must be within data_dims; elem_size is 1, 2, 4 or 8.
void gather_elements(size_t elem_size, const void* data, std::span<const int64_t> data_dims,
                     std::span<const int64_t> indices, std::span<const int64_t> index_dims,
                     size_t axis, void* out);

} // namespace troupe::cpu
