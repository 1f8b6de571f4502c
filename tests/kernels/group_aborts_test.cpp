// group_aborts_test: members of an aborted group are told once with the first reason, later
// members are refused, other groups and withdrawn members are left alone, only the latest
// aborts are remembered, and an abort from another thread releases a member that waits for it.
#include <doctest/doctest.h>

#include <atomic>
#include <condition_variable>
#include <thread>

#include "kernels/group_aborts.hpp"

using namespace troupe;

namespace {

std::vector<std::byte> key_of(uint8_t b) { return std::vector<std::byte>(128, std::byte{b}); }

} // namespace

TEST_CASE("an abort tells every member of its group once, with the first reason") {
  group_aborts board;
  const auto a = key_of(1), b = key_of(2);
  std::vector<std::string> told_a0, told_a1, told_b;
  auto a0 = board.enlist(a, [&](const status& why) { told_a0.push_back(why.message()); });
  auto a1 = board.enlist(a, [&](const status& why) { told_a1.push_back(why.message()); });
  auto b0 = board.enlist(b, [&](const status& why) { told_b.push_back(why.message()); });
  REQUIRE(a0.has_value());
  REQUIRE(a1.has_value());
  REQUIRE(b0.has_value());
  CHECK(board.members() == 3);

  board.abort(a, status{errc::unavailable, "rank 1 stopped"});
  board.abort(a, status{errc::unavailable, "the replica was stopped"});
  CHECK(told_a0 == std::vector<std::string>{"rank 1 stopped"});
  CHECK(told_a1 == std::vector<std::string>{"rank 1 stopped"});
  CHECK(told_b.empty());
  CHECK(board.members() == 1);
  CHECK(board.aborted(a).message() == "rank 1 stopped");
  CHECK(board.aborted(b).is_ok());

  // A rank that joins the dead group later is refused with the same reason.
  bool called = false;
  auto late = board.enlist(a, [&](const status&) { called = true; });
  REQUIRE_FALSE(late.has_value());
  CHECK(late.error().code() == errc::unavailable);
  CHECK(late.error().message() == "rank 1 stopped");
  CHECK_FALSE(called);

  // A withdrawn member is not told.
  board.leave(*b0);
  board.abort(b, status{});
  CHECK(told_b.empty());
  CHECK(board.aborted(b).code() == errc::unavailable);
  CHECK(board.aborted_groups() == 2);
}

TEST_CASE("a board remembers only its latest aborted groups") {
  group_aborts board(2);
  for (uint8_t g = 1; g <= 3; ++g)
    board.abort(key_of(g), status{errc::unavailable, "group " + std::to_string(g)});
  CHECK(board.aborted_groups() == 2);
  CHECK(board.aborted(key_of(1)).is_ok()); // the oldest is forgotten: its key may join again
  CHECK(board.enlist(key_of(1), nullptr).has_value());
  CHECK(board.aborted(key_of(2)).message() == "group 2");
  CHECK(board.aborted(key_of(3)).message() == "group 3");
}

TEST_CASE("an abort from another thread releases a member waiting for its group") {
  group_aborts board;
  const auto k = key_of(7);
  std::mutex mutex;
  std::condition_variable changed;
  bool aborted = false;
  std::string reason;
  auto id = board.enlist(k, [&](const status& why) {
    std::lock_guard lock{mutex};
    aborted = true;
    reason = why.message();
    changed.notify_all();
  });
  REQUIRE(id.has_value());
  // The member waits as a rank in a collective would, until its group is aborted.
  std::thread member([&] {
    std::unique_lock lock{mutex};
    changed.wait(lock, [&] { return aborted; });
  });
  std::thread aborter([&] { board.abort(k, status{errc::unavailable, "peer gone"}); });
  aborter.join();
  member.join();
  CHECK(reason == "peer gone");
  CHECK(board.members() == 0);
}
