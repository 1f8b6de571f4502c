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
  /// KIND_AUTO found GPUs but the GPU backend cannot run the model: why it serves on the CPU.
  std::string gpu_declined;
};

/// What plan_instances asks about the machine and the model: each at most once, and only when
/// a group may run on a GPU (listing GPUs loads the CUDA plugin).
struct gpu_probes {
  std::function<expected<std::vector<gpu_device>>()> list_gpus;
  /// ok when the GPU backend runs every node of the model (gpu_session::check); else the
  /// error naming the node it cannot run.
  std::function<status()> runs_model;
};

/// Resolves the instance groups of model `name` (no groups: one KIND_AUTO instance). KIND_GPU
/// needs a listed GPU (else `unavailable`, "no usable CUDA device: ...") and a model the GPU
/// backend runs (else its error); KIND_AUTO takes the GPU when one is listed and the backend
/// runs the model, else the CPU (saying why in `gpu_declined`); pipeline stages, tensor
/// parallelism and manual cuts run on either. GPU and CPU groups in one model are
/// `unsupported`.
expected<instance_plan> plan_instances(const std::string& name, const model_config& config,
                                       const gpu_probes& probes);

} // namespace troupe::serve
