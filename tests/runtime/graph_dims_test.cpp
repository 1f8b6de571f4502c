// Tests of dims_with_dynamic_as: the concrete dims models are compiled and probed with.
#include <doctest/doctest.h>

#include "runtime/graph.hpp"

using namespace troupe;

TEST_CASE("dynamic dims take the probe size and fixed dims stay as declared") {
  const std::vector<value_info> inputs = {
      {"images", dtype::f32, {-1, 3, 224, 224}},
      {"mask", dtype::i64, {-1, -1}},
      {"scale", dtype::f32, {}},
  };
  const auto at1 = dims_with_dynamic_as(inputs, 1);
  REQUIRE(at1.size() == 3);
  CHECK(at1[0] == shape{1, 3, 224, 224});
  CHECK(at1[1] == shape{1, 1});
  CHECK(at1[2].empty());
  const auto at3 = dims_with_dynamic_as(inputs, 3);
  CHECK(at3[0] == shape{3, 3, 224, 224});
  CHECK(at3[1] == shape{3, 3});
  CHECK(dims_with_dynamic_as({}, 2).empty());
}
