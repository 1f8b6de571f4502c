// instance_plan: whether a model's instance groups run on GPUs or on CPU devices, and the GPUs
// each GPU instance may use.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "kernels/gpu_devices.hpp"
#include "runtime/config/model_config.hpp"

namespace troupe::serve {

/// Where a model's instances run: on GPUs (each with the GPUs it may use) or on CPU devices.
struct instance_plan {
  bool gpu = false;
  int64_t instances = 0;
  std::vector<std::vector<int32_t>> gpus; // gpu: per instance; empty = any
};

/// Resolves the instance groups of model `name` (no groups: one KIND_AUTO instance). KIND_GPU
/// needs a listed GPU (else `unavailable`, "no usable CUDA device: ..."); KIND_AUTO takes the
/// GPU when one is listed, else the CPU; pipeline stages, tensor parallelism and manual cuts
/// run on either. GPU and CPU groups in one model are `unsupported`. `list_gpus` is called at
/// most once, and only when a group may run on a GPU.
expected<instance_plan>
plan_instances(const std::string& name, const model_config& config,
               const std::function<expected<std::vector<gpu_device>>()>& list_gpus);

} // namespace troupe::serve
