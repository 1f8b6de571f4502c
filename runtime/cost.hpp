// cost: FLOP counts of a graph at concrete shapes (the multiply-adds that dominate run time).
#pragma once

#include "runtime/passes/passes.hpp"

namespace troupe {

/// 2 x multiply-adds of one Conv, TroupeFusedConv, Gemm or MatMul node; 0 for other operators
/// (memory-bound) and for nodes whose dims `shapes` lacks.
double node_flops(const node& n, const shape_map& shapes);

/// Sum of node_flops over the graph. `shapes` gives the dims of every value
/// (plan::value_shapes).
double count_flops(const graph& g, const shape_map& shapes);

} // namespace troupe
