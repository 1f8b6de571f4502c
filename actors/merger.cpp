// merger: cuts a batch into micro-batches for the stages (every tensor-parallel rank of stage 0
// gets each one), reassembles them in order and splits the result into per-request replies
// (views into the batch outputs).
#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "actors/actors.hpp"

namespace troupe {

namespace {

using batch_promise = caf::typed_response_promise<batch_done>;

struct pending_batch {
  batch_promise promise;
  uint64_t replica = 0;
  std::vector<int64_t> rows; // per request
  bool batched = true;
  std::vector<int64_t> micro_rows;         // rows of each micro-batch
  std::vector<std::vector<tensor>> parts;  // outputs of each micro-batch, once back
  std::vector<bool> arrived;               // per micro-batch
  size_t received = 0;
  size_t reports_wanted = 0; // from ranks other than 0: (ranks - 1) per stage and micro-batch
  size_t reports = 0;
  std::vector<int64_t> stage_us; // per stage, summed over the micro-batches
  std::vector<caf::actor_addr> stages; // that run it: only their stop fails it
};

struct merger_state {
  static inline const char* name = "troupe.merger";
  std::unordered_map<uint64_t, pending_batch> pending;
  std::unordered_set<caf::actor_addr> watched; // stages monitored (once each)
};

using merger_pointer = merger_actor::stateful_pointer<merger_state>;

/// Rows of each micro-batch: ceil(total / micro) pieces of `micro` rows, the last one shorter.
std::vector<int64_t> cut_rows(int64_t total, int64_t micro) {
  if (micro <= 0 || micro >= total)
    return {total};
  std::vector<int64_t> out;
  for (int64_t begin = 0; begin < total; begin += micro)
    out.push_back(std::min(micro, total - begin));
  return out;
}

/// One output of the batch from the micro-batches' pieces, rows concatenated once.
expected<tensor> concat_rows(const pending_batch& b, size_t output) {
  const auto& first = b.parts.front().at(output);
  if (first.rank() < 1)
    return make_error(errc::internal, "output {} has no batch dimension (shape {}) and cannot "
                      "be concatenated from micro-batches", output, to_string(first.dims()));
  shape dims = first.dims();
  int64_t total = 0;
  for (size_t m = 0; m < b.parts.size(); ++m) {
    const auto& t = b.parts[m].at(output);
    shape expect = dims;
    expect[0] = b.micro_rows[m];
    if (t.type() != first.type() || t.dims() != expect)
      return make_error(errc::internal, "micro-batch {} output {} has shape {}, expected {}", m,
                        output, to_string(t.dims()), to_string(expect));
    total += b.micro_rows[m];
  }
  dims[0] = total;
  tensor out = tensor::empty(first.type(), dims);
  auto* dst = static_cast<char*>(out.raw());
  for (const auto& part : b.parts) {
    const auto& t = part[output];
    std::memcpy(dst, t.raw(), t.nbytes());
    dst += t.nbytes();
  }
  return out;
}

/// The batch outputs split into per-request views, or the error that answers all of them.
batch_done finish(uint64_t batch_id, pending_batch& b) {
  batch_done done{batch_id, b.replica, {}, {}, std::move(b.stage_us)};
  std::vector<tensor> values;
  if (b.parts.size() == 1) {
    values = std::move(b.parts.front());
  } else {
    const size_t outputs = b.parts.front().size();
    for (const auto& part : b.parts)
      if (part.size() != outputs) {
        done.error = to_error(errc::internal, fmt::format("batch {}: micro-batches returned {} "
                                                          "and {} outputs", batch_id, outputs,
                                                          part.size()));
        return done;
      }
    for (size_t o = 0; o < outputs; ++o) {
      auto t = concat_rows(b, o);
      if (!t) {
        done.error = to_error(t.error().with_context(fmt::format("batch {}", batch_id)));
        return done;
      }
      values.push_back(std::move(*t));
    }
  }
  done.replies.resize(b.rows.size());
  if (!b.batched) {
    // No batch dimension: the batch was one request and the outputs are its own.
    if (!done.replies.empty())
      done.replies[0].outputs = std::move(values);
    return done;
  }
  int64_t total = 0;
  for (int64_t r : b.rows)
    total += r;
  for (const auto& out : values)
    if (out.rank() < 1 || out.dim(0) < total) {
      done.error = to_error(make_error(
          errc::internal, "batch {}: output of shape {} has fewer than the batch's {} rows",
          batch_id, to_string(out.dims()), total));
      done.replies.clear();
      return done;
    }
  int64_t begin = 0;
  for (size_t i = 0; i < b.rows.size(); ++i) {
    auto& outputs = done.replies[i].outputs;
    outputs.reserve(values.size());
    for (const auto& out : values)
      outputs.push_back(out.slice_rows(begin, begin + b.rows[i]));
    begin += b.rows[i];
  }
  return done;
}

/// Answers a pending batch with an error, once.
void fail(merger_pointer self, uint64_t batch_id, caf::error err, bool replica_lost = false) {
  auto it = self->state.pending.find(batch_id);
  if (it == self->state.pending.end())
    return;
  auto promise = std::move(it->second.promise);
  const uint64_t replica = it->second.replica;
  self->state.pending.erase(it);
  promise.deliver(batch_done{batch_id, replica, std::move(err), {}, {}, replica_lost});
}

merger_actor::behavior_type merger(merger_pointer self) {
  // A stage that stops loses the micro-batches it held: fail every batch in flight on it
  // (its replica's batcher fails them too; the batcher answers each request once). Batches
  // on the stages of a restarted group go on: an old rank may stop after they started.
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    if (!st.watched.erase(msg.source))
      return;
    std::vector<uint64_t> ids;
    for (const auto& [id, b] : st.pending)
      if (std::find(b.stages.begin(), b.stages.end(), msg.source) != b.stages.end())
        ids.push_back(id);
    for (uint64_t id : ids)
      fail(self, id, to_error(errc::unavailable, fmt::format("a stage stopped while batch {} "
                                                             "was running: {}", id,
                                                             self->system().render(msg.reason))),
           true);
  });
  return {
    [self](atom::run, batch_job& job) -> caf::result<batch_done> {
      auto& st = self->state;
      if (job.stages.empty())
        return batch_done{job.batch_id, job.replica,
                          to_error(errc::internal, "a replica without stages"), {}, {}};
      const size_t ranks = std::max<uint32_t>(job.ranks, 1);
      if (job.stages.size() % ranks != 0)
        return batch_done{job.batch_id, job.replica,
                          to_error(errc::internal, fmt::format("{} stage actors are not stages "
                                                               "of {} ranks", job.stages.size(),
                                                               ranks)), {}, {}};
      if (st.pending.count(job.batch_id))
        return batch_done{job.batch_id, job.replica,
                          to_error(errc::internal, fmt::format("batch {} sent twice",
                                                               job.batch_id)), {}, {}};
      for (const auto& s : job.stages)
        if (st.watched.insert(s.address()).second)
          self->monitor(s);
      const int64_t total =
          job.batched && !job.values.empty() && job.values[0].rank() > 0 ? job.values[0].dim(0) : 1;
      pending_batch b;
      b.replica = job.replica;
      for (const auto& s : job.stages)
        b.stages.push_back(s.address());
      b.rows = std::move(job.rows);
      b.batched = job.batched;
      b.micro_rows = job.batched ? cut_rows(total, job.micro_rows) : std::vector<int64_t>{1};
      b.parts.resize(b.micro_rows.size());
      b.arrived.resize(b.micro_rows.size());
      auto promise = self->make_response_promise<batch_done>();
      b.promise = promise;
      b.reports_wanted = b.micro_rows.size() * (ranks - 1) * (job.stages.size() / ranks);
      // Every rank of stage 0 gets the same micro-batch; only rank 0 passes values on.
      std::vector<caf::actor> stage0(job.stages.begin(),
                                     job.stages.begin() + static_cast<std::ptrdiff_t>(ranks));
      std::vector<caf::actor> rest(job.stages.begin() + static_cast<std::ptrdiff_t>(ranks),
                                   job.stages.end());
      auto me = caf::actor_cast<caf::actor>(self);
      const size_t micros = b.micro_rows.size();
      st.pending.emplace(job.batch_id, std::move(b));
      int64_t begin = 0;
      for (size_t m = 0; m < micros; ++m) {
        stage_job part{job.batch_id, static_cast<uint32_t>(m), {}, rest, me, {}, {},
                       static_cast<uint32_t>(ranks), 0};
        if (micros == 1) {
          part.values = std::move(job.values);
        } else {
          // Views, not copies: every input has the batch's rows (the batcher checked).
          const int64_t rows = st.pending.at(job.batch_id).micro_rows[m];
          for (const auto& in : job.values)
            part.values.push_back(in.slice_rows(begin, begin + rows));
          begin += rows;
        }
        for (size_t r = 1; r < ranks; ++r)
          self->send(caf::actor_cast<shard_executor_actor>(stage0[r]), atom::run_v, part);
        self->send(caf::actor_cast<shard_executor_actor>(stage0[0]), atom::run_v,
                   std::move(part));
      }
      return promise;
    },
    [self](atom::merge, stage_job& job) {
      auto& st = self->state;
      auto it = st.pending.find(job.batch_id);
      if (it == st.pending.end())
        return; // the batch already failed
      if (job.error)
        return fail(self, job.batch_id, std::move(job.error));
      auto& b = it->second;
      if (job.rank != 0) { // a tensor-parallel rank's report: it ran, nothing to merge
        if (++b.reports > b.reports_wanted)
          return fail(self, job.batch_id,
                      to_error(errc::internal, fmt::format("batch {}: more rank reports than "
                                                           "ranks", job.batch_id)));
      } else if (job.micro >= b.parts.size() || b.arrived[job.micro]) {
        return fail(self, job.batch_id,
                    to_error(errc::internal, fmt::format("batch {}: unexpected micro-batch {}",
                                                         job.batch_id, job.micro)));
      } else {
        b.arrived[job.micro] = true;
        b.parts[job.micro] = std::move(job.values);
        if (b.stage_us.size() < job.stage_us.size())
          b.stage_us.resize(job.stage_us.size());
        for (size_t s = 0; s < job.stage_us.size(); ++s)
          b.stage_us[s] += job.stage_us[s];
        ++b.received;
      }
      // Done when every micro-batch is back and every rank has reported: a rank that fails
      // after rank 0 finished still fails the batch.
      if (b.received < b.parts.size() || b.reports < b.reports_wanted)
        return;
      auto promise = std::move(b.promise);
      auto done = finish(job.batch_id, b);
      st.pending.erase(it);
      promise.deliver(std::move(done));
    },
  };
}

} // namespace

merger_actor spawn_merger(caf::actor_system& sys) { return sys.spawn(merger); }

} // namespace troupe
