// fail: how every troupe subcommand reports an error and exits.
#include <cstdio>

#include "apps/troupe/commands.hpp"

namespace troupe::app {

int fail(const status& st) {
  std::fprintf(stderr, "error: %s\n", st.to_string().c_str());
  return 1;
}

} // namespace troupe::app
