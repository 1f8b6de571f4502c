// conv_pool_ops: placeholder until the operator group lands.
#include "runtime/ops/op_registry.hpp"

namespace troupe {
void register_conv_pool_ops(op_registry&) {}
} // namespace troupe
