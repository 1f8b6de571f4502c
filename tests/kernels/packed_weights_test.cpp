// Tests for the per-session cache of packed (reordered) constant weights.
#include <doctest/doctest.h>

#include "kernels/cpu/packed_weights.hpp"

using namespace troupe;
using tag = dnnl::memory::format_tag;

namespace {

tensor counting(int64_t rows, int64_t cols, float start) {
  tensor t = tensor::empty(dtype::f32, {rows, cols});
  for (int64_t i = 0; i < t.numel(); ++i)
    t.data<float>()[i] = start + static_cast<float>(i);
  return t;
}

/// Element (r, c) of a [rows, cols] matrix packed column-major (tag ba).
float packed_at(const dnnl::memory& m, int64_t rows, int64_t r, int64_t c) {
  return static_cast<const float*>(m.get_data_handle())[c * rows + r];
}

} // namespace

TEST_CASE("packed weights are reordered once and shared by later requests for the same layout") {
  cpu::cpu_context cpu;
  cpu::packed_weights cache;
  const dnnl::memory::dims dims{3, 5};
  const dnnl::memory::desc user(dims, dnnl::memory::data_type::f32, tag::ab);
  const dnnl::memory::desc column_major(dims, dnnl::memory::data_type::f32, tag::ba);
  tensor w = counting(3, 5, 1.f);
  auto first = cache.get(w, user, column_major, cpu);
  auto second = cache.get(w, user, column_major, cpu);
  CHECK(first.get_data_handle() == second.get_data_handle());
  CHECK(cache.entries() == 1);
  CHECK(cache.bytes() == 15 * sizeof(float));
  // The packed copy really is column-major: element (1, 2) of the row-major source is 1*5+2+1.
  CHECK(packed_at(first, 3, 1, 2) == 8.f);
  // Another layout of the same weights is a second entry.
  auto plain = cache.get(w, user, user, cpu);
  CHECK(plain.get_data_handle() != first.get_data_handle());
  CHECK(cache.entries() == 2);
}

TEST_CASE("packed weights of freed storage are dropped, never served for new weights at that address") {
  cpu::cpu_context cpu;
  cpu::packed_weights cache;
  const dnnl::memory::dims dims{4, 4};
  const dnnl::memory::desc user(dims, dnnl::memory::data_type::f32, tag::ab);
  const dnnl::memory::desc column_major(dims, dnnl::memory::data_type::f32, tag::ba);
  for (int round = 0; round < 8; ++round) {
    // Allocations of equal size often reuse the address just freed: the cache must notice.
    tensor w = counting(4, 4, 100.f * static_cast<float>(round));
    auto packed = cache.get(w, user, column_major, cpu);
    CHECK(packed_at(packed, 4, 2, 1) == 100.f * static_cast<float>(round) + 9.f);
    CHECK(cache.entries() == 1);
  }
}

TEST_CASE("without a cache pack_weights makes a private copy each time") {
  cpu::cpu_context cpu;
  const dnnl::memory::dims dims{2, 3};
  const dnnl::memory::desc user(dims, dnnl::memory::data_type::f32, tag::ab);
  const dnnl::memory::desc column_major(dims, dnnl::memory::data_type::f32, tag::ba);
  tensor w = counting(2, 3, 0.f);
  auto a = cpu::pack_weights(nullptr, w, user, column_major, cpu);
  auto b = cpu::pack_weights(nullptr, w, user, column_major, cpu);
  CHECK(a.get_data_handle() != b.get_data_handle());
  CHECK(packed_at(a, 2, 1, 0) == 3.f);
}
