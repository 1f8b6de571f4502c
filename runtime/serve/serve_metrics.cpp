// serve_metrics: registers the serving metric families and updates them per request and batch.
#include "runtime/serve/serve_metrics.hpp"

#include <algorithm>
#include <stdexcept>

namespace troupe::serve {

namespace {

template <class T> T* must(expected<T*> family) {
  // The names are fixed here and distinct, so a failure is a bug in this file.
  if (!family)
    throw std::logic_error(family.error().to_string());
  return *family;
}

} // namespace

serve_metrics::serve_metrics() {
  auto& r = registry_;
  const std::vector<std::string> mv{"model", "version"};
  success_ = must(r.add_counter("nv_inference_request_success",
                                "Inference requests answered successfully", mv));
  failure_ = must(r.add_counter("nv_inference_request_failure",
                                "Inference requests that failed, by reason (the error code)",
                                {"model", "version", "reason"}));
  inferences_ = must(r.add_counter("nv_inference_count",
                                   "Inferences performed (rows; a request of n rows counts n)", mv));
  executions_ = must(r.add_counter(
      "nv_inference_exec_count", "Batches executed (count / exec_count = average batch size)", mv));
  request_us_ = must(r.add_counter("nv_inference_request_duration_us",
                                   "Cumulative end-to-end request handling time", mv));
  queue_us_ = must(r.add_counter("nv_inference_queue_duration_us",
                                 "Cumulative time requests waited in the batcher's queue", mv));
  input_us_ = must(r.add_counter("nv_inference_compute_input_duration_us",
                                 "Cumulative time spent building batch inputs", mv));
  infer_us_ = must(r.add_counter("nv_inference_compute_infer_duration_us",
                                 "Cumulative time the batch of each request ran on its stages", mv));
  output_us_ = must(r.add_counter("nv_inference_compute_output_duration_us",
                                  "Cumulative time spent writing replies", mv));
  pending_ = must(r.add_gauge("nv_inference_pending_request_count",
                              "Requests sent to the model and not yet answered", mv));
  batch_size_ = must(r.add_histogram("troupe_batch_size", "Rows of each executed batch", mv,
                                     metrics::exponential_buckets(1, 2, 11)));
  const std::vector<std::string> stage_labels{"model", "version", "stage"};
  stage_busy_ = must(r.add_counter("troupe_stage_busy_us",
                                   "Cumulative time a pipeline stage ran batches", stage_labels));
  stage_batches_ = must(r.add_counter("troupe_stage_batches",
                                      "Batches a pipeline stage ran (all micro-batches of a "
                                      "batch count once)", stage_labels));
  stages_ = must(r.add_gauge("troupe_model_pipeline_stages",
                             "Pipeline stages of each replica of the model", mv));
  tensor_parallel_ = must(r.add_gauge("troupe_model_tensor_parallel",
                                      "Tensor-parallel degree of each stage", mv));
  micro_batch_ = must(r.add_gauge("troupe_model_micro_batch",
                                  "Rows per pipeline micro-batch (0: the whole batch)", mv));
  device_busy_ = must(r.add_counter("troupe_device_busy_us",
                                    "Cumulative time a device ran stages", {"device"}));
  utilization_ = must(r.add_gauge("troupe_device_utilization",
                                  "Busy fraction of a device since the previous scrape",
                                  {"device"}));
  memory_total_ = must(
      r.add_gauge("troupe_device_memory_total_bytes", "Memory a device offers", {"device"}));
  memory_used_ = must(r.add_gauge("troupe_device_memory_used_bytes",
                                  "Memory placed replicas use on a device", {"device"}));
}

model_metrics& serve_metrics::model(std::string_view name, int64_t version) {
  std::lock_guard lock(mutex_);
  auto key = std::make_pair(std::string(name), version);
  auto it = models_.find(key);
  if (it != models_.end())
    return it->second;
  model_metrics m;
  m.name = std::string(name);
  m.version = std::to_string(version);
  std::initializer_list<std::string_view> labels{m.name, m.version};
  m.success = &success_->with(labels);
  m.inferences = &inferences_->with(labels);
  m.executions = &executions_->with(labels);
  m.request_us = &request_us_->with(labels);
  m.queue_us = &queue_us_->with(labels);
  m.compute_input_us = &input_us_->with(labels);
  m.compute_infer_us = &infer_us_->with(labels);
  m.compute_output_us = &output_us_->with(labels);
  m.pending = &pending_->with(labels);
  m.batch_size = &batch_size_->with(labels);
  m.pipeline_stages = &stages_->with(labels);
  m.tensor_parallel = &tensor_parallel_->with(labels);
  m.micro_batch = &micro_batch_->with(labels);
  return models_.emplace(std::move(key), std::move(m)).first->second;
}

void serve_metrics::succeeded(model_metrics& m, int64_t rows, const request_timing& t) {
  m.success->inc();
  m.inferences->inc(static_cast<double>(rows));
  m.request_us->inc(static_cast<double>(t.request_us));
  m.queue_us->inc(static_cast<double>(t.queue_us));
  m.compute_input_us->inc(static_cast<double>(t.compute_input_us));
  m.compute_infer_us->inc(static_cast<double>(t.compute_infer_us));
  m.compute_output_us->inc(static_cast<double>(t.compute_output_us));
}

void serve_metrics::failed(std::string_view model, std::string_view version,
                           std::string_view reason) {
  failure_->with({model, version, reason}).inc();
}

void serve_metrics::batch(model_metrics& m, int64_t rows, const std::vector<int32_t>& devices,
                          const std::vector<int64_t>& stage_us) {
  m.executions->inc();
  m.batch_size->observe(static_cast<double>(rows));
  for (size_t i = 0; i < devices.size() && i < stage_us.size(); ++i)
    device_busy_->with({std::to_string(devices[i])}).inc(static_cast<double>(stage_us[i]));
  for (size_t i = 0; i < stage_us.size(); ++i) {
    const auto stage = std::to_string(i);
    stage_busy_->with({m.name, m.version, stage}).inc(static_cast<double>(stage_us[i]));
    stage_batches_->with({m.name, m.version, stage}).inc();
  }
}

void serve_metrics::set_plan(model_metrics& m, int64_t stages, int64_t tensor_parallel,
                             int64_t micro_batch) {
  m.pipeline_stages->set(static_cast<double>(stages));
  m.tensor_parallel->set(static_cast<double>(tensor_parallel));
  m.micro_batch->set(static_cast<double>(micro_batch));
}

void serve_metrics::set_device_memory(int32_t device, uint64_t total_bytes, uint64_t used_bytes) {
  const auto label = std::to_string(device);
  memory_total_->with({label}).set(static_cast<double>(total_bytes));
  memory_used_->with({label}).set(static_cast<double>(used_bytes));
  std::lock_guard lock(mutex_);
  if (!last_.count(device))
    last_[device] = {device_busy_->with({label}).value(), std::chrono::steady_clock::now()};
}

std::string serve_metrics::render() {
  {
    std::lock_guard lock(mutex_);
    const auto now = std::chrono::steady_clock::now();
    for (auto& [device, sample] : last_) {
      const auto label = std::to_string(device);
      const double busy = device_busy_->with({label}).value();
      const double wall =
          std::chrono::duration<double, std::micro>(now - sample.at).count();
      if (wall > 0)
        utilization_->with({label}).set(std::min(1.0, (busy - sample.busy_us) / wall));
      sample = {busy, now};
    }
  }
  return registry_.render();
}

} // namespace troupe::serve
