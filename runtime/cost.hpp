// cost: FLOP counts of a graph at concrete shapes (the multiply-adds that dominate run time).
#pragma once

#include "runtime/passes/passes.hpp"

namespace troupe {

/// 2 x multiply-adds of Conv, TroupeFusedConv, Gemm and MatMul nodes; other operators are
/// memory-bound and not counted. `shapes` gives the dims of every value (plan::value_shapes).
double count_flops(const graph& g, const shape_map& shapes);

} // namespace troupe
