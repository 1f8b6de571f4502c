// passes: graph rewrites that make models cheaper to run without changing their results.
#pragma once

#include <string>
#include <unordered_map>

#include "runtime/graph.hpp"

namespace troupe {

using shape_map = std::unordered_map<std::string, shape>;

/// Removes Identity and inference-mode Dropout nodes by rewiring their consumers.
/// Returns the number of nodes removed.
size_t remove_identities(graph& g);

/// Folds BatchNormalization that follows a Conv with constant weights into the Conv's
/// weights and bias. Returns the number of BatchNormalization nodes folded.
size_t fold_batchnorm_into_conv(graph& g);

/// Rewrites the decomposition exporters emit for LayerNorm over the last axis (ReduceMean,
/// Sub, Pow 2, ReduceMean, Add eps, Sqrt, Div, Mul gamma [, Add beta]) into one
/// LayerNormalization. Returns the number of decompositions fused.
size_t fuse_layer_norm(graph& g);

/// Rewrites Conv [+ Add] [+ Relu|Clip|LeakyRelu|Sigmoid] into TroupeFusedConv (post-op sum
/// and activation). `shapes` (value name -> dims at a probe batch) guards the Add fusion:
/// it is applied only when the added operand has exactly the convolution's output shape.
/// Returns the number of nodes fused away.
size_t fuse_conv_epilogues(graph& g, const shape_map& shapes);

/// Runs every pass in order. The shape-dependent fusion compiles a probe plan whose tensors
/// may not exceed `max_value_bytes`.
status optimize_graph(graph& g, size_t max_value_bytes = size_t{8} << 30);

} // namespace troupe
