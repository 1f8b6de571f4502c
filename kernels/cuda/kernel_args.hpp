// kernel_args: what host code hands the CUDA kernels by value (index walks, op codes, row
// geometry). Free of fmt and status so .cu files can include it: nvcc cannot compile fmt's
// compile-time format checks.
#pragma once

#include <cstdint>

#if defined(__CUDACC__)
#define TROUPE_HOST_DEVICE __host__ __device__
#else
#define TROUPE_HOST_DEVICE
#endif

namespace troupe::cuda {

/// Highest rank a kernel walks after size-1 dims are dropped and mergeable dims collapsed.
constexpr int max_rank = 6;

/// An index space (dims, outermost first) and how far one step along each dim moves in one
/// or two operands, in elements. A flat output index i is decoded innermost dim first.
struct strided_walk {
  int rank = 0;
  int64_t total = 1; // product of dims
  int64_t dims[max_rank] = {};
  int64_t strides[2][max_rank] = {};

  /// Element offsets of flat index i into operand 0 and 1.
  TROUPE_HOST_DEVICE void offsets(int64_t i, int64_t& a, int64_t& b) const {
    a = 0;
    b = 0;
    for (int d = rank - 1; d >= 0; --d) {
      const int64_t q = i / dims[d];
      const int64_t idx = i - q * dims[d];
      a += idx * strides[0][d];
      b += idx * strides[1][d];
      i = q;
    }
  }
};

enum class binary_op : int { add, sub, mul, div, pow, max, min };

enum class unary_op : int {
  relu, sigmoid, tanh, exp, log, sqrt, neg, abs,
  clip,      // min(max(x, lo), hi)
  erf,
  gelu_erf,  // x/2 (1 + erf(x/sqrt 2))
  gelu_tanh, // x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))
};

enum class reduce_op : int { sum, mean, max };

struct row_plan {
  int64_t rows = 1, cols = 1;
};

/// Block shape of the row kernels: `threads` per row and rows per block.
struct row_blocks {
  int threads = 32, rows_per_block = 8;
};
row_blocks row_blocks_for(int64_t cols);

/// Threads cooperating on one row or reduction: a power of two in [32, 512] near n / 4.
int group_threads(int64_t n);

} // namespace troupe::cuda
