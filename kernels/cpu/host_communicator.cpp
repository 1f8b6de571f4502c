// host_communicator: collectives over shared memory between threads, with rounds checked for
// matching calls so that a mismatch is an error on every rank rather than a hang, and an
// abort that releases ranks waiting for one that will never come.
#include "kernels/cpu/host_communicator.hpp"

#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>

#include "kernels/cpu/cast.hpp"

namespace troupe::cpu {
namespace {

enum class collective { all_reduce_sum, all_gather, broadcast };

const char* name_of(collective c) {
  switch (c) {
  case collective::all_reduce_sum: return "all_reduce_sum";
  case collective::all_gather: return "all_gather";
  case collective::broadcast: return "broadcast";
  }
  return "?";
}

/// What one rank brought to a round.
struct contribution {
  collective op = collective::all_reduce_sum;
  const tensor* in = nullptr; // read by every rank during the round
  tensor* out = nullptr;      // written during the round
  int arg = 0;                // axis (all_gather) or root (broadcast)
};

/// A message waiting in a send/recv mailbox.
struct message {
  tensor values;
};

} // namespace

class host_exchange {
public:
  explicit host_exchange(int ranks) : size_(ranks), slots_(static_cast<size_t>(ranks)) {}

  int size() const { return size_; }

  /// Posts this rank's contribution and waits for all others; returns the round's verdict
  /// (the last rank to arrive checks that the calls match), or the abort's error when the
  /// group is aborted before the round is complete.
  status arrive(int rank, contribution c) {
    std::unique_lock lock(mutex_);
    if (!aborted_.is_ok())
      return aborted_;
    slots_[static_cast<size_t>(rank)] = c;
    if (++arrived_ == size_) {
      verdict_ = check_round();
      release_locked();
      return verdict_;
    }
    const uint64_t gen = generation_;
    changed_.wait(lock, [&] { return generation_ != gen || !aborted_.is_ok(); });
    // A round every rank entered runs to its end (its phases touch every rank's buffers), so
    // an abort only releases ranks from rounds that are still incomplete.
    if (generation_ != gen)
      return verdict_;
    --arrived_;
    return aborted_;
  }

  /// A barrier between the phases of a round. Not abortable: every rank of the round is
  /// inside the same collective and reaches it.
  void barrier() {
    std::unique_lock lock(mutex_);
    if (++arrived_ == size_) {
      release_locked();
      return;
    }
    wait_locked(lock);
  }

  const contribution& slot(int rank) const { return slots_[static_cast<size_t>(rank)]; }

  /// Queues a send; refused (with the abort's error) once the group is aborted, so an
  /// aborted group's mailboxes never grow.
  status post(int from, int to, tensor values) {
    {
      std::lock_guard lock(mutex_);
      if (!aborted_.is_ok())
        return aborted_;
      mailboxes_[{from, to}].push_back(message{std::move(values)});
    }
    changed_.notify_all();
    return status::ok();
  }

  expected<tensor> take(int from, int to) {
    std::unique_lock lock(mutex_);
    auto& box = mailboxes_[{from, to}];
    changed_.wait(lock, [&] { return !box.empty() || !aborted_.is_ok(); });
    if (!aborted_.is_ok())
      return aborted_;
    tensor t = std::move(box.front().values);
    box.pop_front();
    return t;
  }

  void abort(const status& why) {
    {
      std::lock_guard lock(mutex_);
      if (!aborted_.is_ok())
        return; // the first cause is the one every rank reports
      aborted_ = status{why.is_ok() ? errc::unavailable : why.code(),
                        fmt::format("collective aborted: {}", why.message())};
      // Nobody takes them any more (every recv fails from now on). Emptied, not erased: a
      // rank waiting in take() holds a reference to its mailbox.
      for (auto& [route, box] : mailboxes_)
        box.clear();
    }
    changed_.notify_all();
  }

  void reset() {
    std::lock_guard lock(mutex_);
    aborted_ = status::ok();
    arrived_ = 0;
    mailboxes_.clear();
  }

  status aborted() const {
    std::lock_guard lock(mutex_);
    return aborted_;
  }

private:
  void release_locked() {
    arrived_ = 0;
    ++generation_;
    changed_.notify_all();
  }
  void wait_locked(std::unique_lock<std::mutex>& lock) {
    const uint64_t gen = generation_;
    changed_.wait(lock, [&] { return generation_ != gen; });
  }

