// troupe devices: lists the GPUs this process can use, or why there are none.
#include <cstdio>

#include "apps/troupe/commands.hpp"
#include "kernels/gpu_devices.hpp"

namespace troupe::app {

void add_devices_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("devices", "list the GPUs (name, sm version, memory)");
  cmd->callback([] {
    auto gpus = list_gpus(/*measure_free=*/true);
    if (!gpus) {
      std::printf("no GPU: %s\n", gpus.error().message().c_str());
      return;
    }
    for (const auto& g : *gpus)
      std::printf("cuda:%d  %s  sm_%d  %.1f GiB total, %.1f GiB free\n", g.index, g.name.c_str(),
                  g.sm, static_cast<double>(g.total_bytes) / (1 << 30),
                  static_cast<double>(g.free_bytes) / (1 << 30));
  });
}

} // namespace troupe::app
