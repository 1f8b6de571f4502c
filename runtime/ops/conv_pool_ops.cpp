// conv_pool_ops: registers the convolution, pooling and batch normalization operators.
#include "runtime/ops/conv_window.hpp"

namespace troupe {

void register_conv_pool_ops(op_registry& registry) {
  register_conv_ops(registry);
  register_pool_ops(registry);
  register_batchnorm_ops(registry);
}

} // namespace troupe
