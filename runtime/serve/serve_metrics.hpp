// serve_metrics: the serving metrics (Triton's names where they exist) over metrics::registry.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/metrics/registry.hpp"

namespace troupe::serve {

/// Durations of one answered request, in microseconds.
struct request_timing {
  int64_t queue_us = 0;
  int64_t compute_input_us = 0;
  int64_t compute_infer_us = 0;
  int64_t compute_output_us = 0;
  int64_t request_us = 0;
};

/// The children of one model version, looked up once at load so the request path only adds.
struct model_metrics {
  metrics::counter* success = nullptr;
  metrics::counter* inferences = nullptr; // rows
  metrics::counter* executions = nullptr; // batches
  metrics::counter* request_us = nullptr;
  metrics::counter* queue_us = nullptr;
  metrics::counter* compute_input_us = nullptr;
  metrics::counter* compute_infer_us = nullptr;
  metrics::counter* compute_output_us = nullptr;
  metrics::gauge* pending = nullptr;
  metrics::histogram* batch_size = nullptr;
  metrics::gauge* pipeline_stages = nullptr;
  metrics::gauge* tensor_parallel = nullptr;
  metrics::gauge* micro_batch = nullptr;
  std::string name, version;
};

class serve_metrics {
public:
  serve_metrics();

  model_metrics& model(std::string_view name, int64_t version);

  void succeeded(model_metrics& m, int64_t rows, const request_timing& t);
  /// `reason`: the error code's name (invalid_argument, timeout, unavailable, ...).
  void failed(std::string_view model, std::string_view version, std::string_view reason);
  /// Once per executed batch: its rows and the run time of each stage on its device.
  void batch(model_metrics& m, int64_t rows, const std::vector<int32_t>& devices,
             const std::vector<int64_t>& stage_us);
  /// The parallelism plan a model version is served with.
  void set_plan(model_metrics& m, int64_t stages, int64_t tensor_parallel, int64_t micro_batch);
  void set_device_memory(int32_t device, uint64_t total_bytes, uint64_t used_bytes);

  /// Text exposition; first refreshes each device's utilization over the time since the last
  /// render (busy µs / wall µs).
  std::string render();

  static constexpr std::string_view content_type = metrics::registry::content_type;

private:
  metrics::registry registry_;
  metrics::counter_family *success_, *failure_, *inferences_, *executions_, *request_us_,
      *queue_us_, *input_us_, *infer_us_, *output_us_, *device_busy_, *stage_busy_,
      *stage_batches_;
  metrics::gauge_family *pending_, *utilization_, *memory_total_, *memory_used_, *stages_,
      *tensor_parallel_, *micro_batch_;
  metrics::histogram_family* batch_size_;

  std::mutex mutex_;
  std::map<std::pair<std::string, int64_t>, model_metrics> models_;
  struct device_sample {
    double busy_us = 0;
    std::chrono::steady_clock::time_point at;
  };
  std::map<int32_t, device_sample> last_; // per device, at the previous render
};

} // namespace troupe::serve
