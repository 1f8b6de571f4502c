// model_config: a model's config.yaml (Triton's keys plus troupe's) and the repository scan.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "kernels/dtype.hpp"
#include "kernels/status.hpp"
#include "runtime/batching/queue_policy.hpp"
#include "runtime/gpu_precision.hpp"

namespace troupe {

/// An input or output the config pins down; the ONNX file has the final word on the rest.
struct tensor_restriction {
  std::string name;
  std::optional<dtype> type; // "TYPE_FP32" or "FP32"
  std::optional<std::vector<int64_t>>
      dims; // without the batch dim when max_batch_size > 0; -1 = any
};

struct dynamic_batching_config {
  std::vector<int64_t> preferred_batch_size; // sorted, unique
  microseconds max_queue_delay{0};
  bool preserve_ordering = false;
  uint32_t priority_levels = 0;        // 0 = no priorities
  uint32_t default_priority_level = 0; // when priority_levels > 0 and this is absent: the lowest
  queue_policy default_queue_policy;
  std::map<uint32_t, queue_policy> priority_queue_policy;
};

enum class instance_kind : uint8_t { automatic, cpu, gpu };

struct instance_group {
  std::string name;
  int64_t count = 1;
  instance_kind kind = instance_kind::automatic; // KIND_AUTO: GPU when present, else CPU
  std::vector<int64_t> gpus;                     // empty = any
};

struct parallelism_config {
  static constexpr int64_t automatic = 0;
  int64_t pipeline_stages = 1; // `automatic` lets the partitioner choose
  int64_t tensor_parallel = 1;
  int64_t micro_batch = 0; // rows per pipeline micro-batch; 0 = the whole batch
  /// How activations cross from a stage to the next (troupe's key `stage_transport`): inside
  /// the actor message (false, "message") or over a link the exchange sets up, send/recv on
  /// NCCL between GPUs and on the host communicator between CPU stages (true, "exchange").
  bool exchange_links = false;
};

struct version_policy {
  enum class kind : uint8_t { latest, all, specific };
  kind which = kind::latest;
  int64_t num_versions = 1;      // for latest
  std::vector<int64_t> versions; // for specific
};

struct model_config {
  std::string name;           // empty when the file does not say (the folder name holds)
  int64_t max_batch_size = 0; // 0: the model has no batch dimension
  std::vector<tensor_restriction> inputs;  // key `input`
  std::vector<tensor_restriction> outputs; // key `output`
  std::optional<dynamic_batching_config> dynamic_batching;
  std::vector<int64_t> allowed_batch_sizes;    // sorted; the last is max_batch_size
  int64_t max_batches_in_flight = 2;           // credits per replica
  std::vector<instance_group> instance_groups; // key `instance_group`; empty = one automatic
  parallelism_config parallelism;
  version_policy versions; // key `version_policy`
  gpu_precision precision = gpu_precision::fp32; // key `precision` (troupe's): GPU backend only
  bool channels_last = false; // key `channels_last` (troupe's): GPU plans in NHWC (see README)
  /// key `benchmark_convolutions` (troupe's): GPU sessions time cuDNN's algorithms on each
  /// shape's first run; unset: only when allowed_batch_sizes bounds the shapes (see
  /// benchmarks_convolutions).
  std::optional<bool> benchmark_convolutions;

  /// Whether GPU executors benchmark convolutions: as configured, else when batches are padded
  /// to allowed_batch_sizes (a few shapes, each timed once). Without that, every batch size
  /// the batcher forms is a new shape, and timing each would stall its first batch.
  bool benchmarks_convolutions() const {
    return benchmark_convolutions.value_or(!allowed_batch_sizes.empty());
  }
};

/// Parses and checks config.yaml text; `file` names it in errors, which also give the key
/// path and the expected form ("m/config.yaml: dynamic_batching.default_queue_policy.
/// timeout_action: expected REJECT or DELAY, got 'DROP'").
expected<model_config> parse_model_config(const std::string& yaml_text, const std::string& file);

/// Reads and parses a config file.
expected<model_config> load_model_config(const std::filesystem::path& file);

/// Model names as they appear in URLs and folders: [A-Za-z0-9_.-]+, not "." or "..".
bool is_valid_model_name(std::string_view name);

struct model_entry {
  std::string name;
  std::filesystem::path dir;
  model_config config;
  std::vector<int64_t> versions; // every <version>/model.onnx found, latest first
  std::vector<int64_t> serving;  // the versions version_policy selects, latest first
  std::filesystem::path model_file(int64_t version) const;
};

/// Lists <dir>/<model>/<version>/model.onnx with each model's config.yaml (a missing config
/// means defaults). Hidden entries and plain files at the top are skipped. Errors: a bad
/// model name, a bad config, a version folder that is not a positive integer or lacks
/// model.onnx, a model without versions, a config name that differs from the folder, a
/// specific version that does not exist.
expected<std::vector<model_entry>> scan_repository(const std::filesystem::path& dir);

/// One model folder of a repository (`dir` is <repo>/<name>), checked as scan_repository does.
expected<model_entry> scan_model(const std::filesystem::path& dir, const std::string& name);

} // namespace troupe
