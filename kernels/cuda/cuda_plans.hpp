// cuda_plans: host-side shape logic of the CUDA kernels (broadcast, transpose, slice, reduce,
// gather, concat): validation plus the index walks (kernel_args.hpp) the kernels take.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "kernels/cuda/kernel_args.hpp"
#include "kernels/dtype.hpp"
#include "kernels/shape.hpp"

namespace troupe::cuda {

/// Supported float storage types of the CUDA kernels: f32, f16, bf16.
bool is_gpu_float(dtype t);
/// An unsupported-dtype error naming `op`, or ok when t is f32, f16 or bf16.
status require_gpu_float(dtype t, const char* op);

/// out = a op b with numpy broadcasting: `walk.strides[0|1]` are a's and b's strides over the
/// (collapsed) output dims, 0 where an operand repeats. `same` when both are the output's
/// shape (a flat loop suffices).
struct binary_plan {
  shape out_dims;
  strided_walk walk;
  bool same = false;
};
expected<binary_plan> plan_binary(std::span<const int64_t> a, std::span<const int64_t> b);

/// out = transpose(in, perm) (ONNX Transpose; empty perm reverses). `walk.strides[0]` steps
/// the input over the output's collapsed dims. `tiled` when the collapsed permutation swaps
/// the last two dims of a [batch, rows, cols] input, the case the shared-memory tile kernel
/// handles.
struct transpose_plan {
  shape out_dims;
  strided_walk walk;
  bool tiled = false;
  int64_t batch = 1, rows = 1, cols = 1; // of the input, when tiled
};
expected<transpose_plan> plan_transpose(std::span<const int64_t> dims,
                                        std::span<const int64_t> perm);

/// out = in[starts:ends:steps] on `axes` (ONNX Slice semantics: negative indices count from
/// the end, bounds clamp, negative steps walk backward). The input begins at `in_offset`
/// and `walk.strides[0]` steps it over the output dims.
struct slice_plan {
  shape out_dims;
  int64_t in_offset = 0;
  strided_walk walk;
};
expected<slice_plan> plan_slice(std::span<const int64_t> dims, std::span<const int64_t> starts,
                                std::span<const int64_t> ends, std::span<const int64_t> axes,
                                std::span<const int64_t> steps);

/// Split of `dims` along `axis` into parts of `sizes` (which must add up to the axis): one
/// slice plan per part.
expected<std::vector<slice_plan>> plan_split(std::span<const int64_t> dims, int64_t axis,
                                             std::span<const int64_t> sizes);

/// Concat along `axis`: the output is viewed as [outer, out_axis * inner]; input i fills the
/// columns [column_offset[i], column_offset[i] + in_columns[i]) of every outer row.
struct concat_plan {
  shape out_dims;
  int64_t outer = 1;
  int64_t out_columns = 0;
  std::vector<int64_t> in_columns, column_offset;
};
expected<concat_plan> plan_concat(std::span<const shape> inputs, int64_t axis);

/// Reduce over `axes` (empty: all). `kept` walks the output's elements and `reduced` one
/// output's inputs, both with input strides in strides[0]; their offsets add up.
struct reduce_plan {
  shape out_dims; // with or without the reduced dims as 1, per keepdims
  strided_walk kept, reduced;
  bool inner_contiguous = false; // the reduced elements of one output are adjacent
};
expected<reduce_plan> plan_reduce(std::span<const int64_t> dims, std::span<const int64_t> axes,
                                  bool keepdims);

/// Gather along `axis`: data viewed as [outer, axis_dim, inner], output as [outer,
/// indices, inner]; output dims are data[:axis] + indices + data[axis+1:].
struct gather_plan {
  shape out_dims;
  int64_t outer = 1, axis_dim = 0, inner = 1, indices = 0;
};
expected<gather_plan> plan_gather(std::span<const int64_t> data,
                                  std::span<const int64_t> indices, int64_t axis);

/// `dims` as rows x cols where a row is dims[axis:] flattened (LayerNorm's normalized dims;
/// Softmax passes the last axis); an error for rank 0 or a bad axis.
expected<row_plan> plan_rows(std::span<const int64_t> dims, int64_t axis = -1);

} // namespace troupe::cuda
