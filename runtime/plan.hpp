// plan: a graph compiled for concrete input shapes: kernels, folded constants, one arena.
#pragma once

#include <deque>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "runtime/graph.hpp"
#include "runtime/ops/op_registry.hpp"

namespace troupe {

struct plan_options {
  bool allow_blocked = true; // keep oneDNN blocked layouts between operators that accept them
  /// Largest tensor a plan may create; a model asking for more is refused at compile time
  /// (a hostile or corrupt file must not exhaust memory).
  size_t max_value_bytes = size_t{8} << 30;
  /// Where constant weights are packed, shared with the session's other plans (none: each
  /// kernel packs its own copy).
  cpu::packed_weights* packed_weights = nullptr;
  /// The group the collective ops (AllReduceSum, AllGather) of a tensor-parallel rank graph
  /// exchange through; such a plan fails at run time without one.
  communicator* comm = nullptr;
};

/// Per-step wall time of one run, for profiling (`troupe bench --profile`).
struct step_profile {
  std::string label;   // node label
  std::string op_type;
  double seconds = 0;
};

/// A graph compiled for one set of input dims. Compiling evaluates everything that depends
/// only on constants and shapes (constant folding, shape arithmetic), builds one kernel per
/// remaining node, and packs intermediates into one arena by liveness. `run` is not
/// reentrant: one plan serves one thread at a time.
class plan {
public:
  static expected<std::unique_ptr<plan>> compile(const graph& g, std::span<const shape> input_dims,
                                                 cpu::cpu_context& cpu, plan_options options = {},
                                                 const op_registry& ops = cpu_registry());

  /// Runs on inputs of exactly the compiled dtypes and dims; returns fresh output tensors.
  expected<std::vector<tensor>> run(std::span<const tensor> inputs,
                                    std::vector<step_profile>* profile = nullptr);

  /// Graph outputs with their concrete dims for the compiled input dims.
  const std::vector<value_info>& outputs() const { return output_infos_; }
  size_t arena_bytes() const { return arena_ ? arena_->bytes() : 0; }
  size_t step_count() const { return steps_.size(); }
  size_t folded_node_count() const { return folded_nodes_; }
  /// Dims of every named value (inputs, constants, intermediates, outputs).
  std::unordered_map<std::string, shape> value_shapes() const;
  /// Dtype, dims and constness of every named value; `constant` points into this plan.
  /// The cost model needs dtypes for bytes and constness to tell folded values apart.
  std::unordered_map<std::string, value_desc> value_descs() const;

private:
  struct value {
    value_desc desc;
    tensor data;          // bound storage (arena, constant, or per run)
    int buffer = -1;      // index into buffers_, -1 for constants
    int alias_of = -1;    // value whose buffer this view shares
  };
  enum class buffer_kind { arena, graph_input, graph_output };
  struct buffer {
    buffer_kind kind = buffer_kind::arena;
    size_t bytes = 0;
    int first = 0, last = 0;
    int owner = -1;       // the value that defines the buffer
    int input_index = -1; // for graph_input
  };
  struct step {
    std::unique_ptr<op_kernel> kernel;
    std::vector<int> inputs, outputs; // value ids, -1 for absent
    std::string label, op_type;
  };
  struct output_binding {
    int value = -1;
    bool copy = false; // a constant or graph input: copied into a fresh tensor each run
  };

  plan(cpu::cpu_context& cpu) : cpu_(cpu) {}
  int add_value(value_desc desc);
  int add_reorder_to_plain(int value_id);
  void bind_value(int id);
  status compile_node(const node& n, const op_def& def, const std::string& source);

  cpu::cpu_context& cpu_;
  plan_options options_;
  int64_t opset_ = 0;
  std::deque<value> values_;  // deque: value_desc::constant points into it
  std::vector<buffer> buffers_;
  std::vector<step> steps_;
  std::vector<int> input_values_;
  std::vector<output_binding> outputs_;
  std::vector<value_info> output_infos_;
  std::vector<int> per_run_values_; // values to rebind each run, in definition order
  std::shared_ptr<storage> arena_;
  std::unordered_map<std::string, int> names_;
  size_t folded_nodes_ = 0;
};

} // namespace troupe
