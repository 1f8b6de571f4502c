// embedded_runtime: starts troupe inside a CAF program's own actor_system and loads models.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "actors/actors.hpp"
#include "runtime/serve/pipeline_plan.hpp"

namespace troupe {

/// What an embedding program needs to talk to one loaded model version from any actor:
/// `self->request(handle.batcher, timeout, atom::infer_v, infer_request{...})`.
struct model_handle {
  std::string name;
  int64_t version = 0;
  batcher_actor batcher;
  std::vector<value_info> inputs;  // in the order infer_request::inputs must follow
  std::vector<value_info> outputs; // in the order infer_response::outputs has
  int64_t max_batch_size = 0;
  serve::pipeline_choice plan; // stages, their cuts, micro-batch and what was predicted
};

struct load_options {
  /// A manual pipeline cut (split_graph_stages boundaries, in the optimized graph's names):
  /// each replica runs boundaries.size() + 1 stages, whatever parallelism.pipeline_stages says.
  std::vector<std::vector<std::string>> boundaries;
  /// Test only: stage 0 of replica 0 throws while handling this (1-based) batch.
  int64_t fault_after_batches = -1;
  /// Test only: with tensor parallelism, the rank of that stage that throws.
  int32_t fault_rank = 0;
  /// Serves CPU instances through the asynchronous executor (a CPU session on a thread of
  /// its own, as a GPU session runs) instead of the detached one: tests and a baseline.
  bool host_async = false;
};

struct runtime_options {
  resource_options resources;
};

/// troupe inside someone else's actor_system. The blocking calls (load_*, status, shutdown,
/// infer) use a scoped_actor: call them from a plain thread (main, a test), never from inside
/// an actor. The actor_system's config must have gone through add_troupe_types().
class embedded_runtime {
public:
  static caf::expected<std::unique_ptr<embedded_runtime>> start(caf::actor_system& sys,
                                                                runtime_options options = {});
  ~embedded_runtime();
  embedded_runtime(const embedded_runtime&) = delete;
  embedded_runtime& operator=(const embedded_runtime&) = delete;

  /// Loads every serving version of every model in a repository (scan_repository).
  caf::expected<std::vector<model_handle>> load_repository(const std::filesystem::path& dir,
                                                           const load_options& options = {});
  /// Loads one model version: chooses its pipeline stages (config.parallelism, see
  /// serve::choose_pipeline; `auto` plans over the devices one replica may use), measures the
  /// memory of its stages (weights and the activation arena at max_batch_size or micro_batch,
  /// compiled here on the calling thread), spawns its batcher and asks the resource manager
  /// to place its instance_group replicas.
  caf::expected<model_handle> load_model(const std::string& name, int64_t version,
                                         const std::filesystem::path& onnx_file,
                                         model_config config, const load_options& options = {});
  /// Unloads one version: its batcher refuses new requests (unavailable), answers everything
  /// it admitted, then stops; its replicas are retired. not_found when it is not loaded.
  caf::expected<model_status> unload_model(const std::string& name, int64_t version);
  /// Every loaded version.
  std::vector<model_handle> models() const;
  /// A loaded model; version 0 = the latest loaded.
  std::optional<model_handle> model(const std::string& name, int64_t version = 0) const;

  caf::expected<runtime_status> status();
  caf::expected<model_status> status(const model_handle& model);
  /// One request, waiting for its reply (for plain threads; actors use request()).
  caf::expected<infer_response> infer(const model_handle& model, infer_request request);

  /// Answers everything still queued with `unavailable`, stops every troupe actor and
  /// returns; idempotent, also run by the destructor.
  void shutdown();

  resource_manager_actor resource_manager() const { return manager_; }

private:
  embedded_runtime(caf::actor_system& sys, resource_manager_actor manager)
      : sys_(sys), manager_(std::move(manager)) {}

  caf::actor_system& sys_;
  resource_manager_actor manager_;
  std::map<std::pair<std::string, int64_t>, model_handle> models_;
  bool stopped_ = false;
};

} // namespace troupe
