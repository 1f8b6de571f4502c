// troupe ops: lists the operators the CPU backend supports.
#include <cstdio>

#include "apps/troupe/commands.hpp"
#include "runtime/ops/op_registry.hpp"

namespace troupe::app {

void add_ops_command(CLI::App& app) {
  auto* cmd = app.add_subcommand("ops", "list supported ONNX operators");
  cmd->callback([] {
    const auto types = cpu_registry().types();
    for (const auto& t : types)
      std::printf("%s\n", t.c_str());
    std::printf("%zu operators\n", types.size());
  });
}

} // namespace troupe::app
