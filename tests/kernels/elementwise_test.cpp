// Tests for broadcast plans: which shapes become long contiguous runs.
#include <doctest/doctest.h>

#include "kernels/cpu/broadcast_plan.hpp"

using namespace troupe;
using namespace troupe::cpu;

namespace {
broadcast_plan plan_of(shape out, std::vector<shape> ins) {
  auto p = plan_broadcast(out, ins);
  REQUIRE(p.has_value());
  return *p;
}
} // namespace

TEST_CASE("broadcast plans collapse same-shape, scalar, row and column cases into long runs") {
  auto same = plan_of({8, 3, 5}, {{8, 3, 5}, {8, 3, 5}});
  CHECK(same.inner == 120);
  CHECK(same.outer_dims.empty());
  CHECK((same.inner_step[0] && same.inner_step[1]));

  auto scalar = plan_of({8, 3, 5}, {{8, 3, 5}, {}});
  CHECK(scalar.inner == 120);
  CHECK((scalar.inner_step[0] && !scalar.inner_step[1]));

  auto row = plan_of({6, 4, 768}, {{6, 4, 768}, {768}});
  CHECK(row.inner == 768);
  CHECK(row.outer_dims == shape{24});
  CHECK(row.outer_strides[0] == std::vector<int64_t>{768});
  CHECK(row.outer_strides[1] == std::vector<int64_t>{0});

  auto column = plan_of({4, 10}, {{4, 10}, {4, 1}});
  CHECK(column.inner == 10);
  CHECK((column.inner_step[0] && !column.inner_step[1]));
  CHECK(column.outer_strides[1] == std::vector<int64_t>{1});

  // Per-channel scale over NCHW: runs are whole H*W planes.
  auto channel = plan_of({2, 16, 7, 7}, {{2, 16, 7, 7}, {16, 1, 1}});
  CHECK(channel.inner == 49);
  CHECK(channel.outer_dims == shape{2, 16});
  CHECK(channel.outer_strides[1] == std::vector<int64_t>{0, 1});
}

TEST_CASE("broadcast plans reject inputs that do not broadcast to the output") {
  auto bad = plan_broadcast(shape{4, 3}, std::vector<shape>{{4, 2}});
  REQUIRE(!bad);
  CHECK(bad.error().code() == errc::invalid_argument);
  CHECK(bad.error().message().find("[4,2]") != std::string::npos);
  CHECK(!plan_broadcast(shape{3}, std::vector<shape>{{2, 3}}));
  auto empty = plan_of({0, 5}, {{0, 5}, {5}});
  CHECK(empty.total == 0);
}
