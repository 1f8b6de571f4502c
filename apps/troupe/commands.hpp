// commands: the subcommands of the troupe command line, one file each.
#pragma once

#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "kernels/cpu/cpu_context.hpp"
#include "kernels/status.hpp"

namespace troupe::app {

void add_run_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_ops_command(CLI::App& app);
void add_plan_command(CLI::App& app);
void add_load_command(CLI::App& app);
void add_serve_command(CLI::App& app);
void add_devices_command(CLI::App& app);

/// Prints "error: <code>: <message>" on stderr and returns 1, the exit code of a failed command.
int fail(const status& st);

/// Parses "0,1,4-7" into core ids; throws CLI::ValidationError on bad text.
std::vector<int> parse_core_list(const std::string& text);

/// --threads and --cores options shared by commands that run a backend.
struct backend_flags {
  int threads = 0;
  std::string cores;
  void add_to(CLI::App& cmd);
  cpu::cpu_limits limits() const;
};

} // namespace troupe::app
