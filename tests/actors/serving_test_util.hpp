// serving_test_util: what the tests of models served through embedded_runtime share: a config
// whose requests form one batch, a runtime on two CPU devices, and replies checked against the
// unsplit session.
#pragma once

#include <chrono>
#include <filesystem>
#include <memory>
#include <vector>

#include "actors/embedded_runtime.hpp"
#include "runtime/session.hpp"
#include "tests/actors/actor_test_util.hpp"

namespace troupe::test {

/// `stages` x `ranks` with micro-batches of `micro` rows (0: none); requests adding up to
/// `max_batch` rows form exactly one batch.
inline model_config one_batch_config(int64_t stages, int64_t ranks, int64_t micro,
                                     int64_t max_batch) {
  model_config c;
  c.max_batch_size = max_batch;
  dynamic_batching_config db;
  db.preferred_batch_size = {max_batch};
  db.max_queue_delay = std::chrono::seconds{10};
  c.dynamic_batching = db;
  c.parallelism.pipeline_stages = stages;
  c.parallelism.tensor_parallel = ranks;
  c.parallelism.micro_batch = micro;
  return c;
}

/// A runtime with two CPU devices, or one on a machine (or affinity mask) with one core.
inline caf::expected<std::unique_ptr<embedded_runtime>> start_on_two_devices(caf::actor_system& sys) {
  runtime_options o;
  o.resources.cpu_devices = 2;
  auto rt = embedded_runtime::start(sys, o);
  return rt ? std::move(rt) : embedded_runtime::start(sys);
}

/// The unsplit CPU session's outputs for `batch`.
inline std::vector<tensor> session_outputs(const std::filesystem::path& onnx,
                                           const tensor& batch) {
  auto whole = session::open(onnx.string());
  REQUIRE(whole);
  std::vector<tensor> in{batch};
  auto want = (*whole)->run(in);
  REQUIRE(want);
  return *want;
}

/// Every reply against its rows of `want` (the outputs of the whole batch), within `tolerance`.
inline void check_replies(const std::vector<caf::expected<infer_response>>& replies,
                          const std::vector<int64_t>& rows, const std::vector<tensor>& want,
                          double tolerance, caf::actor_system& sys) {
  int64_t begin = 0;
  for (size_t i = 0; i < rows.size(); ++i) {
    CAPTURE(i);
    REQUIRE_MESSAGE(replies[i], sys.render(replies[i].error()));
    REQUIRE(replies[i]->outputs.size() == want.size());
    for (size_t o = 0; o < want.size(); ++o) {
      auto expect = want[o].slice_rows(begin, begin + rows[i]);
      REQUIRE(replies[i]->outputs[o].dims() == expect.dims());
      CHECK(relative_error(replies[i]->outputs[o], expect) < tolerance);
    }
    begin += rows[i];
  }
}

} // namespace troupe::test
