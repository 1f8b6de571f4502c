// openmp_wait_policy: makes the apps' OpenMP teams sleep at barriers instead of spinning.
#pragma once

#include <cstdlib>
#include <unistd.h>

namespace troupe::app {

/// libgomp reads OMP_WAIT_POLICY once, when it is loaded, so setting it from main() is too
/// late: the process re-executes itself with the variable set. Spinning teams lose whole
/// scheduler time slices as soon as anything else wants a core (CAF's worker threads, a
/// second executor, a build): ResNet-18 at batch 8 on 2 busy cores measured 25 img/s
/// spinning against 29-39 img/s passive. A value the user set is kept.
inline void use_passive_openmp_wait(char** argv) {
  if (std::getenv("OMP_WAIT_POLICY") != nullptr)
    return;
  setenv("OMP_WAIT_POLICY", "passive", 1);
  execv("/proc/self/exe", argv);
  // execv only returns on failure; the process then runs with libgomp's default policy.
}

} // namespace troupe::app
