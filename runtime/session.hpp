// session: a loaded model that validates inputs and runs them through cached plans.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "runtime/plan.hpp"

namespace troupe {

struct session_options {
  cpu::cpu_limits limits;     // threads and cores of this backend instance
  bool optimize = true;       // run graph passes (BN folding, fusion)
  bool allow_blocked = true;  // keep oneDNN blocked layouts between operators
  size_t max_cached_plans = 16;
  size_t max_value_bytes = size_t{8} << 30; // see plan_options
  communicator* comm = nullptr; // see plan_options; not owned, must outlive the session
};

/// A model ready to run on one CPU backend instance. Plans are compiled on first use of a
/// set of input dims and cached. Not thread-safe: one session per executor thread.
class session {
public:
  static expected<std::unique_ptr<session>> open(const std::string& onnx_path,
                                                 session_options options = {});
  static expected<std::unique_ptr<session>> from_graph(graph g, session_options options = {});

  const graph& model() const { return graph_; }
  /// Declared inputs and outputs (-1 for dynamic dims).
  const std::vector<value_info>& inputs() const { return graph_.inputs; }
  const std::vector<value_info>& outputs() const { return graph_.outputs; }

  /// Checks inputs against the model (count, dtype, rank, fixed dims) and runs them.
  expected<std::vector<tensor>> run(std::span<const tensor> inputs,
                                    std::vector<step_profile>* profile = nullptr);
  /// The plan for these input dims (compiled now if new).
  expected<plan*> plan_for(std::span<const shape> input_dims);
  /// Output dtypes and dims inferred from the graph: plans are compiled with every dynamic
  /// input dim at 1 and at 2, and an output dim that differs between them is dynamic (-1).
  expected<std::vector<value_info>> infer_outputs();
  /// Errors for inputs that do not match the model; ok otherwise.
  status validate(std::span<const tensor> inputs) const;

  cpu::cpu_context& context() { return cpu_; }
  /// Constant weights packed for oneDNN, shared by all of this session's plans.
  const cpu::packed_weights& packed_weights() const { return packed_; }

private:
  session(graph g, session_options options);

  graph graph_;
  session_options options_;
  cpu::cpu_context cpu_;
  cpu::packed_weights packed_;
  std::map<std::vector<shape>, std::unique_ptr<plan>> plans_;
  std::thread::id entered_;
};

} // namespace troupe
