// copy_strided: byte-exact copies between strided views (slices, transposes, broadcasts, concats).
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>

namespace troupe::cpu {

/// dst[i] = src[i] for every index i of `dims`. Strides are in elements; src strides may be
/// negative (reversed views) or zero (broadcast). Elements are `elem_size` bytes and copied
/// bitwise. Adjacent dimensions that stay in order are merged, contiguous runs are copied
/// with memcpy, and a transposed innermost pair is copied in cache-sized tiles. The buffers
/// must not overlap.
void copy_strided(size_t elem_size, std::span<const int64_t> dims, void* dst,
                  std::span<const int64_t> dst_strides, const void* src,
                  std::span<const int64_t> src_strides);

/// Row-major `out` = `in` (row-major, `in_dims`) with its dimensions permuted: output
/// dimension k is input dimension perm[k]. `perm` must be a valid permutation.
void transpose(size_t elem_size, std::span<const int64_t> in_dims,
               std::span<const int64_t> perm, const void* in, void* out);

/// Writes `count` copies of the `elem_size`-byte element at `value` to `dst`.
void fill_elements(void* dst, int64_t count, const void* value, size_t elem_size);

} // namespace troupe::cpu
