// Tests for CPU backend limits: thread count and core pinning of the calling thread.
#include <doctest/doctest.h>

#include <omp.h>
#include <sched.h>

#include <thread>

#include "kernels/cpu/cpu_context.hpp"

using namespace troupe;

TEST_CASE("cpu_context pins the entering thread to its cores and limits its OpenMP team") {
  std::thread worker([] {
    cpu::cpu_context ctx{{1, {0}}};
    REQUIRE(ctx.enter().is_ok());
    cpu_set_t set;
    CPU_ZERO(&set);
    REQUIRE(sched_getaffinity(0, sizeof(set), &set) == 0);
    CHECK(CPU_COUNT(&set) == 1);
    CHECK(CPU_ISSET(0, &set));
    CHECK(omp_get_max_threads() == 1);
    int team = 0;
#pragma omp parallel
    {
#pragma omp atomic
      ++team;
    }
    CHECK(team == 1);
  });
  worker.join();
}

TEST_CASE("cpu_context defaults to one thread per listed core and rejects bad cores") {
  cpu::cpu_context two{{0, {0, 1}}};
  CHECK(two.threads() == 2);
  cpu::cpu_context bad{{1, {-3}}};
  std::thread worker([&] { CHECK(bad.enter().code() == errc::invalid_argument); });
  worker.join();
}
