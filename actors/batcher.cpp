// batcher: one per model version; queues, batches and answers every request exactly once.
#include <algorithm>
#include <chrono>
#include <cstring>
#include <map>
#include <unordered_map>

#include <caf/event_based_actor.hpp>
#include <caf/typed_event_based_actor.hpp>

#include "actors/actors.hpp"
#include "runtime/batching/batching_options.hpp"
#include "runtime/batching/reorder_buffer.hpp"

namespace troupe {

namespace {

using promise_type = caf::typed_response_promise<infer_response>;

struct batcher_state {
  static inline const char* name = "troupe.batcher";

  batcher_options options;
  std::optional<request_queue> queue;
  std::optional<batch_former> former;
  credit_pool credits;
  bool preserve_ordering = false;
  bool items_vary = false; // requests batch together only with the same item shape
  reorder_buffer order;

  struct replica_entry {
    replica_route route;
    bool alive = true;
  };
  std::vector<replica_entry> replicas; // by credit index
  std::map<uint32_t, std::string> gone; // slots whose restart gave up -> why
  std::unordered_map<caf::actor_addr, size_t> replica_of; // monitored actor -> credit index

  struct queued {
    infer_request request;
    promise_type promise;
    steady_time admitted;
  };
  std::unordered_map<uint64_t, queued> waiting;        // admitted, not yet in a batch
  std::unordered_map<uint64_t, promise_type> running;  // in a batch (or held for ordering)
  std::unordered_map<uint64_t, uint64_t> correlation;  // request id -> the client's id
  std::unordered_map<uint64_t, caf::expected<infer_response>> held; // done, waiting its turn

  struct flight {
    size_t replica = 0;
    std::vector<uint64_t> ids;
    std::vector<int64_t> queue_us; // of each request
    int64_t input_us = 0;          // building the batch's inputs
    int64_t rows = 0;              // the requests' rows (padding excluded)
  };
  std::unordered_map<uint64_t, flight> in_flight;

