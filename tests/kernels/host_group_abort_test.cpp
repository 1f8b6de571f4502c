// host_group_abort_test: an aborted host group releases ranks waiting for a rank that never
// comes, fails later collectives with the abort's reason, and works again after reset.
#include <doctest/doctest.h>

#include <functional>
#include <random>
#include <thread>

#include "kernels/cpu/host_communicator.hpp"

using namespace troupe;

namespace {

/// Runs body(rank, comm) on one thread per rank of `group` and returns each rank's status.
std::vector<status> on_group(host_group& group,
                             const std::function<status(int, communicator&)>& body) {
  std::vector<status> result(group.ranks.size());
  std::vector<std::thread> threads;
  for (size_t r = 0; r < group.ranks.size(); ++r)
    threads.emplace_back([&, r] { result[r] = body(static_cast<int>(r), *group.ranks[r]); });
  for (auto& t : threads)
    t.join();
  return result;
}

std::vector<float> random_values(size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  std::vector<float> v(n);
  for (auto& x : v)
    x = dist(rng);
  return v;
}

} // namespace

TEST_CASE("host group: a rank that aborts instead of joining releases the waiting ranks with its "
          "reason; after reset the same group sums correctly") {
  std::mt19937 rng(std::random_device{}());
  auto group = make_controlled_host_group(3);
  REQUIRE(group.ranks.size() == 3);
  REQUIRE(group.control);
  CHECK(group.control->aborted().is_ok());
  // Rank 1 fails before its collective: whether the others already wait or arrive later,
  // every one of them gets the abort's error, never a hang.
  auto failed = on_group(group, [&](int r, communicator& c) {
    if (r == 1) {
      group.control->abort(status{errc::internal, "rank 1 ran out of luck"});
      return status::ok();
    }
    tensor t = tensor::zeros(dtype::f32, {8});
    return c.all_reduce_sum(t);
  });
  CHECK(failed[1].is_ok());
  for (int r : {0, 2}) {
    CAPTURE(r);
    CHECK(failed[static_cast<size_t>(r)].code() == errc::internal);
    CHECK(failed[static_cast<size_t>(r)].message().find("rank 1 ran out of luck") !=
          std::string::npos);
  }
  // Still aborted: later collectives and receives fail at once, on every rank.
  auto later = on_group(group, [&](int r, communicator& c) {
    tensor t = tensor::zeros(dtype::f32, {4});
    tensor whole = tensor::zeros(dtype::f32, {12});
    const bool gather_failed = !c.all_gather(t, whole, 0).is_ok();
    const bool recv_failed = !c.recv(t, (r + 1) % 3).is_ok();
    return gather_failed && recv_failed ? status::ok() : status{errc::internal, "ran"};
  });
  for (const auto& s : later)
    CHECK(s.is_ok());
  // A second abort keeps the first reason.
  group.control->abort(status{errc::timeout, "second"});
  CHECK(group.control->aborted().message().find("rank 1 ran out of luck") != std::string::npos);

  group.control->reset();
  CHECK(group.control->aborted().is_ok());
  std::vector<std::vector<float>> parts;
  for (int r = 0; r < 3; ++r)
    parts.push_back(random_values(10, rng));
  std::vector<double> want(10, 0.0);
  for (const auto& p : parts)
    for (size_t i = 0; i < p.size(); ++i)
      want[i] += p[i];
  std::vector<std::vector<float>> got(3);
  auto ok = on_group(group, [&](int r, communicator& c) {
    tensor t = tensor::from_vector<float>({10}, parts[static_cast<size_t>(r)]);
    TROUPE_TRY_STATUS(c.all_reduce_sum(t));
    auto v = t.values<float>();
    got[static_cast<size_t>(r)].assign(v.begin(), v.end());
    return status::ok();
  });
  for (int r = 0; r < 3; ++r) {
    CAPTURE(r);
    CHECK(ok[static_cast<size_t>(r)].is_ok());
    REQUIRE(got[static_cast<size_t>(r)].size() == 10);
    for (size_t i = 0; i < 10; ++i)
      CHECK(got[static_cast<size_t>(r)][i] == doctest::Approx(want[i]).epsilon(1e-5));
  }
}

TEST_CASE("host group: an abort releases a rank blocked in recv from a rank that never sends") {
  auto group = make_controlled_host_group(2);
  auto st = on_group(group, [&](int r, communicator& c) {
    if (r == 1) {
      group.control->abort(status{errc::unavailable, "peer stopped"});
      return status::ok();
    }
    tensor t = tensor::zeros(dtype::f32, {2});
    return c.recv(t, 1);
  });
  CHECK(st[0].code() == errc::unavailable);
  CHECK(st[0].message().find("peer stopped") != std::string::npos);
}

TEST_CASE("host group: after an abort a send is refused with the abort's reason, so an aborted "
          "link keeps nothing nobody will take; after a reset it works again") {
  auto group = make_controlled_host_group(2);
  const tensor t = tensor::from_vector<float>({2}, std::vector<float>{1, 2});
  REQUIRE(group.ranks[0]->send(t, 1)); // queued before the abort
  group.control->abort(status{errc::unavailable, "stage 1 cannot load"});
  const auto refused = group.ranks[0]->send(t, 1);
  CHECK(refused.code() == errc::unavailable);
  CHECK(refused.message().find("stage 1 cannot load") != std::string::npos);
  tensor none = tensor::zeros(dtype::f32, {2});
  CHECK(group.ranks[1]->recv(none, 0).code() == errc::unavailable); // not the queued one
  group.control->reset();
  const tensor fresh = tensor::from_vector<float>({2}, std::vector<float>{5, 6});
  REQUIRE(group.ranks[0]->send(fresh, 1));
  tensor got = tensor::zeros(dtype::f32, {2});
  REQUIRE(group.ranks[1]->recv(got, 0));
  CHECK(got.values<float>()[0] == 5.0f);
  CHECK(got.values<float>()[1] == 6.0f);
}
