// broadcast_plan: how elementwise ops walk numpy-broadcast operands in runs, and split work over threads.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <span>
#include <vector>

#include <omp.h>

#include "kernels/shape.hpp"

namespace troupe::cpu {

constexpr int max_operands = 3;

/// The output is walked as `outer` runs of `inner` contiguous elements. Inside a run each
/// operand either advances with the output (step 1) or repeats one value (step 0); between
/// runs each operand moves by its own strides over the collapsed outer dims. Same-shape,
/// scalar, row (a [C] operand over [N,C]) and column ([N,1] over [N,C]) broadcasts all become
/// a few long runs, so the per-run loops are the only hot code.
struct broadcast_plan {
  int operands = 0;
  int64_t total = 0; // output elements
  int64_t inner = 1; // elements per run
  std::array<bool, max_operands> inner_step{};
  shape outer_dims; // outermost first
  std::array<std::vector<int64_t>, max_operands> outer_strides;
};

/// Plans `out = f(inputs...)` where every input broadcasts to `out_dims` (numpy rules); an
/// error names the shapes when one does not.
expected<broadcast_plan> plan_broadcast(std::span<const int64_t> out_dims,
                                        std::span<const shape> inputs);

/// Output elements below which threading costs more than it saves.
constexpr int64_t parallel_grain = 32768;

/// Splits [0, n) over the calling thread's OpenMP threads when n is large.
template <class F>
void parallel_ranges(int64_t n, F&& f) {
  const int64_t chunks = std::min<int64_t>(omp_get_max_threads(), n / parallel_grain);
  if (chunks <= 1) {
    f(int64_t{0}, n);
    return;
  }
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
  for (int64_t c = 0; c < chunks; ++c)
    f(n * c / chunks, n * (c + 1) / chunks);
}

/// Calls `run(out_offset, in_offsets, length)` for every run (or piece of a long run), spread
/// over the OpenMP threads of the calling thread when the output is large.
template <class F>
void for_each_run(const broadcast_plan& p, F&& run) {
  if (p.total == 0)
    return;
  const int n_ops = p.operands;
  const int64_t runs = p.total / p.inner;
  const int64_t chunks = std::min<int64_t>(omp_get_max_threads(), p.total / parallel_grain);
  if (runs == 1) {
    // One long run: split it into pieces, each operand offset by the piece start if it steps.
    auto piece = [&](int64_t begin, int64_t end) {
      std::array<int64_t, max_operands> offs{};
      for (int k = 0; k < n_ops; ++k)
        offs[static_cast<size_t>(k)] = p.inner_step[static_cast<size_t>(k)] ? begin : 0;
      run(begin, offs.data(), end - begin);
    };
    if (chunks <= 1) {
      piece(0, p.total);
      return;
    }
#pragma omp parallel for num_threads(static_cast<int>(chunks)) schedule(static)
    for (int64_t c = 0; c < chunks; ++c)
      piece(p.total * c / chunks, p.total * (c + 1) / chunks);
    return;
  }
  // Runs [first, last): decode the first run's multi-index once, then step like an odometer.
  auto span_of_runs = [&](int64_t first, int64_t last) {
    const size_t rank = p.outer_dims.size();
    std::vector<int64_t> index(rank);
    std::array<int64_t, max_operands> offs{};
    int64_t rest = first;
    for (size_t d = rank; d-- > 0;) {
      index[d] = rest % p.outer_dims[d];
      rest /= p.outer_dims[d];
      for (int k = 0; k < n_ops; ++k)
        offs[static_cast<size_t>(k)] += index[d] * p.outer_strides[static_cast<size_t>(k)][d];
    }
    for (int64_t r = first; r < last; ++r) {
      run(r * p.inner, offs.data(), p.inner);
      for (size_t d = rank; d-- > 0;) {
        for (int k = 0; k < n_ops; ++k)
          offs[static_cast<size_t>(k)] += p.outer_strides[static_cast<size_t>(k)][d];
        if (++index[d] < p.outer_dims[d])
          break;
        for (int k = 0; k < n_ops; ++k)
          offs[static_cast<size_t>(k)] -= index[d] * p.outer_strides[static_cast<size_t>(k)][d];
        index[d] = 0;
      }
    }
  };
  const int64_t tasks = std::min(chunks, runs);
  if (tasks <= 1) {
    span_of_runs(0, runs);
    return;
  }
#pragma omp parallel for num_threads(static_cast<int>(tasks)) schedule(static)
  for (int64_t c = 0; c < tasks; ++c)
    span_of_runs(runs * c / tasks, runs * (c + 1) / tasks);
}

} // namespace troupe::cpu
