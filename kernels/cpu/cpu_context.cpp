// cpu_context: thread count and core pinning for oneDNN's OpenMP runtime.
#include "kernels/cpu/cpu_context.hpp"

#include <omp.h>
#include <pthread.h>
#include <sched.h>

namespace troupe::cpu {

int available_cores() {
  cpu_set_t set;
  CPU_ZERO(&set);
  if (sched_getaffinity(0, sizeof(set), &set) != 0)
    return 1;
  return CPU_COUNT(&set);
}

cpu_context::cpu_context(cpu_limits limits)
  : limits_(std::move(limits)),
    threads_(limits_.threads > 0        ? limits_.threads
             : !limits_.cores.empty()   ? static_cast<int>(limits_.cores.size())
                                        : available_cores()),
    engine_(dnnl::engine::kind::cpu, 0),
    stream_(engine_) {}

status cpu_context::enter() const {
  if (!limits_.cores.empty()) {
    cpu_set_t set;
    CPU_ZERO(&set);
    for (int core : limits_.cores) {
      if (core < 0 || core >= CPU_SETSIZE)
        return make_error(errc::invalid_argument, "core {} out of range", core);
      CPU_SET(core, &set);
    }
    if (pthread_setaffinity_np(pthread_self(), sizeof(set), &set) != 0)
      return make_error(errc::invalid_argument, "cannot pin thread to the requested cores");
  }
  // OpenMP's nthreads ICV is per thread: this limits only the calling thread's team.
  omp_set_num_threads(threads_);
  return status::ok();
}

} // namespace troupe::cpu
