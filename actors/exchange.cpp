// exchange: creates the collective groups of tensor-parallel ranks, hands out their tickets and
// aborts them (host groups through the group registry, NCCL groups through group_aborts).
#include <map>
#include <set>

#include "actors/actors.hpp"
#include "kernels/gpu_collectives.hpp"
#include "kernels/group_aborts.hpp"
#include "runtime/parallel/group_registry.hpp"

namespace troupe {

namespace {

struct exchange_state {
  static inline const char* name = "troupe.exchange";
  std::set<uint64_t> host_groups; // created here and not released yet
  std::map<uint64_t, std::vector<std::byte>> nccl_groups; // id -> NCCL unique id, not released

  // Ranks still blocked in a collective (or a join) of a group nobody runs any more are
  // released.
  ~exchange_state() {
    const status why{errc::unavailable, "the exchange stopped"};
    auto& registry = group_registry::global();
    for (uint64_t id : host_groups) {
      registry.abort(id, why);
      registry.release(id);
    }
    for (const auto& [id, unique_id] : nccl_groups)
      group_aborts::global().abort(unique_id, why);
  }
};

using exchange_pointer = exchange_actor::stateful_pointer<exchange_state>;

/// One group's tickets (ranks 0..size-1) appended to `out`.
status add_group(exchange_pointer self, const group_request& req, group_tickets& out) {
  auto& registry = group_registry::global();
  group_ticket ticket;
  ticket.size = req.size;
  ticket.kind = req.kind;
  if (req.kind == "host") {
    auto id = registry.create_host_group(req.size);
    if (!id)
      return id.error();
    ticket.group = *id;
    self->state.host_groups.insert(*id);
  } else if (req.kind == "nccl") {
    auto unique_id = make_nccl_unique_id();
    if (!unique_id)
      return unique_id.error();
    ticket.group = registry.reserve_id();
    for (std::byte b : *unique_id)
      ticket.unique_id.push_back(static_cast<uint8_t>(b));
    self->state.nccl_groups.emplace(ticket.group, std::move(*unique_id));
  } else {
    return make_error(errc::invalid_argument, "group kind '{}': expected host or nccl", req.kind);
  }
  for (int32_t r = 0; r < req.size; ++r) {
    ticket.rank = r;
    out.tickets.push_back(ticket);
  }
  return status::ok();
}

exchange_actor::behavior_type exchange(exchange_pointer self) {
  return {
    [self](atom::group, group_request& req) -> caf::result<group_tickets> {
      if (req.size < 1 || req.count < 1)
        return to_error(errc::invalid_argument,
                        fmt::format("{} group(s) of {} ranks: expected at least one of one",
                                    req.count, req.size));
      group_tickets out;
      for (uint32_t g = 0; g < req.count; ++g)
        if (auto st = add_group(self, req, out); !st.is_ok()) {
          for (const auto& t : out.tickets) {
            if (self->state.host_groups.erase(t.group))
              group_registry::global().release(t.group);
            self->state.nccl_groups.erase(t.group);
          }
          return to_error(st);
        }
      return out;
    },
    [self](atom::abort, uint64_t group, std::string& why) {
      const status reason{errc::unavailable, why};
      group_registry::global().abort(group, reason);
      if (auto it = self->state.nccl_groups.find(group); it != self->state.nccl_groups.end())
        group_aborts::global().abort(it->second, reason);
    },
    [self](atom::release, uint64_t group) {
      if (self->state.host_groups.erase(group))
        group_registry::global().release(group);
      // The board keeps the abort: a rank still loading when its group was dropped is refused
      // when it comes to join, instead of waiting for peers that are gone.
      self->state.nccl_groups.erase(group);
    },
  };
}

} // namespace

exchange_actor spawn_exchange(caf::actor_system& sys) { return sys.spawn(exchange); }

} // namespace troupe
