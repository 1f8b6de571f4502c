// op_registry: how an ONNX operator is turned into a kernel for concrete input shapes.
#pragma once

#include <functional>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/communicator.hpp"
#include "kernels/cpu/cpu_context.hpp"
#include "kernels/cpu/packed_weights.hpp"
#include "kernels/tensor.hpp"
#include "runtime/graph.hpp"

namespace troupe {

/// Layout of a value inside a compiled plan: plain row-major (the default), or a oneDNN
/// blocked format kept between oneDNN primitives (nChw16c between convolutions).
struct value_layout {
  std::shared_ptr<const dnnl::memory::desc> blocked; // null: plain row-major

  bool is_plain() const { return blocked == nullptr; }
  static value_layout of(const dnnl::memory::desc& md) {
    return {std::make_shared<const dnnl::memory::desc>(md)};
  }
};

/// What a kernel builder knows of one input or output: dtype, concrete dims, layout, and
/// the value when it is a constant (initializer or folded). type == undefined marks an
/// absent optional input.
struct value_desc {
  dtype type = dtype::undefined;
  shape dims;
  value_layout layout;
  const tensor* constant = nullptr;

  bool present() const { return type != dtype::undefined; }
  /// Bytes a buffer for this value needs (blocked formats may pad).
  size_t buffer_bytes() const;
};

/// Everything a kernel may use while running.
struct exec_context {
  cpu::cpu_context& cpu;
  communicator* comm = nullptr; // this shard's group, for the collective ops of a split graph
};

/// A kernel bound to concrete input shapes. `run` may be called many times; its tensors
/// have the dims and layouts given at build time (blocked ones hold buffer_bytes() bytes).
class op_kernel {
public:
  virtual ~op_kernel() = default;
  virtual status run(exec_context& ctx, std::span<const tensor> inputs,
                     std::span<tensor> outputs) = 0;
};

struct build_context {
  cpu::cpu_context& cpu;
  int64_t opset;
  bool allow_blocked; // false: every output must be plain (constant folding, graph outputs)
  cpu::packed_weights* packed = nullptr; // the session's shared packed weights (none: per kernel)
};

/// A built operator: output descs and the kernel. When `alias_input` >= 0 the single
/// output is a plain view of that (plain) input with the output's dims and no kernel runs.
struct built_op {
  std::vector<value_desc> outputs; // type, dims, layout; `constant` unused
  std::unique_ptr<op_kernel> kernel;
  int alias_input = -1;
};

using build_fn = std::function<expected<built_op>(const node&, std::span<const value_desc>,
                                                  build_context&)>;

struct op_def {
  std::string type;        // ONNX op_type ("Conv"); troupe's own ops start with "Troupe"
  build_fn build;
  uint32_t blocked_inputs = 0;    // bit i: input i may arrive in a blocked layout
  bool reads_only_shapes = false; // Shape/Size: foldable whenever input dims are known
  bool deterministic = true;      // false: never constant-folded (RandomNormal, ...)
};

class op_registry {
public:
  void add(op_def def);
  const op_def* find(std::string_view type) const;
  std::vector<std::string> types() const; // sorted

private:
  std::unordered_map<std::string, op_def> defs_;
};

/// The registry with every operator troupe supports on the CPU.
const op_registry& cpu_registry();

// Each group of operators registers itself here (called once by cpu_registry()).
void register_conv_pool_ops(op_registry&);    // Conv, TroupeFusedConv, pooling, BatchNormalization
void register_matmul_ops(op_registry&);       // Gemm, MatMul
void register_normalize_ops(op_registry&);    // Softmax, LogSoftmax, LayerNormalization, ReduceMean
void register_elementwise_ops(op_registry&);  // unary and broadcasting binary ops, Where, Cast
void register_shape_ops(op_registry&);        // Reshape, Transpose, Concat, Gather, Slice, ...
void register_collective_ops(op_registry&);   // AllReduceSum, AllGather (domain "troupe")

/// Helpers for builders: uniform error for a node whose input is bad.
status bad_input(const node& n, std::string_view message);

} // namespace troupe