  status check_round() const {
    const contribution& first = slots_[0];
    for (int r = 0; r < size_; ++r) {
      const contribution& c = slots_[static_cast<size_t>(r)];
      if (c.op != first.op)
        return make_error(errc::invalid_argument, "collective mismatch: rank 0 called {}, rank {} "
                          "called {}", name_of(first.op), r, name_of(c.op));
      if (c.in->type() != first.in->type() || c.in->dims() != first.in->dims())
        return make_error(errc::invalid_argument, "{}: rank 0 has {}{}, rank {} has {}{}",
                          name_of(c.op), to_string(first.in->type()), to_string(first.in->dims()), r,
                          to_string(c.in->type()), to_string(c.in->dims()));
      if (c.arg != first.arg)
        return make_error(errc::invalid_argument, "{}: rank 0 passed {} {}, rank {} passed {}",
                          name_of(c.op), c.op == collective::broadcast ? "root" : "axis", first.arg,
                          r, c.arg);
    }
    return status::ok();
  }

  const int size_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::vector<contribution> slots_;
  int arrived_ = 0;
  uint64_t generation_ = 0;
  status verdict_;
  status aborted_; // ok while the group runs
  std::map<std::pair<int, int>, std::deque<message>> mailboxes_;
};

namespace {

float load(dtype t, const void* base, int64_t i) {
  switch (t) {
  case dtype::f16: return half_to_float(static_cast<const uint16_t*>(base)[i]);
  case dtype::bf16: return bfloat16_to_float(static_cast<const uint16_t*>(base)[i]);
  default: return static_cast<const float*>(base)[i];
  }
}

void store(dtype t, void* base, int64_t i, float v) {
  switch (t) {
  case dtype::f16: static_cast<uint16_t*>(base)[i] = float_to_half(v); break;
  case dtype::bf16: static_cast<uint16_t*>(base)[i] = float_to_bfloat16(v); break;
  default: static_cast<float*>(base)[i] = v; break;
  }
}

status require_host(const tensor& t, const char* what) {
  if (t.where().type != device::kind::cpu)
    return make_error(errc::unsupported, "{}: the host communicator needs host tensors", what);
  if (t.numel() > 0 && !t.raw())
    return make_error(errc::invalid_argument, "{}: tensor has no storage", what);
  return status::ok();
}

class host_communicator final : public communicator {
public:
  host_communicator(std::shared_ptr<host_exchange> ex, int rank) : ex_(std::move(ex)), rank_(rank) {}

  int rank() const override { return rank_; }
  int size() const override { return ex_->size(); }

  status all_reduce_sum(tensor& values) override {
    const dtype t = values.type();
    status local = require_host(values, "all_reduce_sum");
    if (local.is_ok() && t != dtype::f32 && t != dtype::f16 && t != dtype::bf16)
      local = make_error(errc::unsupported, "all_reduce_sum: {} is not summed (fp32, fp16, bf16 are)",
                         to_string(t));
    // Every rank still joins the round so that one rank's bad tensor fails all of them.
    TROUPE_TRY_STATUS(join({collective::all_reduce_sum, &values, &values, local.is_ok() ? 0 : -1 - rank_},
                           local));
    // Rank r sums its chunk of the elements over all ranks (in rank order, so every element
    // has one summation order) and, once nobody reads the inputs any more, writes it to all.
    const int64_t n = values.numel();
    const int64_t chunk = (n + size() - 1) / size();
    const int64_t begin = std::min(n, chunk * rank_), end = std::min(n, begin + chunk);
    std::vector<float> sum(static_cast<size_t>(end - begin), 0.f);
    for (int r = 0; r < size(); ++r) {
      const void* src = ex_->slot(r).in->raw();
      for (int64_t i = begin; i < end; ++i)
        sum[static_cast<size_t>(i - begin)] += load(t, src, i);
    }
    ex_->barrier();
    for (int r = 0; r < size(); ++r) {
      void* dst = ex_->slot(r).out->raw();
      for (int64_t i = begin; i < end; ++i)
        store(t, dst, i, sum[static_cast<size_t>(i - begin)]);
    }
    ex_->barrier();
    return status::ok();
  }

