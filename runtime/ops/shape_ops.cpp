// shape_ops: registers the shape, view, data-movement and indexing operators.
#include "runtime/ops/shape_common.hpp"

namespace troupe {

void register_shape_ops(op_registry& r) {
  shape_ops::register_views(r);
  shape_ops::register_sources(r);
  shape_ops::register_movement(r);
  shape_ops::register_indexing(r);
}

} // namespace troupe
