// batching_options: the request_queue and batch_former settings a model_config implies.
#pragma once

#include "runtime/batching/batch_former.hpp"
#include "runtime/batching/request_queue.hpp"
#include "runtime/config/model_config.hpp"

namespace troupe {

/// Queue settings of a model. Without a dynamic_batching block: one level, default policy,
/// no queue delay.
request_queue_options queue_options_from(const model_config& config);

/// Batch formation settings of a model. Without a dynamic_batching block requests are not
/// combined (Triton's default scheduler), though they still queue and wait for credits.
batch_former_options former_options_from(const model_config& config);

} // namespace troupe
