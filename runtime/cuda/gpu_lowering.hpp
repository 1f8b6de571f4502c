// gpu_lowering: turns a graph, with the dims and folded constants a CPU plan inferred for
// concrete input dims, into a list of CUDA kernel launches over numbered values. Host-only:
// every decision here is testable without a device.
#pragma once

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "kernels/cuda/cublas_gemm.hpp"
#include "kernels/cuda/cudnn_conv.hpp"
#include "kernels/cuda/kernel_args.hpp"
#include "runtime/gpu_precision.hpp"
#include "runtime/graph.hpp"
#include "runtime/ops/op_registry.hpp"

namespace troupe::gpu {

enum class value_kind : uint8_t {
  input,        // written by the host-to-device copy before the steps
  constant,     // uploaded once (floats converted to the compute dtype)
  intermediate, // written by a step, or a view of another value
};

struct gpu_value {
  std::string name;
  dtype type = dtype::undefined; // as stored on the device
  shape dims;
  value_kind kind = value_kind::intermediate;
  const tensor* host = nullptr; // a constant's host data (owned by the CPU plan)
  int alias_of = -1;            // a view shares this value's memory (-1: owns its own)
  int input_index = -1;         // for inputs
  /// A constant uploaded with its dims permuted (output dim k is host dim perm[k]; `dims` are
  /// the permuted ones): convolution weights in KRSC for NHWC (channels_last). Empty: as is.
  std::vector<int64_t> upload_perm;
};

enum class step_kind : uint8_t {
  conv, gemm, pool, binary, unary, cast, layer_norm, softmax, reduce, transpose, slice, split,
  concat, gather, copy,
  all_reduce, // AllReduceSum through the session's communicator (in place on the output)
  all_gather, // AllGather through the session's communicator
};

/// One launch. Which fields matter depends on the kind; shapes come from the values.
struct gpu_step {
  step_kind kind = step_kind::copy;
  std::string label; // the node's label, for errors and profiles
  std::vector<int> inputs, outputs; // value ids, -1 for an absent optional input
  cuda::conv_params conv;
  cuda::gemm_params gemm;
  cuda::pool_params pool;
  cuda::binary_op binary = cuda::binary_op::add;
  cuda::unary_op unary = cuda::unary_op::relu;
  float lo = 0, hi = 0;  // Clip bounds
  cuda::reduce_op reduce = cuda::reduce_op::sum;
  float epsilon = 0;     // LayerNormalization
  int64_t axis = 0;      // LayerNormalization, Split, Concat, Gather (normalized)
  std::vector<int64_t> perm, axes, starts, ends, steps, sizes; // Transpose, Reduce*, Slice, Split
};

struct lowered_graph {
  dtype compute = dtype::f32;       // storage type of floating-point values
  bool allow_tf32 = false;
  std::vector<gpu_value> values;
  std::vector<gpu_step> steps;
  std::vector<int> inputs;  // value of graph input i, in its declared dtype
  std::vector<int> outputs; // value holding graph output i, in its boundary dtype
  std::vector<value_info> output_infos;
};

/// Lowers every live, non-constant node of `g` (an optimized graph). `descs` are the CPU
/// plan's value descriptions for the same input dims (dims, dtypes, folded constants);
/// `input_dims` the concrete input dims. An operator or attribute without a GPU lowering
/// is an `unsupported` error naming the node. `group_size` is the number of tensor-parallel
/// ranks the plan runs with: a collective node (AllReduceSum, AllGather) without a group
/// (1), or an AllGather split for another number of ranks, is `invalid_argument` naming it.
expected<lowered_graph> lower_graph(const graph& g,
                                    const std::unordered_map<std::string, value_desc>& descs,
                                    std::span<const shape> input_dims, gpu_precision precision,
                                    int group_size = 1);

/// Whether `s` exchanges with the other ranks of a group.
inline bool is_collective(const gpu_step& s) {
  return s.kind == step_kind::all_reduce || s.kind == step_kind::all_gather;
}

/// Whether a plan of `l` may be recorded as a CUDA graph: not with a collective step, whose
/// communicator takes scratch blocks from the caching allocator per call and hands them back
/// in stream order (a replayed graph would write into blocks other work owns by then), and
/// whose ranks would all have to capture and replay in lockstep.
bool capturable(const lowered_graph& l);

/// The value whose memory `id` uses (itself unless it is a view).
int root_of(const lowered_graph& l, int id);

/// Arena placement of every intermediate or input value that owns memory: offsets[value] in
/// bytes (-1 for constants and views), by liveness so values whose lifetimes are disjoint
/// share bytes; graph outputs live to the end.
struct arena_layout {
  std::vector<int64_t> offsets;
  size_t bytes = 0;
};
arena_layout plan_arena(const lowered_graph& l, size_t alignment = 256);

/// Operator types lower_graph accepts.
std::vector<std::string> gpu_op_types();

} // namespace troupe::gpu
