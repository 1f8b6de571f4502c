// Tests for shape arithmetic and broadcasting.
#include <doctest/doctest.h>

#include "kernels/shape.hpp"

using namespace troupe;

TEST_CASE("checked_numel multiplies dims and rejects negatives and overflow") {
  std::vector<int64_t> ok{2, 3, 4};
  CHECK(*checked_numel(ok) == 24);
  std::vector<int64_t> neg{2, -1};
  CHECK(checked_numel(neg).error().code() == errc::invalid_argument);
  std::vector<int64_t> huge{int64_t{1} << 40, int64_t{1} << 40};
  CHECK(checked_numel(huge).error().code() == errc::out_of_range);
  std::vector<int64_t> big{int64_t{1} << 61};
  CHECK(checked_bytes(big, 8).error().code() == errc::out_of_range);
  CHECK(*checked_bytes(ok, 4) == 96);
}

TEST_CASE("broadcast_shapes follows numpy rules and names incompatible shapes") {
  std::vector<int64_t> a{8, 1, 6, 1}, b{7, 1, 5};
  CHECK(*broadcast_shapes(a, b) == shape{8, 7, 6, 5});
  std::vector<int64_t> c{3}, d{4};
  auto r = broadcast_shapes(c, d);
  REQUIRE(!r);
  CHECK(r.error().message().find("[3]") != std::string::npos);
}

TEST_CASE("normalize_axis maps negative axes and rejects out of range") {
  CHECK(*normalize_axis(-1, 4) == 3);
  CHECK(*normalize_axis(2, 4) == 2);
  CHECK(!normalize_axis(4, 4));
  CHECK(!normalize_axis(-5, 4));
}

TEST_CASE("strides_of an empty tensor with huge dims does not overflow") {
  // Zero elements make any shape valid; the strides of the outer dims would overflow int64.
  std::vector<int64_t> dims{0, 135430143, int64_t{1546188218496}};
  auto strides = strides_of(dims);
  CHECK(strides[2] == 1);
  CHECK(strides[1] == int64_t{1546188218496});
  CHECK(strides[0] == 0);
}
