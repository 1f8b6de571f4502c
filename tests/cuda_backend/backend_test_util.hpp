// backend_test_util: what the GPU backend tests share: the seeded generator, the reference
// model folder and a lowering kept alive with the CPU plan it took its dims from.
#pragma once

#include <doctest/doctest.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "runtime/cuda/gpu_lowering.hpp"
#include "runtime/passes/passes.hpp"
#include "runtime/plan.hpp"

namespace troupe::backend_test {

inline std::mt19937_64& rng() {
  static std::mt19937_64 gen{std::random_device{}()};
  return gen;
}

inline const char* models_dir() {
  if (const char* dir = std::getenv("TROUPE_TEST_MODELS")) // tools/gpu-check.sh: the bundle's
    return dir;
#ifdef TROUPE_TEST_MODELS_DIR
  return TROUPE_TEST_MODELS_DIR;
#else
  return "";
#endif
}

/// The CPU plan a lowering takes its dims from, kept alive with the lowering.
struct lowering {
  std::unique_ptr<cpu::cpu_context> cpu = std::make_unique<cpu::cpu_context>();
  std::unique_ptr<plan> cpu_plan;
  expected<gpu::lowered_graph> lowered = make_error(errc::internal, "not lowered");
};

/// Optimizes `g` and lowers it for its declared input dims (which must be concrete) for a
/// group of `group_size` tensor-parallel ranks.
inline lowering lower(graph& g, gpu_precision precision = gpu_precision::fp32, int group_size = 1) {
  lowering l;
  REQUIRE(optimize_graph(g).is_ok());
  std::vector<shape> dims;
  for (const auto& in : g.inputs)
    dims.push_back(in.dims);
  auto p = plan::compile(g, dims, *l.cpu, plan_options{false});
  REQUIRE_MESSAGE(p.has_value(), (p ? "" : p.error().to_string()));
  l.cpu_plan = std::move(*p);
  l.lowered = gpu::lower_graph(g, l.cpu_plan->value_descs(), dims, precision, group_size);
  return l;
}

} // namespace troupe::backend_test
