// restart_backoff_test: the waits between a failing restart's tries double up to the cap, and
// the tries end after the configured number; a replica's restarts are told apart by epoch.
#include <doctest/doctest.h>

#include "runtime/serve/restart_backoff.hpp"

using namespace troupe;
using std::chrono::milliseconds;

TEST_CASE("a failing restart waits twice as long after each failure, up to the cap, then gives up") {
  serve::restart_backoff b;
  b.first = milliseconds{10};
  b.cap = milliseconds{50};
  b.retries = 5;
  CHECK_FALSE(b.wait_after(0)); // nothing failed: no wait to compute
  CHECK(b.wait_after(1) == milliseconds{10});
  CHECK(b.wait_after(2) == milliseconds{20});
  CHECK(b.wait_after(3) == milliseconds{40});
  CHECK(b.wait_after(4) == milliseconds{50});
  CHECK(b.wait_after(5) == milliseconds{50});
  CHECK_FALSE(b.wait_after(6)); // the fifth retry failed too: give up
}

TEST_CASE("the default backoff tries nine times over about eleven seconds") {
  const serve::restart_backoff b;
  milliseconds total{0};
  uint32_t tries = 1;
  for (uint32_t failures = 1; auto wait = b.wait_after(failures); ++failures) {
    total += *wait;
    ++tries;
  }
  CHECK(tries == 9);
  CHECK(total == milliseconds{50 + 100 + 200 + 400 + 800 + 1600 + 3200 + 5000});
}

TEST_CASE("with no retries a failed restart gives up at once; a huge failure count never overflows") {
  serve::restart_backoff none;
  none.retries = 0;
  CHECK_FALSE(none.wait_after(1));
  serve::restart_backoff many;
  many.retries = 1000;
  CHECK(many.wait_after(1000) == many.cap);
}

TEST_CASE("a replica's restarts: only the current epoch of each unit matches, and each counts "
          "its own refusals") {
  serve::restart_backoff b;
  b.first = milliseconds{10};
  b.retries = 2;
  serve::replica_rejoins r;
  CHECK_FALSE(r.current(0, 0)); // nothing begun, and epoch 0 is never a restart
  r.begin(1, 7);                // stage 1 restarts first
  r.begin(0, 8);                // then stage 0: stage 1's restart stays current
  CHECK(r.current(1, 7));
  CHECK(r.current(0, 8));
  CHECK_FALSE(r.current(0, 7));
  CHECK_FALSE(r.current(2, 7));
  CHECK(r.refused(0, b) == milliseconds{10});
  CHECK(r.refused(0, b) == milliseconds{20});
  CHECK_FALSE(r.refused(0, b)); // the second retry was refused too: give up
  CHECK(r.failures(0) == 3);
  CHECK(r.failures(1) == 0);
  r.begin(0, 9); // a new restart of stage 0 starts over
  CHECK_FALSE(r.current(0, 8));
  CHECK(r.failures(0) == 0);
}
