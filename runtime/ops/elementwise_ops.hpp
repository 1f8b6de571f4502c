// elementwise_ops: the parts of the elementwise operator group, registered by
// register_elementwise_ops, and helpers their builders share.
#pragma once

#include <string>

#include "runtime/ops/op_registry.hpp"

namespace troupe::elementwise {

void register_unary_ops(op_registry& r);   // Relu, Sigmoid, Clip, Not, ...
void register_binary_ops(op_registry& r);  // Add, Pow, Max, Equal, And, PRelu, ...
void register_convert_ops(op_registry& r); // Where, Cast, CastLike

/// An error unless `inputs` has between `min` and `max` entries and the first `min` are present.
status check_inputs(const node& n, std::span<const value_desc> inputs, size_t min, size_t max);

/// Adds an op_def; bit i of `blocked_inputs`: input i may arrive in a oneDNN blocked layout.
void add_op(op_registry& r, std::string type, build_fn build, uint32_t blocked_inputs = 0);

/// `st` with the node's label in front of its message (for errors found while running).
status at_node(const std::string& label, const status& st);

} // namespace troupe::elementwise
