// Tests for the shape-op kernels: strided copies, row and element gathers, padding.
#include <doctest/doctest.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/cpu/copy_strided.hpp"
#include "kernels/cpu/gather.hpp"
#include "kernels/cpu/pad.hpp"
#include "kernels/shape.hpp"

using namespace troupe;

namespace {

std::mt19937& rng() {
  static std::mt19937 gen = [] {
    const unsigned seed = std::random_device{}();
    MESSAGE("shape_copy_test seed " << seed);
    return std::mt19937{seed};
  }();
  return gen;
}

int64_t pick(int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng());
}

} // namespace

TEST_CASE("copy_strided matches a per-element loop for permuted, reversed and broadcast views") {
  for (int trial = 0; trial < 300; ++trial) {
    const auto rank = static_cast<size_t>(pick(0, 5));
    shape dims(rank);
    for (auto& d : dims)
      d = pick(1, trial % 10 == 0 && rank <= 3 ? 90 : 6); // some big enough to run threaded
    // The source is a row-major buffer of `dims` read through a permutation, with some dims
    // reversed (negative stride from the far end) and some broadcast (stride 0).
    std::vector<int64_t> perm(rank);
    for (size_t k = 0; k < rank; ++k)
      perm[k] = static_cast<int64_t>(k);
    std::shuffle(perm.begin(), perm.end(), rng());
    shape src_dims(rank);
    for (size_t k = 0; k < rank; ++k)
      src_dims[static_cast<size_t>(perm[k])] = dims[k];
    const std::vector<int64_t> base = strides_of(src_dims);
    std::vector<int64_t> src_strides(rank);
    int64_t start = 0;
    for (size_t k = 0; k < rank; ++k) {
      src_strides[k] = base[static_cast<size_t>(perm[k])];
      const int64_t mode = pick(0, 4);
      if (mode == 0) {
        src_strides[k] = -src_strides[k];
        start += (dims[k] - 1) * base[static_cast<size_t>(perm[k])];
      } else if (mode == 1) {
        src_strides[k] = 0;
      }
    }
    const int64_t count = numel_of(dims);
    std::vector<int32_t> src(static_cast<size_t>(count));
    for (auto& v : src)
      v = static_cast<int32_t>(rng()());
    std::vector<int32_t> out(static_cast<size_t>(count), -1), want(static_cast<size_t>(count));
    for (int64_t o = 0; o < count; ++o) {
      int64_t rest = o, offset = start;
      for (size_t k = rank; k-- > 0;) {
        offset += (rest % dims[k]) * src_strides[k];
        rest /= dims[k];
      }
      want[static_cast<size_t>(o)] = src[static_cast<size_t>(offset)];
    }
    cpu::copy_strided(4, dims, out.data(), strides_of(dims), src.data() + start, src_strides);
    CHECK_MESSAGE(out == want, "dims " << to_string(dims) << " strides " << to_string(src_strides));
  }
}

TEST_CASE("fill_elements repeats one element of any size") {
  for (size_t es : {1u, 2u, 4u, 8u}) {
    std::vector<std::byte> value(es);
    for (size_t i = 0; i < es; ++i)
      value[i] = std::byte(0x11 * (i + 1));
    std::vector<std::byte> out(es * 37);
    cpu::fill_elements(out.data(), 37, value.data(), es);
    for (size_t i = 0; i < out.size(); ++i)
      CHECK(out[i] == value[i % es]);
  }
}

TEST_CASE("gather_blocks and gather_elements pick the indexed data") {
  std::vector<float> data(3 * 5 * 4);
  for (size_t i = 0; i < data.size(); ++i)
    data[i] = static_cast<float>(i);
  const std::vector<int64_t> idx{4, 0, 4};
  std::vector<float> out(3 * 3 * 4);
  cpu::gather_blocks(data.data(), 3, 5, 4 * sizeof(float), idx, out.data());
  for (int64_t o = 0; o < 3; ++o)
    for (int64_t j = 0; j < 3; ++j)
      for (int64_t k = 0; k < 4; ++k)
        CHECK(out[size_t((o * 3 + j) * 4 + k)] == data[size_t((o * 5 + idx[size_t(j)]) * 4 + k)]);

  // Along axis 1 of [3,5,4] with index dims [2,2,3].
  const shape data_dims{3, 5, 4}, index_dims{2, 2, 3};
  std::vector<int64_t> indices(12);
  for (auto& v : indices)
    v = pick(0, 4);
  std::vector<float> picked(12);
  cpu::gather_elements(4, data.data(), data_dims, indices, index_dims, 1, picked.data());
  for (int64_t i = 0; i < 2; ++i)
    for (int64_t j = 0; j < 2; ++j)
      for (int64_t k = 0; k < 3; ++k) {
        const size_t at = size_t((i * 2 + j) * 3 + k);
        CHECK(picked[at] == data[size_t((i * 5 + indices[at]) * 4 + k)]);
      }
}

TEST_CASE("pad_plan reflects beyond one period like numpy") {
  // numpy.pad([0, 1, 2], 5, mode="reflect") = [1 0 1 2 1 | 0 1 2 | 1 0 1 2 1]
  const std::vector<int32_t> in{0, 1, 2};
  const std::vector<int64_t> in_dims{3}, out_dims{13}, begins{5};
  cpu::pad_plan plan(4, in_dims, out_dims, begins, cpu::pad_mode::reflect);
  std::vector<int32_t> out(13);
  plan.run(in.data(), out.data(), nullptr);
  CHECK(out == std::vector<int32_t>{1, 0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2, 1});
}
