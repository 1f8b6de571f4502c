// group_registry_test: host groups by id hand each rank out once, abort by id, and vanish when
// released; ranks taken from the registry run real collectives.
#include <doctest/doctest.h>

#include <random>
#include <thread>

#include "runtime/parallel/group_registry.hpp"

using namespace troupe;

TEST_CASE("group registry: each rank is taken once, ids are unique, released groups are gone") {
  group_registry registry;
  auto a = registry.create_host_group(2);
  auto b = registry.create_host_group(3);
  REQUIRE(a);
  REQUIRE(b);
  const uint64_t reserved = registry.reserve_id();
  CHECK(*a != *b);
  CHECK(reserved != *a);
  CHECK(reserved != *b);
  CHECK(registry.groups() == 2);
  CHECK(registry.create_host_group(0).error().code() == errc::invalid_argument);

  auto r1 = registry.take(*b, 1);
  REQUIRE(r1);
  CHECK((*r1)->rank() == 1);
  CHECK((*r1)->size() == 3);
  CHECK(registry.take(*b, 1).error().code() == errc::invalid_argument);
  CHECK(registry.take(*b, 3).error().code() == errc::invalid_argument);
  CHECK(registry.take(*b, -1).error().code() == errc::invalid_argument);
  CHECK(registry.take(reserved, 0).error().code() == errc::not_found);

  registry.release(*b);
  CHECK(registry.groups() == 1);
  CHECK(registry.take(*b, 0).error().code() == errc::not_found);
  CHECK(registry.aborted(*b).is_ok()); // unknown: nothing to report
  registry.abort(*b, status{errc::internal, "ignored"}); // unknown ids are ignored
}

TEST_CASE("group registry: ranks taken on their own threads sum, an abort by id releases a "
          "rank waiting for a partner that never comes, and the rank keeps the abort after "
          "release") {
  group_registry registry;
  auto id = registry.create_host_group(2);
  REQUIRE(id);
  std::mt19937 rng(std::random_device{}());
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  const float x0 = dist(rng), x1 = dist(rng);
  std::vector<float> got(2, 0.f);
  std::vector<std::thread> threads;
  for (int r = 0; r < 2; ++r)
    threads.emplace_back([&, r] {
      // CHECK, not REQUIRE: a failed REQUIRE throws, which a thread cannot pass on.
      auto comm = registry.take(*id, r);
      CHECK(comm);
      if (!comm)
        return;
      tensor t = tensor::from_vector<float>({1}, std::vector<float>{r == 0 ? x0 : x1});
      CHECK((*comm)->all_reduce_sum(t).is_ok());
      got[static_cast<size_t>(r)] = t.values<float>()[0];
    });
  for (auto& t : threads)
    t.join();
  CHECK(got[0] == doctest::Approx(x0 + x1));
  CHECK(got[1] == got[0]);

  auto lonely = registry.create_host_group(2);
  REQUIRE(lonely);
  auto comm = registry.take(*lonely, 0);
  REQUIRE(comm);
  CHECK((*comm)->aborted().is_ok());
  status result;
  std::thread waiter([&] {
    tensor t = tensor::zeros(dtype::f32, {4});
    result = (*comm)->all_reduce_sum(t);
  });
  registry.abort(*lonely, status{errc::unavailable, "rank 1 stopped"});
  waiter.join();
  CHECK(result.code() == errc::unavailable);
  CHECK(result.message().find("rank 1 stopped") != std::string::npos);
  CHECK(registry.aborted(*lonely).code() == errc::unavailable);
  // A rank still knows after the group is released (the registry then forgets it).
  CHECK((*comm)->aborted().code() == errc::unavailable);
  registry.release(*lonely);
  CHECK(registry.aborted(*lonely).is_ok());
  CHECK((*comm)->aborted().message().find("rank 1 stopped") != std::string::npos);
}
