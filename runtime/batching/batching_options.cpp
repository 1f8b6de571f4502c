// batching_options: the request_queue and batch_former settings a model_config implies.
#include "runtime/batching/batching_options.hpp"

namespace troupe {

request_queue_options queue_options_from(const model_config& config) {
  request_queue_options o;
  o.max_rows = config.max_batch_size;
  if (const auto& db = config.dynamic_batching) {
    o.priority_levels = db->priority_levels;
    o.default_priority_level = db->default_priority_level;
    o.default_policy = db->default_queue_policy;
    o.level_policies = db->priority_queue_policy;
    o.max_queue_delay = db->max_queue_delay;
  }
  return o;
}

batch_former_options former_options_from(const model_config& config) {
  batch_former_options o;
  o.max_batch_size = config.max_batch_size;
  o.allowed_batch_sizes = config.allowed_batch_sizes;
  o.combine_requests = config.dynamic_batching.has_value();
  if (config.dynamic_batching)
    o.preferred_batch_sizes = config.dynamic_batching->preferred_batch_size;
  return o;
}

} // namespace troupe
