// reduce: multi-axis reductions as a sequence of [outer, r, inner] passes.
#include "kernels/cpu/reduce.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

namespace troupe::cpu {
namespace {

constexpr int64_t inner_block = 256;   // columns one task reduces when inner > 1
constexpr int64_t parallel_work = 1 << 16;

template <class T>
T lowest() {
  return std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                              : std::numeric_limits<T>::lowest();
}

template <class T>
T highest() {
  return std::numeric_limits<T>::has_infinity ? std::numeric_limits<T>::infinity()
                                              : std::numeric_limits<T>::max();
}

/// Reduces the middle dim of [outer, r, inner] into [outer, inner]: dst = fold(combine,
/// identity, map(x)). Rows (inner == 1) use 8 independent lanes so the loop vectorizes.
template <class T, class Map, class Combine>
void reduce_pass(const T* src, T* dst, int64_t outer, int64_t r, int64_t inner, T identity,
                 Map map, Combine combine) {
  const int64_t blocks = inner == 1 ? 1 : (inner + inner_block - 1) / inner_block;
  const int64_t tasks = outer * blocks;
#pragma omp parallel for if (outer * r * inner >= parallel_work && tasks > 1)
  for (int64_t t = 0; t < tasks; ++t) {
    const int64_t o = t / blocks;
    if (inner == 1) {
      const T* row = src + o * r;
      T lanes[8];
      std::fill(lanes, lanes + 8, identity);
      int64_t i = 0;
      for (; i + 8 <= r; i += 8)
        for (int l = 0; l < 8; ++l)
          lanes[l] = combine(lanes[l], map(row[i + l]));
      T acc = identity;
      for (int l = 0; l < 8; ++l)
        acc = combine(acc, lanes[l]);
      for (; i < r; ++i)
        acc = combine(acc, map(row[i]));
      dst[o] = acc;
    } else {
      const int64_t i0 = (t % blocks) * inner_block, i1 = std::min(inner, i0 + inner_block);
      T* acc = dst + o * inner;
      std::fill(acc + i0, acc + i1, identity);
      for (int64_t k = 0; k < r; ++k) {
        const T* row = src + (o * r + k) * inner;
        for (int64_t i = i0; i < i1; ++i)
          acc[i] = combine(acc[i], map(row[i]));
      }
    }
  }
}

/// log(sum(exp(x))) along the middle dim, shifted by the maximum so exp never overflows.
/// Applying it pass after pass is exact: lse over two axes is lse of the inner lse.
template <class T>
void log_sum_exp_pass(const T* src, T* dst, int64_t outer, int64_t r, int64_t inner) {
  auto larger = [](T a, T b) { return ((a > b) | (a != a)) ? a : b; };
  reduce_pass(src, dst, outer, r, inner, lowest<T>(), [](T x) { return x; }, larger);
#pragma omp parallel for if (outer * r * inner >= parallel_work && outer > 1)
  for (int64_t o = 0; o < outer; ++o) {
    T* mx = dst + o * inner;
    // Sums live in a block-sized buffer so a row reduction (inner == 1) allocates nothing.
    for (int64_t i0 = 0; i0 < inner; i0 += inner_block) {
      const int64_t width = std::min(inner_block, inner - i0);
      T sum[inner_block] = {};
      for (int64_t k = 0; k < r; ++k) {
        const T* row = src + (o * r + k) * inner + i0;
        for (int64_t i = 0; i < width; ++i)
          sum[i] += std::exp(row[i] - mx[i0 + i]);
      }
      for (int64_t i = 0; i < width; ++i)
        if (std::isfinite(mx[i0 + i])) // -inf: empty or all -inf; +inf and NaN stay
          mx[i0 + i] += std::log(sum[i]);
    }
  }
}

template <class T>
void run_pass(reduce_kind kind, bool first, const T* src, T* dst, int64_t outer, int64_t r,
              int64_t inner) {
  auto identity_map = [](T x) { return x; };
  auto plus = [](T a, T b) { return a + b; };
  switch (kind) {
  case reduce_kind::sum:
  case reduce_kind::mean:
  case reduce_kind::log_sum:
    reduce_pass(src, dst, outer, r, inner, T(0), identity_map, plus);
    return;
  case reduce_kind::sum_square:
  case reduce_kind::l2:
    if (first)
      reduce_pass(src, dst, outer, r, inner, T(0), [](T x) { return x * x; }, plus);
    else
      reduce_pass(src, dst, outer, r, inner, T(0), identity_map, plus);
    return;
  case reduce_kind::l1:
    if (first)
      reduce_pass(src, dst, outer, r, inner, T(0), [](T x) { return x < T(0) ? -x : x; }, plus);
    else
      reduce_pass(src, dst, outer, r, inner, T(0), identity_map, plus);
    return;
  case reduce_kind::max:
    // NaN wins, as in numpy; `|` instead of `||` keeps the select branch-free (vectorized).
    reduce_pass(src, dst, outer, r, inner, lowest<T>(), identity_map,
                [](T a, T b) { return ((a > b) | (a != a)) ? a : b; });
    return;
  case reduce_kind::min:
    reduce_pass(src, dst, outer, r, inner, highest<T>(), identity_map,
                [](T a, T b) { return ((a < b) | (a != a)) ? a : b; });
    return;
  case reduce_kind::prod:
    reduce_pass(src, dst, outer, r, inner, T(1), identity_map, [](T a, T b) { return a * b; });
    return;
  case reduce_kind::log_sum_exp:
    if constexpr (std::is_floating_point_v<T>)
      log_sum_exp_pass(src, dst, outer, r, inner);
    return;
  }
}

template <class T>
void finish(reduce_kind kind, T* dst, int64_t n, int64_t count) {
  if (kind == reduce_kind::mean) {
    for (int64_t i = 0; i < n; ++i) {
      if constexpr (std::is_floating_point_v<T>)
        dst[i] /= static_cast<T>(count); // 0/0 gives NaN, the mean of nothing
      else
        dst[i] = count == 0 ? T(0) : static_cast<T>(dst[i] / count);
    }
  }
  if constexpr (std::is_floating_point_v<T>) {
    if (kind == reduce_kind::l2)
      for (int64_t i = 0; i < n; ++i)
        dst[i] = std::sqrt(dst[i]);
    if (kind == reduce_kind::log_sum)
      for (int64_t i = 0; i < n; ++i)
        dst[i] = std::log(dst[i]);
  }
}

} // namespace

bool reduce_supports_integers(reduce_kind kind) {
  return kind == reduce_kind::sum || kind == reduce_kind::mean || kind == reduce_kind::max ||
         kind == reduce_kind::min || kind == reduce_kind::prod;
}

reduce_op::reduce_op(std::span<const int64_t> dims, const std::vector<bool>& reduced,
                     reduce_kind kind)
  : kind_(kind) {
  for (size_t i = 0; i < dims.size(); ++i) {
    if (reduced[i])
      count_ *= dims[i];
    else
      out_numel_ *= dims[i];
    if (dims[i] == 1)
      continue; // a unit dim changes neither the layout nor the result
    if (!groups_.empty() && group_reduced_.back() == reduced[i]) {
      groups_.back() *= dims[i];
    } else {
      groups_.push_back(dims[i]);
      group_reduced_.push_back(reduced[i]);
    }
  }
  // Nothing left to fold: one pass over r = 1 still applies map and finish.
  if (std::find(group_reduced_.begin(), group_reduced_.end(), true) == group_reduced_.end()) {
    groups_.push_back(1);
    group_reduced_.push_back(true);
  }
  const auto passes = std::count(group_reduced_.begin(), group_reduced_.end(), true);
  if (passes > 1) {
    // The first pass leaves the largest intermediate; later ones only shrink it.
    int64_t first = 1;
    bool seen = false;
    for (size_t g = groups_.size(); g-- > 0;) {
      if (group_reduced_[g] && !seen)
        seen = true;
      else
        first *= groups_[g];
    }
    scratch_half_ = static_cast<size_t>(first) * sizeof(int64_t);
    scratch_.resize(2 * scratch_half_);
  }
}

template <class T>
void reduce_op::run(const T* src, T* dst) {
  std::vector<int64_t> cur = groups_;
  const T* in = src;
  bool first = true;
  int buffer = 0;
  for (size_t g = cur.size(); g-- > 0;) {
    if (!group_reduced_[g])
      continue;
    int64_t outer = 1, inner = 1;
    for (size_t i = 0; i < g; ++i)
      outer *= cur[i];
    for (size_t i = g + 1; i < cur.size(); ++i)
      inner *= cur[i];
    const bool last = std::find(group_reduced_.begin(), group_reduced_.begin() +
                                static_cast<std::ptrdiff_t>(g), true) ==
                      group_reduced_.begin() + static_cast<std::ptrdiff_t>(g);
    T* out = last ? dst
                  : reinterpret_cast<T*>(scratch_.data() + static_cast<size_t>(buffer) *
                                                               scratch_half_);
    run_pass(kind_, first, in, out, outer, cur[g], inner);
    cur[g] = 1;
    in = out;
    first = false;
    buffer ^= 1;
  }
  finish(kind_, dst, out_numel_, count_);
}

template void reduce_op::run<float>(const float*, float*);
template void reduce_op::run<double>(const double*, double*);
template void reduce_op::run<int32_t>(const int32_t*, int32_t*);
template void reduce_op::run<int64_t>(const int64_t*, int64_t*);

} // namespace troupe::cpu
