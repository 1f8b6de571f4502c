// executor_setup: what every kind of shard executor sets up before it serves: the graph of its
// stage (or of its tensor-parallel rank of it) and the collective group that rank joins.
#pragma once

#include <memory>

#include "actors/actors.hpp"
#include "kernels/group_aborts.hpp"
#include "runtime/gpu_session.hpp"
#include "runtime/parallel/group_registry.hpp"
#include "runtime/serve/pipeline_plan.hpp"

namespace troupe {

/// The graph the executor of `spec` runs: serve::load_rank_graph of its stage and rank, so
/// every executor kind cuts and splits a model alike. Sessions must not optimize it again.
inline expected<graph> load_executor_graph(const shard_spec& spec) {
  return serve::load_rank_graph(spec.onnx_path, spec.boundaries, static_cast<size_t>(spec.stage),
                                spec.group.rank, spec.group.size);
}

/// Whether the executor of `spec` leaves its outputs on its GPU for the next stage: a GPU
/// stage that is not the last. Every stage of a replica runs on the same backend, in this
/// process, so the next stage's session reads them there (a peer copy across GPUs); the last
/// stage's outputs go to the merger, which needs them on the host.
inline bool hands_on_device(const shard_spec& spec) {
  return spec.backend == executor_backend::gpu && spec.stage >= 0 &&
         static_cast<size_t>(spec.stage) < spec.boundaries.size();
}

/// A CPU session's communicator for its rank of a host group, from the process's registry.
inline expected<std::unique_ptr<communicator>> join_host_group(const group_ticket& ticket) {
  if (ticket.kind != "host")
    return make_error(errc::unsupported, "a CPU session joins host groups, not '{}'", ticket.kind);
  return group_registry::global().take(ticket.group, ticket.rank);
}

/// A GPU session's rank of an NCCL group, as gpu_session_options take it.
inline expected<gpu_group_ticket> nccl_group_of(const group_ticket& ticket) {
  if (ticket.kind != "nccl")
    return make_error(errc::unsupported, "a GPU session joins NCCL groups, not '{}'", ticket.kind);
  gpu_group_ticket out;
  for (uint8_t b : ticket.unique_id)
    out.nccl_id.push_back(static_cast<std::byte>(b));
  out.rank = ticket.rank;
  out.size = ticket.size;
  return out;
}

/// The NCCL tickets of a GPU executor's group and links (those of more than one rank) put
/// into the session's options.
inline status nccl_groups_of(const shard_spec& spec, gpu_session_options& options) {
  for (auto [ticket, into] : {std::pair{&spec.group, &options.group},
                              std::pair{&spec.link_in, &options.link_in},
                              std::pair{&spec.link_out, &options.link_out}}) {
    if (ticket->size <= 1)
      continue;
    auto nccl = nccl_group_of(*ticket);
    if (!nccl)
      return nccl.error();
    *into = std::move(*nccl);
  }
  return status::ok();
}

/// Fails every collective (or send and recv) of the group `ticket` joins, waiting or later.
inline void abort_group(const group_ticket& ticket, const status& why) {
  if (ticket.size <= 1)
    return;
  if (ticket.kind == "host")
    group_registry::global().abort(ticket.group, why);
  if (ticket.kind == "nccl") {
    std::vector<std::byte> id;
    for (uint8_t b : ticket.unique_id)
      id.push_back(static_cast<std::byte>(b));
    group_aborts::global().abort(id, why);
  }
}

/// Fails every collective of the spec's group and every send and recv of its links, waiting
/// or later, with `why`: a rank that cannot load (or stops) would otherwise leave the others
/// blocked in their next collective, the next stage in a recv, or, for NCCL, in joining.
/// Nothing for a whole stage without links.
inline void abort_rank_group(const shard_spec& spec, const status& why) {
  abort_group(spec.group, why);
  abort_group(spec.link_in, why);
  abort_group(spec.link_out, why);
}

/// A CPU stage's links from the process's registry: from the previous stage (null without
/// one) and to the next (null without one).
struct host_links {
  std::unique_ptr<communicator> in, out;
};
inline expected<host_links> join_host_links(const shard_spec& spec) {
  host_links links;
  for (auto [ticket, into] : {std::pair{&spec.link_in, &links.in},
                              std::pair{&spec.link_out, &links.out}}) {
    if (ticket->size <= 1)
      continue;
    auto comm = join_host_group(*ticket);
    if (!comm)
      return comm.error().with_context("joining a stage link");
    *into = std::move(*comm);
  }
  return links;
}

} // namespace troupe
