// type_ids: troupe's one CAF type-ID block (every atom and message type the actors exchange).
#pragma once

#include <caf/type_id.hpp>

#include "kernels/tensor.hpp"

namespace troupe {
struct infer_request;
struct infer_response;
struct batch_job;
struct stage_job;
struct batch_done;
struct replica_route;
struct placement_request;
struct placement;
struct device_status;
struct replica_status;
struct model_status;
struct runtime_status;
struct group_request;
struct group_ticket;
struct group_tickets;
} // namespace troupe

// Atoms are 0.17 atom constants (at most 10 characters); the block gives every message
// type an ID so that -DCAF_ENABLE_TYPE_ID_CHECKS refuses unregistered payloads at compile time.
CAF_BEGIN_TYPE_ID_BLOCK(troupe, caf::first_custom_type_id)
  CAF_ADD_ATOM(troupe, troupe::atom, infer, "infer")
  CAF_ADD_ATOM(troupe, troupe::atom, run, "run")
  CAF_ADD_ATOM(troupe, troupe::atom, merge, "merge")
  CAF_ADD_ATOM(troupe, troupe::atom, place, "place")
  CAF_ADD_ATOM(troupe, troupe::atom, status, "status")
  CAF_ADD_ATOM(troupe, troupe::atom, replica, "replica")
  CAF_ADD_ATOM(troupe, troupe::atom, restarted, "restarted")
  CAF_ADD_ATOM(troupe, troupe::atom, tick, "tick")
  CAF_ADD_ATOM(troupe, troupe::atom, shutdown, "shutdown")
  CAF_ADD_ATOM(troupe, troupe::atom, release, "release")
  CAF_ADD_ATOM(troupe, troupe::atom, retire, "retire")
  CAF_ADD_ATOM(troupe, troupe::atom, drain, "drain")
  CAF_ADD_ATOM(troupe, troupe::atom, group, "group")
  CAF_ADD_ATOM(troupe, troupe::atom, abort, "abort")

  CAF_ADD_TYPE_ID(troupe, (troupe::tensor))
  CAF_ADD_TYPE_ID(troupe, (troupe::infer_request))
  CAF_ADD_TYPE_ID(troupe, (troupe::infer_response))
  CAF_ADD_TYPE_ID(troupe, (troupe::batch_job))
  CAF_ADD_TYPE_ID(troupe, (troupe::batch_done))
  CAF_ADD_TYPE_ID(troupe, (troupe::replica_route))
  CAF_ADD_TYPE_ID(troupe, (troupe::placement_request))
  CAF_ADD_TYPE_ID(troupe, (troupe::placement))
  CAF_ADD_TYPE_ID(troupe, (troupe::device_status))
  CAF_ADD_TYPE_ID(troupe, (troupe::replica_status))
  CAF_ADD_TYPE_ID(troupe, (troupe::model_status))
  CAF_ADD_TYPE_ID(troupe, (troupe::runtime_status))
  CAF_ADD_TYPE_ID(troupe, (troupe::stage_job))
  CAF_ADD_TYPE_ID(troupe, (troupe::group_request))
  CAF_ADD_TYPE_ID(troupe, (troupe::group_ticket))
  CAF_ADD_TYPE_ID(troupe, (troupe::group_tickets))
  CAF_ADD_ATOM(troupe, troupe::atom, loaded, "loaded")
  CAF_ADD_ATOM(troupe, troupe::atom, done, "done")
  CAF_ADD_ATOM(troupe, troupe::atom, lost, "lost")
  CAF_ADD_ATOM(troupe, troupe::atom, restart, "restart")
  CAF_ADD_ATOM(troupe, troupe::atom, gone, "gone")
CAF_END_TYPE_ID_BLOCK(troupe)
