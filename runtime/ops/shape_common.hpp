// shape_common: helpers shared by the shape operator files (constant operands, view results).
#pragma once

#include <functional>
#include <optional>
#include <string_view>
#include <vector>

#include "runtime/ops/op_registry.hpp"

namespace troupe::shape_ops {

// The registration functions of the shape operator files, called by register_shape_ops.
void register_views(op_registry&);    // Reshape, Flatten, Squeeze, Unsqueeze, Identity, Dropout
void register_sources(op_registry&);  // Shape, Size, Constant, ConstantOfShape, Range
void register_movement(op_registry&); // Transpose, Concat, Split, Slice, Expand, Tile
void register_indexing(op_registry&); // Gather, GatherElements, Pad

using kernel_fn = std::function<status(exec_context&, std::span<const tensor>, std::span<tensor>)>;

/// A kernel that runs a closure; the closure captures what the builder precomputed.
std::unique_ptr<op_kernel> make_kernel(kernel_fn fn);

/// errc::unsupported naming the node: troupe can't serve it, the model is not wrong.
template <class... Args>
status unsupported(const node& n, fmt::format_string<Args...> format, Args&&... args) {
  return make_error(errc::unsupported, "{}: {}", n.label(),
                    fmt::format(format, std::forward<Args>(args)...));
}

/// An invalid_argument error naming the node, with a formatted message.
template <class... Args>
status invalid(const node& n, fmt::format_string<Args...> format, Args&&... args) {
  return bad_input(n, fmt::format(format, std::forward<Args>(args)...));
}

/// Checks that input `i` is present and has a dtype kernels can copy (not string).
status require_input(const node& n, std::span<const value_desc> in, size_t i);

/// The integer values (int32 or int64) of input `i`, which must be constant: its values decide
/// output shapes. `what` names the operand in messages.
expected<std::vector<int64_t>> constant_ints(const node& n, std::span<const value_desc> in,
                                             size_t i, std::string_view what);

/// Integers given as attribute `attr` (older opsets) or as constant input `i` (newer ones);
/// nullopt when neither is present.
expected<std::optional<std::vector<int64_t>>> ints_from_attr_or_input(
    const node& n, std::span<const value_desc> in, const std::string& attr, size_t i);

/// A plain view of input 0 with `dims`: no kernel runs.
built_op view_of_input(dtype type, shape dims);

/// A plain output desc.
value_desc plain_desc(dtype type, shape dims);

/// Checks an output shape (non-negative dims, byte size fits) and names the node if not.
status check_output_dims(const node& n, std::span<const int64_t> dims, dtype type);

/// `value` converted to one element of `type`, as bytes (pad values, filled tensors).
std::vector<std::byte> scalar_bytes(dtype type, double value);

} // namespace troupe::shape_ops
