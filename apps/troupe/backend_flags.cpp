// backend_flags: --threads/--cores parsing shared by the commands.
#include <sstream>

#include "apps/troupe/commands.hpp"

namespace troupe::app {

std::vector<int> parse_core_list(const std::string& text) {
  std::vector<int> cores;
  std::istringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    try {
      auto dash = item.find('-');
      size_t used = 0;
      int lo = std::stoi(item.substr(0, dash), &used);
      int hi = dash == std::string::npos ? lo : std::stoi(item.substr(dash + 1));
      if (lo < 0 || hi < lo || hi > 4095)
        throw CLI::ValidationError("--cores", "bad core range '" + item + "'");
      for (int c = lo; c <= hi; ++c)
        cores.push_back(c);
    } catch (const std::logic_error&) {
      throw CLI::ValidationError("--cores", "bad core list '" + text + "'");
    }
  }
  return cores;
}

void backend_flags::add_to(CLI::App& cmd) {
  cmd.add_option("--threads", threads, "threads of the CPU backend (default: one per core)")
    ->check(CLI::Range(0, 1024));
  cmd.add_option("--cores", cores, "pin the backend to these cores, e.g. 0,1 or 0-3");
}

cpu::cpu_limits backend_flags::limits() const {
  cpu::cpu_limits l;
  l.threads = threads;
  if (!cores.empty())
    l.cores = parse_core_list(cores);
  return l;
}

} // namespace troupe::app
