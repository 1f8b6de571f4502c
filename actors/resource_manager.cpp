// resource_manager: CPU devices as core sets and the listed GPUs, replica placement by memory,
// the groups and stage links replicas need, executor supervision (a tensor-parallel stage is
// supervised as one group of ranks, a replica whose stages are linked as a whole).
#include <algorithm>
#include <functional>
#include <limits>
#include <map>
#include <tuple>
#include <numeric>
#include <sched.h>
#include <unistd.h>

#include "actors/actors.hpp"
#include "kernels/gpu_devices.hpp"
#include "runtime/serve/gpu_placement.hpp"
#include "runtime/serve/restart_backoff.hpp"
#include "runtime/serve/stage_link.hpp"

namespace troupe {

namespace {

struct device_info {
  int32_t index = 0;
  std::vector<int32_t> cores;
  uint64_t memory = 0;
  uint64_t used = 0;
  uint32_t stages = 0;
  uint64_t free() const { return memory > used ? memory - used : 0; }
};

struct replica_record {
  uint32_t slot = 0;
  std::vector<shard_spec> specs;   // per stage, or per rank: [s * ranks + r]
  std::vector<caf::actor> stages;  // the executors, as specs
  caf::actor merger;
  std::vector<int32_t> devices;    // as specs
  std::vector<uint64_t> groups;    // the group of each stage (tensor parallelism only)
  std::vector<uint64_t> links;     // the link after each stage but the last (exchange links)
  uint64_t restarts = 0;
  serve::replica_rejoins rejoins; // its restarts that need groups, per stage or whole (0)
  std::string down; // why the replica is down for good (its restart gave up); empty: it is not
};

/// Whether some executor of the replica is stopped and waits for its restart.
bool restarting(const replica_record& r) {
  return std::any_of(r.stages.begin(), r.stages.end(), [](const caf::actor& a) { return !a; });
}

struct model_record {
  placement_request request;
  std::vector<replica_record> replicas;
  size_t ranks() const { return static_cast<size_t>(std::max<int64_t>(request.tensor_parallel, 1)); }
  size_t stages() const { return request.stage_bytes.size(); }
  bool on_gpu() const { return request.backend == "gpu"; }
  /// Whether activations cross between its stages over exchange links.
  bool linked() const { return request.exchange_links && stages() > 1; }
  /// Groups each replica needs: one per tensor-parallel stage, one per link between stages.
  size_t stage_groups() const { return ranks() > 1 ? stages() : 0; }
  size_t link_groups() const { return linked() ? stages() - 1 : 0; }
};

struct resource_state {
  static inline const char* name = "troupe.resource_manager";
  std::vector<device_info> devices;
  std::vector<gpu_device> gpus;
  std::vector<serve::gpu_load> gpu_loads; // as gpus: what the shards placed there hold
  exchange_actor exchange;      // the groups of tensor-parallel stages (host or NCCL)
  std::map<std::pair<std::string, int64_t>, model_record> models;
  // executor -> (model, slot, stage): who to restart when it goes down
  std::map<caf::actor_addr, std::tuple<std::pair<std::string, int64_t>, uint32_t, size_t>> owners;
  serve::restart_backoff backoff;     // between a restart's refused group requests
  uint32_t refuse_restart_groups = 0; // test only: restarts' group requests still to refuse
  uint64_t last_epoch = 0;            // of the latest restart that needs groups
  bool stopping = false;
};

using rm_pointer = resource_manager_actor::stateful_pointer<resource_state>;

std::string format_bytes(uint64_t b) {
  if (b >= (uint64_t{1} << 30))
    return fmt::format("{:.1f} GiB", static_cast<double>(b) / (1 << 30));
  if (b >= (uint64_t{1} << 20))
    return fmt::format("{:.1f} MiB", static_cast<double>(b) / (1 << 20));
  return fmt::format("{:.1f} KiB", static_cast<double>(b) / 1024);
}

cpu::cpu_limits limits_of(const device_info& d) {
  cpu::cpu_limits l;
  l.threads = static_cast<int>(d.cores.size());
  l.cores.assign(d.cores.begin(), d.cores.end());
  return l;
}

/// Greedy placement of each replica's stages, each stage as its tensor-parallel ranks: a rank
/// goes to a device this replica does not use yet (so consecutive stages overlap, and the
/// ranks of a stage run at once, on different cores), then to the one with the fewest
/// stages, then to the one with the most free memory; it must hold the rank. With more ranks
/// than devices, ranks share devices (and their cores): correct, but a pipeline or a
/// tensor-parallel group gains nothing from work that takes turns on the same cores.
/// Returns the devices per replica, or how many replicas would fit.
std::variant<std::vector<std::vector<int32_t>>, int64_t>
plan_placement(std::vector<device_info> devices, const placement_request& req) {
  std::vector<std::vector<int32_t>> result;
  for (int64_t r = 0; r < req.instances; ++r) {
    std::vector<int32_t> chosen;
    std::vector<uint32_t> mine(devices.size(), 0); // stages of this replica per device
    for (size_t item = 0; item < req.stage_bytes.size() * static_cast<size_t>(req.tensor_parallel);
         ++item) {
      const uint64_t bytes = req.stage_bytes[item / static_cast<size_t>(req.tensor_parallel)];
      device_info* best = nullptr;
      for (auto& d : devices) {
        if (d.free() < bytes)
          continue;
        const auto key = [&](const device_info& x) {
          return std::make_tuple(mine[static_cast<size_t>(x.index)], x.stages,
                                 std::numeric_limits<uint64_t>::max() - x.free());
        };
        if (!best || key(d) < key(*best))
          best = &d;
      }
      if (!best)
        return static_cast<int64_t>(r);
      best->used += bytes;
      ++best->stages;
      ++mine[static_cast<size_t>(best->index)];
      chosen.push_back(best->index);
    }
    result.push_back(std::move(chosen));
  }
  return result;
}

/// Checks a GPU placement request against the listed GPUs; the error names what is wrong.
caf::error check_gpu_request(const std::vector<gpu_device>& gpus, const placement_request& req) {
  if (gpus.empty())
    return to_error(errc::unavailable, fmt::format("model {}: no usable CUDA device: the "
                                                   "resource manager lists no GPU", req.model));
  if (!parse_precision(req.precision))
    return to_error(errc::invalid_argument, fmt::format("model {}: precision '{}': expected "
                                                        "fp32, tf32, fp16 or bf16",
                                                        req.model, req.precision));
  if (!req.instance_gpus.empty() &&
      req.instance_gpus.size() != static_cast<size_t>(req.instances))
    return to_error(errc::invalid_argument,
                    fmt::format("model {}: {} GPU lists for {} instances", req.model,
                                req.instance_gpus.size(), req.instances));
  for (const auto& listed : req.instance_gpus)
    for (int32_t i : listed)
      if (std::none_of(gpus.begin(), gpus.end(),
                       [i](const gpu_device& g) { return g.index == i; }))
        return to_error(errc::invalid_argument,
                        fmt::format("model {}: instance_group gpus: GPU {} does not exist "
                                    "({} listed)", req.model, i, gpus.size()));
  return {};
}

caf::actor spawn_stage(rm_pointer self, const shard_spec& spec) {
  auto a = caf::actor_cast<caf::actor>(spawn_shard_executor(self->system(), spec));
  self->monitor(a);
  return a;
}

/// The owner entry of a replica's merger, in place of an executor index.
constexpr size_t merger_index = std::numeric_limits<size_t>::max();

/// Spawns (or replaces) the merger of a replica, supervised like its executors.
void spawn_replica_merger(rm_pointer self, const std::pair<std::string, int64_t>& key,
                          replica_record& rep) {
  rep.merger = caf::actor_cast<caf::actor>(spawn_merger(self->system()));
  self->monitor(rep.merger);
  self->state.owners[rep.merger.address()] = {key, rep.slot, merger_index};
}

replica_route route_of(const model_record& m, const replica_record& r) {
  return replica_route{r.slot, r.stages, r.merger, r.devices, static_cast<uint32_t>(m.ranks())};
}

/// Tells the model's batcher (the placement's owner), if it has one.
template <class... Ts>
void tell_batcher(rm_pointer self, const model_record& m, Ts&&... xs) {
  if (m.request.owner)
    self->send(caf::actor_cast<batcher_actor>(m.request.owner), std::forward<Ts>(xs)...);
}

/// Starts executor `i` of a replica again from its spec, without an injected fault.
void respawn_executor(rm_pointer self, const std::pair<std::string, int64_t>& key,
                      replica_record& rep, size_t i) {
  auto& spec = rep.specs.at(i);
  spec.fault_after_batches = -1;
  rep.stages.at(i) = spawn_stage(self, spec);
  self->state.owners[rep.stages[i].address()] = {key, rep.slot, i};
}

/// Aborts a stage's group (its ranks may wait in a collective for a rank that is gone, and
/// must get to their exit message) and forgets it.
void drop_group(rm_pointer self, uint64_t group, const std::string& why) {
  if (group == 0)
    return;
  self->send(self->state.exchange, atom::abort_v, group, why);
  self->send(self->state.exchange, atom::release_v, group);
}

void stop_executor(rm_pointer self, const caf::actor& a) {
  if (!a)
    return;
  self->state.owners.erase(a.address());
  self->demonitor(a);
  self->send_exit(a, caf::exit_reason::user_shutdown);
}

void stop_replica(rm_pointer self, model_record& m, replica_record& r) {
  for (uint64_t g : r.groups)
    drop_group(self, g, "the replica was stopped");
  for (uint64_t g : r.links)
    drop_group(self, g, "the replica was stopped");
  for (size_t s = 0; s < r.devices.size(); ++s) {
    if (s < r.stages.size())
      stop_executor(self, r.stages[s]);
    const uint64_t bytes = m.request.stage_bytes.at(s / m.ranks());
    if (m.on_gpu()) {
      for (auto& g : self->state.gpu_loads)
        if (g.index == r.devices[s]) {
          g.planned -= std::min(g.planned, bytes);
          --g.shards;
        }
      continue;
    }
    auto& dev = self->state.devices.at(static_cast<size_t>(r.devices[s]));
    dev.used -= std::min(dev.used, bytes);
    --dev.stages;
  }
  stop_executor(self, r.merger);
}

/// Spawns the executors of a placed replica whose specs (and tickets) are complete.
void spawn_replica(rm_pointer self, const std::pair<std::string, int64_t>& key,
                   replica_record& rep) {
  spawn_replica_merger(self, key, rep);
  rep.stages.clear();
  for (size_t i = 0; i < rep.specs.size(); ++i) {
    rep.stages.push_back(spawn_stage(self, rep.specs[i]));
    self->state.owners[rep.stages.back().address()] = {key, rep.slot, i};
  }
}

/// What every executor of shard `i` (stage i / ranks, rank i % ranks) of replica `r` runs,
/// before its device and group are filled in.
shard_spec shard_of(const placement_request& req, size_t r, size_t i, size_t ranks) {
  shard_spec spec;
  spec.onnx_path = req.onnx_path;
  spec.boundaries = req.boundaries;
  spec.stage = static_cast<int>(i / ranks);
  const bool faulty = r == 0 && i / ranks == 0 &&
                      i % ranks == static_cast<size_t>(std::max(req.fault_rank, 0));
  spec.fault_after_batches = faulty ? req.fault_after_batches : -1;
  return spec;
}

/// The collective groups of a model's tensor-parallel stages: host groups for ranks on CPU
/// devices, NCCL groups for ranks on GPUs.
std::string group_kind(const model_record& m) { return m.on_gpu() ? "nccl" : "host"; }

/// The tickets of the groups some replicas need, in replica order: `stages` holds each
/// replica's stage groups (stages x ranks tickets), `links` its links ((stages - 1) x
/// (1 + ranks) tickets).
struct replica_tickets {
  group_tickets stages;
  group_tickets links;
};

/// Gives every group of `t` back to the exchange (placement or restart abandoned).
void release_tickets(rm_pointer self, const replica_tickets& t) {
  for (const auto* list : {&t.stages.tickets, &t.links.tickets})
    for (size_t i = 0; i < list->size(); ++i)
      if ((*list)[i].rank == 0)
        self->send(self->state.exchange, atom::release_v, (*list)[i].group);
}

/// Asks the exchange for the stage groups and links of `replicas` replicas of `model` (one
/// request per kind), then calls `done` with the tickets or the first error.
void request_groups(rm_pointer self, const model_record& model, size_t replicas,
                    std::function<void(caf::expected<replica_tickets>)> done) {
  const std::string kind = group_kind(model);
  const group_request links{kind, static_cast<int32_t>(serve::link_size(
                                      static_cast<int>(model.ranks()))),
                            static_cast<uint32_t>(replicas * model.link_groups())};
  auto then_links = [self, links, done](replica_tickets got) {
    if (links.count == 0)
      return done(std::move(got));
    self->request(self->state.exchange, caf::infinite, atom::group_v, links)
        .then(
            [done, got](group_tickets& t) mutable {
              got.links = std::move(t);
              done(std::move(got));
            },
            [self, done, got](caf::error& err) {
              release_tickets(self, got);
              done(std::move(err));
            });
  };
  const group_request stages{kind, static_cast<int32_t>(model.ranks()),
                             static_cast<uint32_t>(replicas * model.stage_groups())};
  if (stages.count == 0)
    return then_links(replica_tickets{});
  self->request(self->state.exchange, caf::infinite, atom::group_v, stages)
      .then(
          [then_links](group_tickets& t) mutable {
            replica_tickets got;
            got.stages = std::move(t);
            then_links(std::move(got));
          },
          [done](caf::error& err) { done(std::move(err)); });
}

/// Puts the tickets of the `r`-th replica in `t` into the specs of `rep`: each rank its stage
/// group; rank 0 of stage s rank 0 of link s (the sender), rank q of stage s + 1 rank 1 + q.
void assign_tickets(const model_record& model, replica_record& rep, const replica_tickets& t,
                    size_t r) {
  const size_t stages = model.stages(), ranks = model.ranks();
  if (model.stage_groups() > 0) {
    rep.groups.assign(stages, 0);
    const size_t first = r * stages * ranks;
    for (size_t i = 0; i < rep.specs.size(); ++i)
      rep.specs[i].group = t.stages.tickets.at(first + i);
    for (size_t s = 0; s < stages; ++s)
      rep.groups[s] = t.stages.tickets.at(first + s * ranks).group;
  }
  if (model.link_groups() > 0) {
    rep.links.clear();
    size_t ticket = r * model.link_groups() * serve::link_size(static_cast<int>(ranks));
    for (const auto& link : serve::replica_links(stages, ranks)) {
      rep.links.push_back(t.links.tickets.at(ticket).group);
      rep.specs.at(link.sender).link_out = t.links.tickets.at(ticket++);
      for (size_t receiver : link.receivers)
        rep.specs.at(receiver).link_in = t.links.tickets.at(ticket++);
    }
  }
}

/// Spawns the replicas of a placed model, after asking the exchange for the groups they need
/// (a group per stage when it runs as tensor-parallel ranks, a link between stages with
/// exchange links).
caf::result<placement> start_model(rm_pointer self, const std::pair<std::string, int64_t>& key) {
  auto& st = self->state;
  auto& model = st.models.at(key);
  if (model.stage_groups() == 0 && model.link_groups() == 0) {
    placement result;
    for (auto& rep : model.replicas) {
      spawn_replica(self, key, rep);
      result.replicas.push_back(route_of(model, rep));
    }
    return result;
  }
  auto promise = self->make_response_promise<placement>();
  request_groups(self, model, model.replicas.size(),
                 [self, key, promise](caf::expected<replica_tickets> t) mutable {
                   auto& st = self->state;
                   auto it = st.models.find(key);
                   if (!t) {
                     if (it != st.models.end()) {
                       for (auto& rep : it->second.replicas)
                         stop_replica(self, it->second, rep);
                       st.models.erase(it);
                     }
                     promise.deliver(std::move(t.error()));
                     return;
                   }
                   if (st.stopping || it == st.models.end()) {
                     release_tickets(self, *t);
                     promise.deliver(to_error(errc::unavailable, "retired while being placed"));
                     return;
                   }
                   auto& model = it->second;
                   placement result;
                   for (size_t r = 0; r < model.replicas.size(); ++r) {
                     auto& rep = model.replicas[r];
                     assign_tickets(model, rep, *t, r);
                     spawn_replica(self, key, rep);
                     result.replicas.push_back(route_of(model, rep));
                   }
                   promise.deliver(std::move(result));
                 });
  return promise;
}

/// Places every replica of a model on the GPUs, each stage (or tensor-parallel rank) on a GPU
/// of its own while there are enough (serve::place_gpu_replicas), and spawns them. Each
/// executor has its own session and stream, also where several share a GPU.
caf::result<placement> place_on_gpus(rm_pointer self, placement_request& req) {
  auto& st = self->state;
  if (auto err = check_gpu_request(st.gpus, req))
    return err;
  const auto ranks = static_cast<size_t>(req.tensor_parallel);
  std::vector<uint64_t> shard_bytes;
  for (uint64_t bytes : req.stage_bytes)
    shard_bytes.insert(shard_bytes.end(), ranks, bytes);
  auto planned = serve::place_gpu_replicas(st.gpu_loads, req.instance_gpus, req.instances,
                                           shard_bytes, req.exchange_links ? ranks : 0);
  if (auto* fits = std::get_if<int64_t>(&planned)) {
    std::string free;
    for (const auto& g : st.gpu_loads)
      free += fmt::format("{}cuda:{}: {} free", free.empty() ? "" : ", ", g.index,
                          format_bytes(g.free()));
    return to_error(errc::resource_exhausted,
                    fmt::format("model {} version {}: {} GPU replicas of {} shard(s) ({} the "
                                "largest) do not fit ({}); at most {} would fit",
                                req.model, req.version, req.instances, shard_bytes.size(),
                                format_bytes(*std::max_element(shard_bytes.begin(),
                                                               shard_bytes.end())),
                                free, *fits));
  }
  const auto key = std::make_pair(req.model, req.version);
  model_record record;
  record.request = req;
  const auto& chosen = std::get<0>(planned);
  // NCCL has no send/recv between two ranks on one GPU: each link's ends need GPUs of their own.
  if (req.exchange_links)
    for (const auto& shards : chosen) {
      std::vector<int32_t> gpus;
      for (size_t at : shards)
        gpus.push_back(st.gpu_loads[at].index);
      if (auto s = serve::link_within_one_gpu(gpus, req.stage_bytes.size(), ranks))
        return to_error(errc::invalid_argument,
                        fmt::format("model {} version {}: stage_transport exchange links "
                                    "stage {} to stage {}, both on cuda:{}; NCCL sends only "
                                    "between different GPUs (give the replica more GPUs, or "
                                    "use stage_transport message)",
                                    req.model, req.version, *s, *s + 1, gpus[*s * ranks]));
    }
  for (size_t r = 0; r < chosen.size(); ++r) {
    replica_record rep;
    rep.slot = static_cast<uint32_t>(r);
    for (size_t i = 0; i < chosen[r].size(); ++i) {
      auto& gpu = st.gpu_loads[chosen[r][i]];
      gpu.planned += shard_bytes[i];
      ++gpu.shards;
      shard_spec spec = shard_of(req, r, i, ranks);
      spec.backend = executor_backend::gpu;
      spec.gpu = gpu.index;
      spec.precision = *parse_precision(req.precision);
      spec.channels_last = req.channels_last;
      spec.benchmark_convolutions = req.benchmark_convolutions;
      rep.devices.push_back(gpu.index);
      rep.specs.push_back(std::move(spec));
    }
    record.replicas.push_back(std::move(rep));
  }
  st.models.emplace(key, std::move(record));
  return start_model(self, key);
}

/// The replica whose restart of `unit` (a tensor-parallel stage, or 0 for a linked replica)
/// is still `epoch`: none for a late reply or retry of an older restart, a retired model
/// (perhaps loaded again with fewer replicas) or a stopping manager.
replica_record* rejoining(rm_pointer self, const std::pair<std::string, int64_t>& key,
                          uint32_t slot, size_t unit, uint64_t epoch) {
  auto& st = self->state;
  auto it = st.models.find(key);
  if (st.stopping || it == st.models.end() || slot >= it->second.replicas.size())
    return nullptr;
  auto& replica = it->second.replicas[slot];
  return replica.rejoins.current(unit, epoch) ? &replica : nullptr;
}

/// Starts a restart of `unit` of a replica under an epoch unique in the manager, so a retry
/// still pending for a model retired and loaded again never matches a restart of the new one.
uint64_t begin_rejoin(rm_pointer self, replica_record& replica, size_t unit) {
  const uint64_t epoch = ++self->state.last_epoch;
  replica.rejoins.begin(unit, epoch);
  ++replica.restarts;
  return epoch;
}

/// Once no executor of the replica waits for its restart, its batcher gets its route.
void send_route_when_whole(rm_pointer self, const model_record& model,
                           const replica_record& replica) {
  if (!restarting(replica) && replica.down.empty())
    tell_batcher(self, model, atom::restarted_v, route_of(model, replica));
}

/// A restart's groups were refused: try again after the backoff's wait, or give up and
/// report the replica down, to its status and to its batcher (which stops waiting for it).
void on_rejoin_refused(rm_pointer self, const std::pair<std::string, int64_t>& key,
                       uint32_t slot, size_t unit, uint64_t epoch, const caf::error& why) {
  auto* replica = rejoining(self, key, slot, unit, epoch);
  if (!replica)
    return;
  auto& st = self->state;
  if (auto wait = replica->rejoins.refused(unit, st.backoff)) {
    self->delayed_send(self, *wait, atom::restart_v, key.first, key.second, slot,
                       static_cast<uint32_t>(unit), epoch);
    return;
  }
  replica->down = fmt::format("its restart could not get its groups in {} tries: {}",
                              replica->rejoins.failures(unit), self->system().render(why));
  tell_batcher(self, st.models.at(key), atom::gone_v, slot, replica->down);
}

/// The groups a restart asks for are refused, as the exchange would, while the test-only
/// count of injected refusals lasts.
bool refuse_injected(rm_pointer self, const std::pair<std::string, int64_t>& key, uint32_t slot,
                     size_t unit, uint64_t epoch) {
  auto& st = self->state;
  if (st.refuse_restart_groups == 0)
    return false;
  --st.refuse_restart_groups;
  on_rejoin_refused(self, key, slot, unit, epoch,
                    to_error(errc::unavailable, "the exchange refused the groups (injected)"));
  return true;
}

/// Asks for the fresh group of a tensor-parallel stage whose ranks were stopped, and starts
/// them in it.
void rejoin_stage_group(rm_pointer self, const std::pair<std::string, int64_t>& key,
                        uint32_t slot, size_t stage, uint64_t epoch) {
  if (refuse_injected(self, key, slot, stage, epoch))
    return;
  auto& st = self->state;
  auto& model = st.models.at(key);
  group_request req{group_kind(model), static_cast<int32_t>(model.ranks()), 1};
  self->request(st.exchange, caf::infinite, atom::group_v, req)
      .then(
          [self, key, slot, stage, epoch](group_tickets& t) {
            auto* replica = rejoining(self, key, slot, stage, epoch);
            if (!replica) {
              if (!t.tickets.empty())
                self->send(self->state.exchange, atom::release_v, t.tickets.front().group);
              return;
            }
            const auto& model = self->state.models.at(key);
            const size_t ranks = model.ranks();
            replica->groups[stage] = t.tickets.at(0).group;
            for (size_t q = 0; q < ranks; ++q) {
              replica->specs.at(stage * ranks + q).group = t.tickets.at(q);
              respawn_executor(self, key, *replica, stage * ranks + q);
            }
            send_route_when_whole(self, model, *replica); // other stages may still restart
          },
          [self, key, slot, stage, epoch](caf::error& err) {
            on_rejoin_refused(self, key, slot, stage, epoch, err);
          });
}

/// A tensor-parallel stage lost a rank: the other ranks are stopped (after their group is
/// aborted, so none stays blocked), and the stage's ranks start again in a fresh group.
void restart_stage_group(rm_pointer self, const std::pair<std::string, int64_t>& key,
                         uint32_t slot, size_t index, const std::string& why) {
  auto& model = self->state.models.at(key);
  auto& replica = model.replicas.at(slot);
  const size_t ranks = model.ranks(), stage = index / ranks;
  drop_group(self, replica.groups.at(stage),
             fmt::format("stage {} rank {} stopped: {}", stage, index % ranks, why));
  for (size_t r = 0; r < ranks; ++r) {
    if (stage * ranks + r != index)
      stop_executor(self, replica.stages.at(stage * ranks + r));
    replica.stages.at(stage * ranks + r) = caf::actor{};
  }
  replica.groups[stage] = 0;
  rejoin_stage_group(self, key, slot, stage, begin_rejoin(self, replica, stage));
}

/// Asks for the fresh stage groups and links of a linked replica whose executors were all
/// stopped, and starts them with those.
void rejoin_linked_replica(rm_pointer self, const std::pair<std::string, int64_t>& key,
                           uint32_t slot, uint64_t epoch) {
  if (refuse_injected(self, key, slot, 0, epoch))
    return;
  auto& model = self->state.models.at(key);
  request_groups(self, model, 1, [self, key, slot, epoch](caf::expected<replica_tickets> t) {
    if (!t)
      return on_rejoin_refused(self, key, slot, 0, epoch, t.error());
    auto* replica = rejoining(self, key, slot, 0, epoch);
    if (!replica)
      return release_tickets(self, *t);
    const auto& model = self->state.models.at(key);
    assign_tickets(model, *replica, *t, 0);
    for (size_t i = 0; i < replica->specs.size(); ++i)
      respawn_executor(self, key, *replica, i);
    send_route_when_whole(self, model, *replica);
  });
}

/// A replica whose stages are joined by exchange links lost an executor: its links (and stage
/// groups) cannot take a new member, so every executor of the replica is stopped (after its
/// groups are aborted, so none stays blocked in a send, a recv or a collective) and the
/// replica starts again with fresh groups.
void restart_linked_replica(rm_pointer self, const std::pair<std::string, int64_t>& key,
                            uint32_t slot, size_t index, const std::string& why) {
  auto& model = self->state.models.at(key);
  auto& replica = model.replicas.at(slot);
  const auto reason = fmt::format("executor {} of the replica stopped: {}", index, why);
  for (uint64_t g : replica.groups)
    drop_group(self, g, reason);
  for (uint64_t g : replica.links)
    drop_group(self, g, reason);
  replica.groups.clear();
  replica.links.clear();
  for (size_t i = 0; i < replica.stages.size(); ++i) {
    if (i != index)
      stop_executor(self, replica.stages[i]);
    replica.stages[i] = caf::actor{};
  }
  rejoin_linked_replica(self, key, slot, begin_rejoin(self, replica, 0));
}

resource_manager_actor::behavior_type resource_manager(rm_pointer self,
                                                       std::vector<device_info> devices,
                                                       std::vector<gpu_device> gpus,
                                                       serve::restart_backoff backoff,
                                                       uint32_t refuse_restart_groups) {
  self->state.devices = std::move(devices);
  self->state.backoff = backoff;
  self->state.refuse_restart_groups = refuse_restart_groups;
  // Replicas may use a GPU's free memory when it was measured, else its total.
  for (const auto& g : gpus)
    self->state.gpu_loads.push_back(
        serve::gpu_load{g.index, g.free_bytes ? g.free_bytes : g.total_bytes, 0, 0});
  self->state.gpus = std::move(gpus);
  self->state.exchange = spawn_exchange(self->system());
  // Supervision: an executor that dies while its replica is placed is restarted with the same
  // spec (without an injected fault) and its batcher gets the new route.
  self->set_down_handler([self](caf::down_msg& msg) {
    auto& st = self->state;
    auto it = st.owners.find(msg.source);
    if (it == st.owners.end() || st.stopping)
      return;
    auto [key, slot, stage] = it->second;
    st.owners.erase(it);
    auto& model = st.models.at(key);
    // First the batcher, then the abort that fails the batches in flight: their answers reach
    // the batcher after this, so a request sent on such an answer waits for the new route.
    auto& replica = model.replicas.at(slot);
    if (stage == merger_index) {
      // The merger held only batches in flight (the batcher fails them on its own DOWN): a
      // new one serves the same executors. A replica whose executors are still restarting
      // gets its route when they are back; one that is down for good gets none.
      tell_batcher(self, model, atom::lost_v, slot,
                   fmt::format("merger stopped: {}", self->system().render(msg.reason)));
      spawn_replica_merger(self, key, replica);
      ++replica.restarts;
      return send_route_when_whole(self, model, replica);
    }
    tell_batcher(self, model, atom::lost_v, slot,
                 fmt::format("executor {} stopped: {}", stage, self->system().render(msg.reason)));
    if (model.linked())
      return restart_linked_replica(self, key, slot, stage, self->system().render(msg.reason));
    if (model.ranks() > 1)
      return restart_stage_group(self, key, slot, stage, self->system().render(msg.reason));
    respawn_executor(self, key, replica, stage);
    ++replica.restarts;
    send_route_when_whole(self, model, replica);
  });
  return {
    [self](atom::place, placement_request& req) -> caf::result<placement> {
      auto& st = self->state;
      auto key = std::make_pair(req.model, req.version);
      if (st.models.count(key))
        return to_error(errc::invalid_argument, fmt::format("model {} version {} is already placed",
                                                            req.model, req.version));
      if (req.instances < 1 || req.stage_bytes.size() != req.boundaries.size() + 1)
        return to_error(errc::invalid_argument,
                        fmt::format("model {}: need >= 1 instance and one size per stage",
                                    req.model));
      if (req.tensor_parallel < 1)
        return to_error(errc::invalid_argument,
                        fmt::format("model {}: tensor_parallel {}; expected at least 1",
                                    req.model, req.tensor_parallel));
      if (req.backend == "gpu")
        return place_on_gpus(self, req);
      if (req.backend != "cpu" && req.backend != "host_async")
        return to_error(errc::invalid_argument,
                        fmt::format("model {}: backend '{}'; expected cpu, host_async or gpu",
                                    req.model, req.backend));
      auto planned = plan_placement(st.devices, req);
      if (auto* fits = std::get_if<int64_t>(&planned)) {
        std::string free;
        for (const auto& d : st.devices)
          free += fmt::format("{}device {}: {} free", free.empty() ? "" : ", ", d.index,
                              format_bytes(d.free()));
        uint64_t per_replica = std::accumulate(req.stage_bytes.begin(), req.stage_bytes.end(),
                                               uint64_t{0}) *
                               static_cast<uint64_t>(req.tensor_parallel);
        return to_error(errc::resource_exhausted,
                        fmt::format("model {} version {}: {} replicas of {} each ({} "
                                    "stage(s)) do not fit ({}); at most {} would fit",
                                    req.model, req.version, req.instances,
                                    format_bytes(per_replica),
                                    req.stage_bytes.size(), free, *fits));
      }
      auto& chosen = std::get<0>(planned);
      model_record record;
      record.request = req;
      const size_t ranks = record.ranks();
      for (size_t r = 0; r < chosen.size(); ++r) {
        replica_record rep;
        rep.slot = static_cast<uint32_t>(r);
        rep.devices = chosen[r];
        for (size_t i = 0; i < chosen[r].size(); ++i) {
          auto& dev = st.devices.at(static_cast<size_t>(chosen[r][i]));
          dev.used += req.stage_bytes[i / ranks];
          ++dev.stages;
          shard_spec spec = shard_of(req, r, i, ranks);
          spec.limits = limits_of(dev);
          if (req.backend == "host_async")
            spec.backend = executor_backend::host_async;
          rep.specs.push_back(std::move(spec));
        }
        record.replicas.push_back(std::move(rep));
      }
      st.models.emplace(key, std::move(record));
      return start_model(self, key);
    },
    [self](atom::restart, std::string& model, int64_t version, uint32_t slot, uint32_t unit,
           uint64_t epoch) {
      const auto key = std::make_pair(std::move(model), version);
      if (!rejoining(self, key, slot, unit, epoch))
        return;
      if (self->state.models.at(key).linked())
        return rejoin_linked_replica(self, key, slot, epoch);
      rejoin_stage_group(self, key, slot, unit, epoch);
    },
    [self](atom::retire, std::string& model, int64_t version) {
      auto& st = self->state;
      auto it = st.models.find({model, version});
      if (it == st.models.end())
        return;
      for (auto& r : it->second.replicas)
        stop_replica(self, it->second, r);
      st.models.erase(it);
    },
    [self](atom::status) {
      auto& st = self->state;
      runtime_status out;
      for (const auto& d : st.devices)
        out.devices.push_back(
            device_status{d.index, d.cores, d.memory, d.used, d.stages, "cpu", {}});
      // A GPU's used bytes are what troupe's caching allocator holds there (measured), its
      // stages the executors (stages, ranks) placed on it.
      for (size_t i = 0; i < st.gpus.size(); ++i) {
        const auto& g = st.gpus[i];
        const auto use = gpu_memory_use(g.index);
        out.devices.push_back(device_status{g.index, {}, g.total_bytes, use.in_use + use.cached,
                                            st.gpu_loads[i].shards, "cuda", g.name});
      }
      for (const auto& [key, m] : st.models)
        for (const auto& r : m.replicas)
          out.replicas.push_back(replica_status{
              key.first, key.second, r.slot, r.devices, r.restarts,
              static_cast<uint32_t>(m.ranks()), m.on_gpu() ? "cuda" : "cpu",
              static_cast<uint32_t>(r.links.size()),
              !r.down.empty() ? "down" : restarting(r) ? "restarting" : "serving", r.down});
      return out;
    },
    [self](atom::shutdown) {
      auto& st = self->state;
      st.stopping = true;
      for (auto& [key, m] : st.models)
        for (auto& r : m.replicas)
          stop_replica(self, m, r);
      st.models.clear();
      // After the abort and release messages above: the exchange aborts what is left as it stops.
      self->send_exit(st.exchange, caf::exit_reason::user_shutdown);
      self->quit();
      return caf::ok_atom::value;
    },
  };
}

uint64_t physical_memory() {
  long pages = sysconf(_SC_PHYS_PAGES);
  long page = sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : 0;
}

} // namespace

caf::expected<resource_manager_actor> spawn_resource_manager(caf::actor_system& sys,
                                                             resource_options options) {
  std::vector<int> cores = options.cores;
  if (cores.empty()) {
    // The cores of this process's affinity mask (a container or taskset may narrow it).
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
      for (int c = 0; c < CPU_SETSIZE; ++c)
        if (CPU_ISSET(c, &set))
          cores.push_back(c);
    }
    if (cores.empty())
      cores.push_back(0);
  }
  if (options.cpu_devices < 1 || static_cast<size_t>(options.cpu_devices) > cores.size())
    return to_error(errc::invalid_argument,
                    fmt::format("--cpu-devices {}: expected 1..{} (one core at least per device)",
                                options.cpu_devices, cores.size()));
  const auto n = static_cast<size_t>(options.cpu_devices);
  const uint64_t memory =
      options.memory_per_device ? options.memory_per_device : physical_memory() / n;
  std::vector<device_info> devices(n);
  for (size_t d = 0; d < n; ++d) {
    devices[d].index = static_cast<int32_t>(d);
    devices[d].memory = memory;
    // Contiguous, disjoint core ranges; the first devices take one extra core when uneven.
    const size_t begin = d * cores.size() / n, end = (d + 1) * cores.size() / n;
    for (size_t c = begin; c < end; ++c)
      devices[d].cores.push_back(cores[c]);
  }
  // GPUs are listed without touching their memory (no CUDA context); none is an error-free
  // answer on machines without a GPU or a CUDA build.
  auto gpus = list_gpus();
  return sys.spawn(resource_manager, std::move(devices),
                   gpus ? std::move(*gpus) : std::vector<gpu_device>{}, options.restart_backoff,
                   options.refuse_restart_groups);
}

} // namespace troupe
