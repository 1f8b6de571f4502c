// instance_plan: KIND_GPU / KIND_CPU / KIND_AUTO resolution of a model's instance groups.
#include "runtime/serve/instance_plan.hpp"

#include <optional>

namespace troupe::serve {

expected<instance_plan> plan_instances(const std::string& name, const model_config& config,
                                       const gpu_probes& probes) {
  std::optional<expected<std::vector<gpu_device>>> listed;
  auto gpus = [&]() -> const expected<std::vector<gpu_device>>& {
    if (!listed)
      listed = probes.list_gpus();
    return *listed;
  };
  std::optional<status> checked;
  auto runs_model = [&]() -> const status& {
    if (!checked)
      checked = probes.runs_model ? probes.runs_model() : status::ok();
    return *checked;
  };
  auto groups = config.instance_groups;
  if (groups.empty())
    groups.push_back(instance_group{}); // one KIND_AUTO instance
  instance_plan out;
  bool cpu = false;
  for (const auto& group : groups) {
    bool on_gpu = false;
    const auto asked_gpu = [&](errc code, const std::string& why) {
      return make_error(code, "model {}: instance_group '{}' asks for KIND_GPU: {}", name,
                        group.name, why);
    };
    if (group.kind == instance_kind::gpu) {
      if (!gpus()) {
        const auto& why = gpus().error().message();
        return asked_gpu(errc::unavailable, why.starts_with("no usable CUDA device")
                                                ? why
                                                : "no usable CUDA device: " + why);
      }
      if (!runs_model())
        return asked_gpu(runs_model().code(), runs_model().message());
      on_gpu = true;
    } else if (group.kind == instance_kind::automatic && gpus() && !gpus()->empty()) {
      on_gpu = runs_model().is_ok();
      if (!on_gpu)
        out.gpu_declined = runs_model().message();
    }
    (on_gpu ? out.gpu : cpu) = true;
    if (out.gpu && cpu)
      return make_error(errc::unsupported,
                        "model {}: instance_group '{}': GPU and CPU instance "
                        "groups in one model are not served together",
                        name, group.name);
    if (on_gpu)
      for (int64_t i = 0; i < group.count; ++i)
        out.gpus.emplace_back(group.gpus.begin(), group.gpus.end());
    out.instances += group.count;
  }
  return out;
}

} // namespace troupe::serve
