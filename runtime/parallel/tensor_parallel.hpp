// tensor_parallel: splits a graph into T rank graphs (Megatron-style weight slices joined by
// AllReduceSum / AllGather nodes) that together compute what the graph computes.
#pragma once

#include <string>
#include <vector>

#include "runtime/graph.hpp"

namespace troupe {

struct tensor_parallel_split {
  std::vector<graph> ranks;           // ranks[r] runs on rank r of a group of ranks.size()
  std::vector<std::string> decisions; // one line per split or replicated weight operator
};

/// Splits `g` for `ways` ranks. Weight operators are split in pairs: an opening MatMul/Gemm
/// by columns or Conv by output channels, the per-channel work after it (bias, activations,
/// BatchNormalization, pooling, depthwise convs, attention heads through Reshape/Transpose/
/// MatMul/Softmax) on each rank's slice, and a closing MatMul/Gemm by rows or Conv by input
/// channels followed by one AllReduceSum (its bias added after). A slice something else reads
/// is joined by an AllGather first. Everything else, and a split that does not divide by
/// `ways`, is replicated. Each rank graph holds only its slices of the split weights. Every
/// rank's outputs equal the graph's. ways == 1 returns `g` unchanged; ways < 1 is
/// invalid_argument. The shape-independent passes (identities, BatchNorm folding, LayerNorm
/// fusion) run first; see tp::prepare for why.
expected<tensor_parallel_split> split_tensor_parallel(const graph& g, int ways);

} // namespace troupe