  status all_gather(const tensor& part, tensor& whole, int axis) override {
    status local = require_host(part, "all_gather");
    if (local.is_ok())
      local = require_host(whole, "all_gather");
    int64_t ax = axis;
    if (local.is_ok()) {
      auto norm = normalize_axis(axis, part.rank());
      if (!norm)
        local = norm.error().with_context("all_gather");
      else
        ax = *norm;
    }
    if (local.is_ok()) {
      shape want = part.dims();
      want[static_cast<size_t>(ax)] *= size();
      if (whole.type() != part.type() || whole.dims() != want)
        local = make_error(errc::invalid_argument, "all_gather: output is {}{}, expected {}{}",
                           to_string(whole.type()), to_string(whole.dims()),
                           to_string(part.type()), to_string(want));
    }
    TROUPE_TRY_STATUS(join({collective::all_gather, &part, &whole, local.is_ok() ? axis : -1 - rank_},
                           local));
    const auto& dims = part.dims();
    const int64_t outer = numel_of(std::span(dims).first(static_cast<size_t>(ax)));
    const size_t inner = static_cast<size_t>(numel_of(std::span(dims).subspan(static_cast<size_t>(ax)))) *
                         size_of(part.type());
    auto* dst = static_cast<std::byte*>(whole.raw());
    for (int r = 0; r < size(); ++r) {
      const auto* src = static_cast<const std::byte*>(ex_->slot(r).in->raw());
      for (int64_t o = 0; o < outer; ++o)
        std::memcpy(dst + (static_cast<size_t>(o) * static_cast<size_t>(size()) + static_cast<size_t>(r)) * inner,
                    src + static_cast<size_t>(o) * inner, inner);
    }
    ex_->barrier(); // parts stay untouched until every rank has copied them
    return status::ok();
  }

  status broadcast(tensor& values, int root) override {
    status local = require_host(values, "broadcast");
    if (local.is_ok() && (root < 0 || root >= size()))
      local = make_error(errc::invalid_argument, "broadcast: root {} is not a rank of a group of {}",
                         root, size());
    TROUPE_TRY_STATUS(join({collective::broadcast, &values, &values, local.is_ok() ? root : -1 - rank_},
                           local));
    if (rank_ != root && values.nbytes() > 0)
      std::memcpy(values.raw(), ex_->slot(root).in->raw(), values.nbytes());
    ex_->barrier(); // the root's values stay untouched until every rank has copied them
    return status::ok();
  }

  status send(const tensor& values, int peer) override {
    TROUPE_TRY_STATUS(check_peer(peer, "send"));
    TROUPE_TRY_STATUS(require_host(values, "send"));
    return ex_->post(rank_, peer, values.clone()); // a copy: the caller may reuse values at once
  }

  status recv(tensor& values, int peer) override {
    TROUPE_TRY_STATUS(check_peer(peer, "recv"));
    TROUPE_TRY_STATUS(require_host(values, "recv"));
    auto taken = ex_->take(peer, rank_);
    if (!taken)
      return taken.error();
    tensor got = std::move(*taken);
    if (got.type() != values.type() || got.dims() != values.dims())
      return make_error(errc::invalid_argument, "recv from rank {}: got {}{}, expected {}{}", peer,
                        to_string(got.type()), to_string(got.dims()), to_string(values.type()),
                        to_string(values.dims()));
    if (values.nbytes() > 0)
      std::memcpy(values.raw(), got.raw(), values.nbytes());
    return status::ok();
  }

  status aborted() const override { return ex_->aborted(); }

private:
  /// Joins a round. A rank whose own arguments are bad passes a unique negative `arg`, so the
  /// round fails on every rank; it then reports its own error rather than the mismatch.
  status join(contribution c, const status& local) {
    auto verdict = ex_->arrive(rank_, c);
    if (!local.is_ok())
      return local;
    return verdict;
  }

  status check_peer(int peer, const char* what) const {
    if (peer < 0 || peer >= size())
      return make_error(errc::invalid_argument, "{}: peer {} is not a rank of a group of {}", what,
                        peer, size());
    return status::ok();
  }

  std::shared_ptr<host_exchange> ex_;
  int rank_;
};

} // namespace

void host_group_control::abort(const status& why) { ex_->abort(why); }

void host_group_control::reset() { ex_->reset(); }

status host_group_control::aborted() const { return ex_->aborted(); }

host_group make_controlled_host_group(int ranks) {
  host_group group;
  if (ranks < 1)
    return group;
  auto ex = std::make_shared<host_exchange>(ranks);
  for (int r = 0; r < ranks; ++r)
    group.ranks.push_back(std::make_unique<host_communicator>(ex, r));
  group.control = std::make_shared<host_group_control>(ex);
  return group;
}

std::vector<std::unique_ptr<communicator>> make_host_group(int ranks) {
  return make_controlled_host_group(ranks).ranks;
}

} // namespace troupe::cpu
