// completion_worker_test: jobs run in order on the worker's own thread, a throwing job does not
// stop the others, finish() runs what was posted, and a job that destroys its worker runs the
// rest of the queue itself instead of waiting for its own thread.
#include <doctest/doctest.h>

#include <atomic>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "runtime/parallel/completion_worker.hpp"

using namespace troupe;

TEST_CASE("a completion worker runs jobs in posting order on a thread of its own") {
  std::vector<int> order;
  std::vector<std::thread::id> threads;
  {
    completion_worker worker;
    for (int i = 0; i < 100; ++i)
      worker.post([&, i] {
        order.push_back(i); // only the worker thread writes, one job at a time
        threads.push_back(std::this_thread::get_id());
      });
    worker.finish(); // waits for the hundred
    CHECK_FALSE(worker.on_worker_thread());
  }
  REQUIRE(order.size() == 100);
  for (int i = 0; i < 100; ++i)
    CHECK(order[static_cast<size_t>(i)] == i);
  for (auto id : threads) {
    CHECK(id == threads.front());
    CHECK(id != std::this_thread::get_id());
  }
}

TEST_CASE("a job that throws does not stop the jobs after it") {
  int ran = 0;
  completion_worker worker;
  worker.post([] { throw std::runtime_error("a failing completion"); });
  worker.post([&] { ++ran; });
  worker.post([] { throw 42; });
  worker.post([&] { ++ran; });
  worker.finish();
  CHECK(ran == 2);
}

TEST_CASE("jobs posted after finish are dropped, and finishing twice is harmless") {
  int ran = 0;
  completion_worker worker;
  worker.post([&] { ++ran; });
  worker.finish();
  worker.post([&] { ++ran; });
  worker.finish();
  CHECK(ran == 1);
}

TEST_CASE("a job that destroys its worker runs the jobs queued behind it on the spot") {
  // The owner of the worker (a GPU session) can be destroyed by a completion it runs (the
  // completion dropped the last reference): joining its own thread would never return.
  auto worker = std::make_unique<completion_worker>();
  std::promise<void> queued;
  std::promise<std::vector<int>> finished;
  std::vector<int> order;
  std::thread::id first_thread, rest_thread;
  worker->post([&] {
    queued.get_future().wait(); // until the two below are queued behind this job
    first_thread = std::this_thread::get_id();
    order.push_back(0);
    worker.reset(); // ~completion_worker on its own thread
    order.push_back(3);
    finished.set_value(order);
  });
  worker->post([&] {
    rest_thread = std::this_thread::get_id();
    order.push_back(1);
  });
  worker->post([&] { order.push_back(2); });
  queued.set_value();
  const auto got = finished.get_future().get();
  CHECK(got == std::vector<int>{0, 1, 2, 3}); // the queued two ran inside the reset
  CHECK(rest_thread == first_thread);
  CHECK(worker == nullptr);
}

TEST_CASE("drain returns once the jobs posted before it have run") {
  completion_worker worker;
  std::promise<void> release;
  std::atomic<bool> second_ran{false};
  worker.post([f = release.get_future().share()] { f.wait(); }); // holds the queue
  worker.post([&] { second_ran = true; });
  bool seen = false;
  std::thread drainer([&] {
    worker.drain();
    seen = second_ran.load(); // drain may return only after the second job
  });
  release.set_value();
  drainer.join();
  CHECK(seen);
  worker.finish();
  worker.drain(); // after finish: returns at once
}
