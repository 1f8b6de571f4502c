// instance_plan: KIND_GPU / KIND_CPU / KIND_AUTO resolution of a model's instance groups.
#include "runtime/serve/instance_plan.hpp"

#include <optional>

namespace troupe::serve {

expected<instance_plan>
plan_instances(const std::string& name, const model_config& config,
               const std::function<expected<std::vector<gpu_device>>()>& list_gpus) {
  // Listing GPUs loads the CUDA plugin: done only for a group that may use one.
  std::optional<expected<std::vector<gpu_device>>> listed;
  auto gpus = [&]() -> const expected<std::vector<gpu_device>>& {
    if (!listed)
      listed = list_gpus();
    return *listed;
  };
  auto groups = config.instance_groups;
  if (groups.empty())
    groups.push_back(instance_group{}); // one KIND_AUTO instance
  instance_plan out;
  bool cpu = false;
  for (const auto& group : groups) {
    bool on_gpu = false;
    if (group.kind == instance_kind::gpu) {
      if (!gpus()) {
        const auto& why = gpus().error().message();
        const char* prefix =
            why.starts_with("no usable CUDA device") ? "" : "no usable CUDA device: ";
        return make_error(errc::unavailable,
                          "model {}: instance_group '{}' asks for KIND_GPU: "
                          "{}{}",
                          name, group.name, prefix, why);
      }
      on_gpu = true;
    } else if (group.kind == instance_kind::automatic) {
      on_gpu = gpus() && !gpus()->empty();
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