  uint64_t next_id = 1;
  uint64_t next_batch = 1;
  std::optional<steady_time> timer_at;
  uint64_t timer_generation = 0;
  bool stopping = false;
  bool draining = false;
  std::vector<caf::typed_response_promise<model_status>> drained; // drain requests waiting
  model_status counters;
};

using batcher_pointer = batcher_actor::stateful_pointer<batcher_state>;

steady_time now_of(batcher_pointer self) { return self->clock().now(); }

/// Delivers one reply. Errors and, without preserve_ordering, results leave at once; with it,
/// results wait in `held` until every earlier request has been answered.
void deliver(batcher_pointer self, uint64_t id, caf::expected<infer_response> reply,
             bool out_of_band) {
  auto& st = self->state;
  auto send = [&](uint64_t rid, caf::expected<infer_response>& r) {
    auto it = st.running.find(rid);
    if (it == st.running.end())
      return;
    if (r) {
      if (auto c = st.correlation.find(rid); c != st.correlation.end())
        r->correlation_id = c->second;
      it->second.deliver(std::move(*r));
    } else
      it->second.deliver(std::move(r.error()));
    st.running.erase(it);
    st.correlation.erase(rid);
  };
  if (!st.preserve_ordering) {
    send(id, reply);
    return;
  }
  std::vector<uint64_t> released;
  if (out_of_band) {
    send(id, reply);
    released = st.order.drop(id);
  } else {
    st.held.emplace(id, std::move(reply));
    released = st.order.complete(id);
  }
  for (uint64_t rid : released) {
    auto it = st.held.find(rid);
    if (it != st.held.end()) {
      send(rid, it->second);
      st.held.erase(it);
    }
  }
}

/// Answers a request that is still queued (timed out, or the batcher stops).
void answer_queued(batcher_pointer self, uint64_t id, caf::error err) {
  auto& st = self->state;
  auto it = st.waiting.find(id);
  if (it == st.waiting.end())
    return;
  st.running.emplace(id, std::move(it->second.promise));
  st.waiting.erase(it);
  deliver(self, id, std::move(err), true);
}

/// Concatenates the rows of the batch's requests, once, into tensors the executor uses as
/// they are; padding rows (allowed_batch_sizes) are zero. A lone unpadded request is passed
/// through without a copy.
std::vector<tensor> build_inputs(batcher_state& st, const batch_plan& plan) {
  const auto& first = st.waiting.at(plan.ids.front()).request.inputs;
  if (plan.ids.size() == 1 && plan.padded_rows == plan.rows)
    return first;
  std::vector<tensor> inputs;
  inputs.reserve(first.size());
  for (size_t i = 0; i < first.size(); ++i) {
    shape dims = first[i].dims();
    dims[0] = plan.padded_rows;
    tensor batch = tensor::empty(first[i].type(), dims);
    auto* out = static_cast<char*>(batch.raw());
    size_t offset = 0;
    for (uint64_t id : plan.ids) {
      const auto& t = st.waiting.at(id).request.inputs[i];
      std::memcpy(out + offset, t.raw(), t.nbytes());
      offset += t.nbytes();
    }
    std::memset(out + offset, 0, batch.nbytes() - offset);
    inputs.push_back(std::move(batch));
  }
  return inputs;
}

void fail_batch(batcher_pointer self, uint64_t batch_id, const caf::error& err);

/// Answers drain requests once nothing admitted is left unanswered.
void check_drained(batcher_pointer self) {
  auto& st = self->state;
  if (!st.draining || st.drained.empty() || !st.waiting.empty() || !st.running.empty() ||
      !st.in_flight.empty())
    return;
  model_status s = st.counters;
  s.replicas = static_cast<uint32_t>(st.replicas.size());
  for (auto& p : st.drained)
    p.deliver(s);
  st.drained.clear();
}
void on_batch_done(batcher_pointer self, batch_done& done);
void pump(batcher_pointer self);
void mark_replica_down(batcher_pointer self, size_t index, const std::string& why);

void dispatch(batcher_pointer self, batch_plan plan) {
  auto& st = self->state;
  const uint64_t batch_id = st.next_batch++;
  const auto& route = st.replicas.at(plan.replica).route;
  batch_job job;
  job.batch_id = batch_id;
  job.replica = plan.replica;
  const auto build_start = std::chrono::steady_clock::now();
  job.values = build_inputs(st, plan);
  const int64_t input_us = std::chrono::duration_cast<std::chrono::microseconds>(
                               std::chrono::steady_clock::now() - build_start)
                               .count();
  job.batched = st.options.config.max_batch_size > 0;
  std::vector<int64_t> queue_us;
  const steady_time now = now_of(self);
  for (uint64_t id : plan.ids) {
    auto it = st.waiting.find(id);
    queue_us.push_back(
        std::chrono::duration_cast<std::chrono::microseconds>(now - it->second.admitted).count());
    const auto& in = it->second.request.inputs;
    job.rows.push_back(std::max<int64_t>(1, job.batched && !in.empty() ? in[0].dim(0) : 1));
    st.running.emplace(id, std::move(it->second.promise));
    st.waiting.erase(it);
  }
  job.stages = route.stages;
  job.ranks = route.tensor_parallel;
  job.micro_rows = st.options.config.parallelism.micro_batch;
  st.in_flight.emplace(batch_id, batcher_state::flight{plan.replica, plan.ids,
                                                       std::move(queue_us), input_us,
                                                       std::max<int64_t>(1, plan.rows)});
  ++st.counters.batches;
  auto merger = caf::actor_cast<merger_actor>(route.merger);
  // Outstanding requests are bounded by the credits: one per batch in flight. The merger
  // runs the batch through the stages as micro-batches and answers once.
  self->request(merger, caf::infinite, atom::run_v, std::move(job))
      .then([self](batch_done& done) { on_batch_done(self, done); },
            [self, batch_id](caf::error& err) {
              // The request itself failed: the merger died (bounced or lost it). Stop using
              // the replica until its supervisor restarts it, failing what it held.
              auto& st = self->state;
              if (auto it = st.in_flight.find(batch_id); it != st.in_flight.end())
                mark_replica_down(self, it->second.replica, self->system().render(err));
              pump(self);
            });
}

void fail_batch(batcher_pointer self, uint64_t batch_id, const caf::error& err) {
  auto& st = self->state;
  auto it = st.in_flight.find(batch_id);
  if (it == st.in_flight.end())
    return; // already answered (its replica went down first)
  auto flight = std::move(it->second);
  st.in_flight.erase(it);
  st.credits.release(flight.replica);
  caf::error reply = err.category() == error_category()
                         ? err
                         : to_error(errc::unavailable,
                                    fmt::format("replica {} failed while running batch {}: {}",
                                                st.replicas[flight.replica].route.slot, batch_id,
                                                self->system().render(err)));
  for (uint64_t id : flight.ids) {
    ++st.counters.failed;
    deliver(self, id, reply, false);
  }
}

void on_batch_done(batcher_pointer self, batch_done& done) {
  auto& st = self->state;
  auto it = st.in_flight.find(done.batch_id);
  if (it == st.in_flight.end())
    return pump(self);
  if (done.error || done.replies.size() != it->second.ids.size()) {
    auto err = done.error ? done.error
                          : to_error(errc::internal, "batch reply count does not match");
    // Before the answer goes out: a client that retries at once must not reach the broken
    // replica, whose stop this batcher may not have seen yet.
    if (done.replica_lost)
      mark_replica_down(self, it->second.replica, self->system().render(err));
    fail_batch(self, done.batch_id, err);
    return pump(self);
  }
  auto flight = std::move(it->second);
  st.in_flight.erase(it);
  st.credits.release(flight.replica);
  int64_t infer_us = 0;
  for (int64_t us : done.stage_us)
    infer_us += us;
  for (size_t i = 0; i < flight.ids.size(); ++i) {
    auto& reply = done.replies[i];
    reply.queue_us = flight.queue_us[i];
    reply.compute_input_us = flight.input_us;
    reply.compute_infer_us = infer_us;
  }
  if (!done.replies.empty()) {
    auto& first = done.replies.front();
    first.batch_rows = flight.rows;
    // One device per stage, where stage_us was measured: rank 0's with tensor parallelism.
    const auto& route = st.replicas[flight.replica].route;
    const size_t ranks = std::max<uint32_t>(route.tensor_parallel, 1);
    for (size_t i = 0; i < route.devices.size(); i += ranks)
      first.stage_devices.push_back(route.devices[i]);
    first.stage_us = std::move(done.stage_us);
  }
  for (size_t i = 0; i < flight.ids.size(); ++i) {
    ++st.counters.completed;
    deliver(self, flight.ids[i], std::move(done.replies[i]), false);
  }
  pump(self);
}

/// Answers expired requests, sends every batch that may go now, and keeps the one timer set
/// to the next moment anything can change without a message.
void pump(batcher_pointer self) {
  auto& st = self->state;
  if (st.stopping)
    return;
  check_drained(self);
  const steady_time now = now_of(self);
  for (uint64_t id : st.queue->expire(now)) {
    ++st.counters.timed_out;
    answer_queued(self, id,
                  to_error(errc::timeout, fmt::format("request timed out in the queue of {}",
                                                      st.options.model)));
  }
  while (auto plan = st.former->form(*st.queue, now, st.credits))
    dispatch(self, std::move(*plan));
  auto next = st.queue->next_deadline(st.credits.any_available());
  if (next && (!st.timer_at || *next < *st.timer_at)) {
    st.timer_at = next;
    const uint64_t generation = ++st.timer_generation;
    auto delay = std::max<caf::timespan>(caf::timespan{0}, *next - now);
    self->delayed_send(self, delay, atom::tick_v, generation);
  }
  check_drained(self);
}

/// Whether requests may differ in more than their rows: some input of a batched model has a
/// dynamic non-batch dim, or no known rank. Their item shapes then decide what batches
/// together.
bool items_vary(const batcher_options& o) {
  if (o.config.max_batch_size <= 0)
    return false;
  return std::any_of(o.inputs.begin(), o.inputs.end(), [](const value_info& v) {
    return v.dims.empty() || std::any_of(v.dims.begin() + 1, v.dims.end(),
                                         [](int64_t d) { return d < 0; });
  });
}

/// The rank and non-batch dims of every input, in order.
std::vector<int64_t> item_shape_of(const infer_request& req) {
  std::vector<int64_t> out;
  for (const auto& t : req.inputs) {
    out.push_back(static_cast<int64_t>(t.rank()));
    out.insert(out.end(), t.dims().begin() + 1, t.dims().end());
  }
  return out;
}

/// Rows of the request, or an error when its inputs do not match the model.
expected<int64_t> check_inputs(const batcher_state& st, const infer_request& req) {
  const auto& want = st.options.inputs;
  if (req.inputs.size() != want.size())
    return make_error(errc::invalid_argument, "model {} takes {} inputs, got {}",
                      st.options.model, want.size(), req.inputs.size());
  const bool batched = st.options.config.max_batch_size > 0;
  int64_t rows = 1;
  for (size_t i = 0; i < want.size(); ++i) {
    const auto& t = req.inputs[i];
    if (t.type() != want[i].type)
      return make_error(errc::invalid_argument, "input '{}' must be {}, got {}", want[i].name,
                        to_string(want[i].type), to_string(t.type()));
    bool ok = want[i].dims.empty() || t.dims().size() == want[i].dims.size();
    for (size_t d = batched ? 1 : 0; ok && d < want[i].dims.size(); ++d)
      ok = want[i].dims[d] < 0 || want[i].dims[d] == t.dims()[d];
    if (!ok || (batched && t.rank() < 1))
      return make_error(errc::invalid_argument, "input '{}' has shape {}, model expects {}",
                        want[i].name, to_string(t.dims()), to_string(want[i].dims));
    auto bytes = checked_bytes(t.dims(), size_of(t.type()));
    if (!bytes)
      return make_error(errc::invalid_argument, "input '{}' has shape {}: {}", want[i].name,
                        to_string(t.dims()), bytes.error().message());
    if (!t.defined() || !t.buffer() || t.where().type != device::kind::cpu ||
        t.buffer()->bytes() < t.offset() + static_cast<size_t>(*bytes))
      return make_error(errc::invalid_argument, "input '{}' has no data in host memory",
                        want[i].name);
    if (batched) {
      if (i == 0)
        rows = t.dim(0);
      else if (t.dim(0) != rows)
        return make_error(errc::invalid_argument,
                          "input '{}' has {} rows, the first input has {}", want[i].name,
                          t.dim(0), rows);
    }
  }
  return rows;
}

void mark_replica_down(batcher_pointer self, size_t index, const std::string& why) {
  auto& st = self->state;
  auto& entry = st.replicas.at(index);
  if (!entry.alive)
    return;
  entry.alive = false;
  st.credits.retire(index);
  std::vector<uint64_t> lost;
  for (const auto& [batch_id, flight] : st.in_flight)
    if (flight.replica == index)
      lost.push_back(batch_id);
  std::sort(lost.begin(), lost.end());
  for (uint64_t batch_id : lost)
    fail_batch(self, batch_id,
               to_error(errc::unavailable, fmt::format("replica {} of {} stopped: {}",
                                                       entry.route.slot, st.options.model, why)));
}

/// Takes every live replica of supervisor slot `slot` out of service (see mark_replica_down).
void mark_slot_down(batcher_pointer self, uint32_t slot, const std::string& why) {
  auto& st = self->state;
  for (size_t i = 0; i < st.replicas.size(); ++i)
    if (st.replicas[i].alive && st.replicas[i].route.slot == slot)
      mark_replica_down(self, i, why);
}

/// Answers every queued request with `err` (in serving order), counting each in `counter`.
void answer_all_queued(batcher_pointer self, uint64_t& counter, const caf::error& err) {
  auto& st = self->state;
  std::vector<uint64_t> queued;
  st.queue->for_each_in_order([&](const pending_request& r) {
    queued.push_back(r.id);
    return true;
  });
  for (uint64_t id : queued) {
    st.queue->remove(id);
    ++counter;
    answer_queued(self, id, err);
  }
}

void add_replica(batcher_pointer self, replica_route route) {
  auto& st = self->state;
  if (route.stages.empty() || !route.merger)
    return;
  const size_t index = st.credits.add_replica(st.options.config.max_batches_in_flight);
  for (const auto& a : route.stages) {
    self->monitor(a);
    st.replica_of[a.address()] = index;
  }
  self->monitor(route.merger);
  st.replica_of[route.merger.address()] = index;
  st.replicas.push_back(batcher_state::replica_entry{std::move(route), true});
}

uint32_t live_replicas(const batcher_state& st) {
  return static_cast<uint32_t>(
      std::count_if(st.replicas.begin(), st.replicas.end(), [](auto& r) { return r.alive; }));
}

/// Why no replica can serve any more (every slot's restart gave up); empty while one can.
std::string no_replica_left(const batcher_state& st) {
  if (st.replicas.empty())
    return {};
  for (const auto& r : st.replicas)
    if (!st.gone.count(r.route.slot))
      return {};
  std::string why = fmt::format("model {} has no replica left:", st.options.model);
  for (const auto& [slot, reason] : st.gone)
    why += fmt::format(" replica {}: {};", slot, reason);
  why.pop_back();
  return why;
}

model_status snapshot(const batcher_state& st) {
  model_status s = st.counters;
  s.queued = st.queue->size();
  s.batches_in_flight = st.in_flight.size();
  s.replicas = live_replicas(st);
  s.unavailable = no_replica_left(st);
  return s;
}

batcher_actor::behavior_type batcher(batcher_pointer self, batcher_options options,
                                     request_queue queue, batch_former former) {
  auto& st = self->state;
  st.preserve_ordering =
      options.config.dynamic_batching && options.config.dynamic_batching->preserve_ordering;
  st.items_vary = items_vary(options);
  st.counters.model = options.model;
  st.counters.version = options.version;
  st.options = std::move(options);
  st.queue.emplace(std::move(queue));
  st.former.emplace(std::move(former));
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    auto it = st.replica_of.find(msg.source);
    if (it == st.replica_of.end())
      return;
    const size_t index = it->second;
    st.replica_of.erase(it);
    mark_replica_down(self, index, self->system().render(msg.reason));
    pump(self);
  });
  return {
    [self](atom::infer, infer_request& req) -> caf::result<infer_response> {
      auto& st = self->state;
      if (st.stopping || st.draining) {
        ++st.counters.rejected;
        // The same words as the answers to what shutdown found queued: a client cannot
        // tell (and need not) whether its request arrived just before or just after.
        return to_error(errc::unavailable,
                        fmt::format("model {} is {}", st.options.model,
                                    st.stopping ? "shutting down" : "being unloaded"));
      }
      if (auto why = no_replica_left(st); !why.empty()) {
        ++st.counters.rejected;
        return to_error(errc::unavailable, why);
      }
      auto rows = check_inputs(st, req);
      if (!rows) {
        ++st.counters.rejected;
        return to_error(rows.error());
      }
      pending_request p;
      p.id = st.next_id++;
      p.priority = req.priority;
      p.rows = *rows;
      if (st.items_vary)
        p.item_shape = item_shape_of(req);
      if (req.timeout_us > 0)
        p.timeout = microseconds{req.timeout_us};
      if (auto admitted = st.queue->admit(p, now_of(self)); !admitted) {
        ++st.counters.rejected;
        return to_error(admitted);
      }
      ++st.counters.accepted;
      auto promise = self->make_response_promise<infer_response>();
      if (st.preserve_ordering)
        (void)st.order.expect(p.id);
      if (req.correlation_id != 0)
        st.correlation.emplace(p.id, req.correlation_id);
      st.waiting.emplace(p.id, batcher_state::queued{std::move(req), promise, now_of(self)});
      pump(self);
      return promise;
    },
    [self](atom::replica, replica_route& route) {
      add_replica(self, std::move(route));
      pump(self);
    },
    [self](atom::lost, uint32_t slot, std::string& why) {
      mark_slot_down(self, slot, why);
      pump(self);
    },
    [self](atom::restarted, replica_route& route) {
      mark_slot_down(self, route.slot, "restarted by its supervisor");
      add_replica(self, std::move(route));
      pump(self);
    },
    [self](atom::gone, uint32_t slot, std::string& why) {
      auto& st = self->state;
      mark_slot_down(self, slot, why);
      st.gone.emplace(slot, std::move(why));
      const auto none_left = no_replica_left(st);
      if (none_left.empty())
        return pump(self);
      // Nothing will serve what waits: answer it now, not at its deadline.
      answer_all_queued(self, st.counters.failed, to_error(errc::unavailable, none_left));
      check_drained(self);
    },
    [self](atom::tick, uint64_t generation) {
      auto& st = self->state;
      if (generation != st.timer_generation)
        return; // a timer that a nearer one replaced
      st.timer_at.reset();
      pump(self);
    },
    [self](atom::status) { return snapshot(self->state); },
    [self](atom::drain) -> caf::result<model_status> {
      auto& st = self->state;
      st.draining = true;
      auto promise = self->make_response_promise<model_status>();
      st.drained.push_back(promise);
      check_drained(self);
      return promise;
    },
    [self](atom::shutdown) {
      auto& st = self->state;
      auto unavailable = [&] {
        return to_error(errc::unavailable, fmt::format("model {} is shutting down",
                                                       st.options.model));
      };
      // Queued requests first (in serving order), then those in running batches.
      answer_all_queued(self, st.counters.cancelled, unavailable());
      std::vector<uint64_t> batches;
      for (const auto& [batch_id, flight] : st.in_flight)
        batches.push_back(batch_id);
      std::sort(batches.begin(), batches.end());
      for (uint64_t batch_id : batches) {
        auto flight = std::move(st.in_flight.at(batch_id));
        st.in_flight.erase(batch_id);
        for (uint64_t id : flight.ids) {
          ++st.counters.cancelled;
          deliver(self, id, unavailable(), true);
        }
      }
      // Results held for ordering whose predecessors were just cancelled went out above; any
      // still held (none expected) are answered too so no promise is left behind.
      for (auto& [id, promise] : st.running)
        promise.deliver(unavailable());
      st.running.clear();
      st.held.clear();
      st.correlation.clear();
      st.stopping = true;
      auto final_status = snapshot(st);
      for (auto& p : st.drained)
        p.deliver(final_status);
      st.drained.clear();
      self->quit();
      return final_status;
    },
  };
}

} // namespace

caf::expected<batcher_actor> spawn_batcher(caf::actor_system& sys, batcher_options options) {
  auto queue = request_queue::create(queue_options_from(options.config));
  if (!queue)
    return to_error(queue.error().with_context("model " + options.model));
  auto former = batch_former::create(former_options_from(options.config));
  if (!former)
    return to_error(former.error().with_context("model " + options.model));
  if (options.config.max_batches_in_flight < 1)
    return to_error(errc::invalid_argument,
                    fmt::format("model {}: max_batches_in_flight is {}, expected >= 1",
                                options.model, options.config.max_batches_in_flight));
  return sys.spawn(batcher, std::move(options), std::move(*queue), std::move(*former));
}

} // namespace troupe
