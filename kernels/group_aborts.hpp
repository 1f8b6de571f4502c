// group_aborts: the process's record of aborted collective groups and the live members to tell,
// so a rank stuck in a collective (or in joining) of a group whose peer is gone can be released.
#pragma once

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <mutex>
#include <span>
#include <string>

#include "kernels/status.hpp"

namespace troupe {

/// Groups are named by a key (an NCCL unique id's bytes, never reused). A member enlists with a
/// callback for as long as it lives; abort(key) calls the callbacks of the key's members once
/// each and remembers the key, so a member that enlists later (a rank still loading when its
/// group was given up) learns at once that its group is dead. The latest `remembered` aborted
/// keys are kept, older ones forgotten.
/// Thread-safe; callbacks run on the aborting thread with the board locked, so they must not
/// enlist, leave or abort themselves, and `leave` returns only once no callback of its member
/// runs any more.
class group_aborts {
public:
  using callback = std::function<void(const status& why)>;

  /// The board of this process, shared by the actors (which abort) and the CUDA backend
  /// plugin (whose NCCL communicators enlist).
  static group_aborts& global();

  explicit group_aborts(size_t remembered = 4096) : remembered_(remembered) {}

  /// Enlists a member of group `k`: its id for `leave`, or the abort's error when the group was
  /// aborted already (then nothing is enlisted and `on_abort` is not called).
  expected<uint64_t> enlist(std::span<const std::byte> k, callback on_abort);
  /// Withdraws member `id` (unknown ids are ignored).
  void leave(uint64_t id);
  /// Aborts group `k`: calls each enlisted member's callback with `why` and drops them; the
  /// first abort's reason is remembered for later members, later ones change nothing.
  void abort(std::span<const std::byte> k, const status& why);
  /// The abort's error of group `k`, or ok.
  status aborted(std::span<const std::byte> k) const;
  /// Members enlisted and aborted groups remembered (tests).
  size_t members() const;
  size_t aborted_groups() const;

private:
  /// The bytes as a string: a map of byte vectors trips GCC 12's memcmp bound warning.
  using key = std::string;
  static key key_of(std::span<const std::byte> k) {
    return {reinterpret_cast<const char*>(k.data()), k.size()};
  }
  struct member {
    key group;
    callback on_abort;
  };
  mutable std::mutex mutex_;
  uint64_t next_id_ = 1;
  std::map<uint64_t, member> members_;
  size_t remembered_;
  std::map<key, status> aborted_;
  std::deque<key> abort_order_; // oldest first
};

} // namespace troupe
