// http_frontend: routes HTTP requests, bridges inference to the batchers, runs model control.
#include "actors/http_frontend.hpp"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <shared_mutex>
#include <span>
#include <thread>
#include <tuple>
#include <unordered_map>

#include <caf/typed_event_based_actor.hpp>
#include <simdjson.h>

#include "runtime/kserve/codec.hpp"
#include "runtime/kserve/json_writer.hpp"
#include "runtime/kserve/routes.hpp"
#include "runtime/serve/api_key.hpp"
#include "runtime/serve/infer_binding.hpp"
#include "runtime/serve/serve_metrics.hpp"
#include "runtime/session.hpp"

namespace troupe {

namespace {

using clock_type = std::chrono::steady_clock;

int64_t micros_between(clock_type::time_point a, clock_type::time_point b) {
  return std::chrono::duration_cast<std::chrono::microseconds>(b - a).count();
}

/// One loaded model version as the request path sees it; replaced whole on reload.
struct served_model {
  serve::model_signature sig;
  caf::actor batcher;
  serve::model_metrics* metrics = nullptr;
  std::string metadata_json;
};

using model_ptr = std::shared_ptr<const served_model>;

/// What completing one admitted request needs once the batcher answers.
struct pending_entry {
  http::responder responder;
  model_ptr model;
  serve::reply_plan plan;
  int64_t rows = 1;
  clock_type::time_point start;
  uint64_t bytes = 0; // its decoded inputs, counted against max_pending_bytes
};

constexpr std::string_view server_version = "0.1.0";

} // namespace

struct http_frontend::core : std::enable_shared_from_this<http_frontend::core> {
  core(caf::actor_system& s, serve::server_config c) : sys(s), config(std::move(c)) {}

  caf::actor_system& sys;
  serve::server_config config;
  std::unique_ptr<embedded_runtime> runtime; // used by the management thread (or start/stop)
  serve::serve_metrics metrics;
  std::unique_ptr<http::server> server;
  std::vector<http_bridge_actor> bridges;
  std::atomic<size_t> next_bridge{0};
  std::atomic<bool> stopping{false};

  // Routing table: model -> version -> the served version. Readers are the I/O threads.
  mutable std::shared_mutex table_mutex;
  std::map<std::string, std::map<int64_t, model_ptr>> table;
  std::map<std::string, std::string> unavailable; // model -> why it is not served (index)
  std::set<std::string> reloading; // models whose versions are being replaced: 503, not 404

  // Requests admitted and not yet answered, by ticket; `answering` counts those taken out
  // whose answer is not yet handed to the HTTP server.
  std::mutex pending_mutex;
  std::condition_variable pending_drained;
  std::unordered_map<uint64_t, pending_entry> pending;
  uint64_t pending_bytes = 0; // the decoded inputs of `pending`
  size_t answering = 0;
  uint64_t next_ticket = 1;

  // The management thread runs repository jobs one at a time: they block (compiling,
  // placement, draining), which no I/O or scheduler thread may do.
  std::mutex jobs_mutex;
  std::condition_variable jobs_ready;
  std::deque<std::function<void()>> jobs;
  bool jobs_closed = false;
  std::thread worker;

  // -- request path (I/O threads) -----------------------------------------------------------

  void handle(const http::request_view& req, http::responder reply);
  void handle_infer(const kserve::route& route, const http::request_view& req,
                    http::responder reply);
  expected<model_ptr> find_model(const std::string& name, std::optional<int64_t> version) const;
  bool all_ready() const;

  // -- completion (bridge actors) ------------------------------------------------------------

  void complete(uint64_t ticket, caf::expected<infer_response> result);
  /// Forgets a request whose client left before it reached a batcher.
  bool drop_if_gone(uint64_t ticket);
  /// True when every admitted request's answer is with the HTTP server. Needs pending_mutex.
  bool all_answered() const { return pending.empty() && answering == 0; }
  /// At stop, after the batchers are gone: answers with 503 what never reached one (waiting in
  /// a bridge, or sent to a batcher that had already quit).
  void answer_remaining();

  // -- management (management thread, or start/stop) -----------------------------------------

  /// Queues a job for the management thread; false once that thread has closed (stop).
  bool post_job(std::function<void()> job);
  void run_jobs();
  status load_model(const std::string& name);
  status unload_model(const std::string& name);
  std::string repository_index();
  void refresh_device_metrics();
  std::string metadata_of(const serve::model_signature& sig, const serve::pipeline_choice& plan);
  void management(const kserve::route& route, http::responder reply);
};

// -- bridge actor ------------------------------------------------------------------------------

namespace {

struct bridge_state {
  static inline const char* name = "troupe.http_bridge";
  std::shared_ptr<http_frontend::core> core;
  size_t max_outstanding = 256;
  size_t outstanding = 0;
  std::deque<std::tuple<uint64_t, caf::actor, infer_request>> waiting;
};

using bridge_pointer = http_bridge_actor::stateful_pointer<bridge_state>;

void bridge_next(bridge_pointer self);

void bridge_send(bridge_pointer self, uint64_t ticket, const caf::actor& batcher,
                 infer_request req) {
  ++self->state.outstanding;
  self->request(caf::actor_cast<batcher_actor>(batcher), caf::infinite, atom::infer_v,
                std::move(req))
      .then(
          [self, ticket](infer_response& r) {
            self->state.core->complete(ticket, std::move(r));
            bridge_next(self);
          },
          [self, ticket](caf::error& err) {
            self->state.core->complete(ticket, std::move(err));
            bridge_next(self);
          });
}

/// A reply came back: start waiting requests while there is room.
void bridge_next(bridge_pointer self) {
  auto& st = self->state;
  --st.outstanding;
  while (st.outstanding < st.max_outstanding && !st.waiting.empty()) {
    auto [ticket, batcher, req] = std::move(st.waiting.front());
    st.waiting.pop_front();
    if (st.core->drop_if_gone(ticket))
      continue;
    bridge_send(self, ticket, batcher, std::move(req));
  }
}

http_bridge_actor::behavior_type http_bridge(bridge_pointer self,
                                             std::shared_ptr<http_frontend::core> core) {
  self->state.max_outstanding = core->config.max_outstanding_per_bridge;
  self->state.core = std::move(core);
  return {
    [self](atom::infer, uint64_t ticket, caf::actor& batcher, infer_request& req) {
      auto& st = self->state;
      if (st.outstanding >= st.max_outstanding) {
        st.waiting.emplace_back(ticket, std::move(batcher), std::move(req));
        return;
      }
      bridge_send(self, ticket, batcher, std::move(req));
    },
  };
}

} // namespace

// -- request path ------------------------------------------------------------------------------

expected<model_ptr> http_frontend::core::find_model(const std::string& name,
                                                    std::optional<int64_t> version) const {
  std::shared_lock lock(table_mutex);
  auto it = table.find(name);
  const bool reloaded = reloading.count(name) > 0;
  // While a reload replaces the versions, a request finds none or not the one it names: it
  // may retry (503 with Retry-After) instead of being told the model does not exist.
  if (reloaded && (it == table.end() || it->second.empty() ||
                   (version && !it->second.count(*version))))
    return make_error(errc::unavailable, "model '{}' is being reloaded", name);
  if (it == table.end() || it->second.empty())
    return make_error(errc::not_found, "unknown model '{}'", name);
  if (!version)
    return it->second.rbegin()->second; // the latest version
  auto v = it->second.find(*version);
  if (v == it->second.end())
    return make_error(errc::not_found, "model '{}' has no version {} loaded", name, *version);
  return v->second;
}

bool http_frontend::core::all_ready() const { return !stopping.load(); }

void http_frontend::core::handle(const http::request_view& req, http::responder reply) {
  auto route = kserve::match_route(req.path());
  if (!route) {
    if (route.error().code() == errc::not_found)
      return reply.send(serve::error_response(kserve::frontend_condition::not_found,
                                              route.error().message()));
    return reply.send(serve::error_response(route.error().code(), route.error().message()));
  }
  if (!kserve::method_allowed(*route, req.verb())) {
    auto r = serve::error_response(
        kserve::frontend_condition::method_not_allowed,
        fmt::format("method {} is not allowed on {}", req.method_name(), req.path()));
    r.headers.emplace_back("Allow", std::string(kserve::allowed_methods(*route)));
    return reply.send(std::move(r));
  }
  if (route->management) {
    auto key = serve::presented_key(req.header("Authorization"), req.header("X-API-Key"));
    switch (serve::check_api_key(config.api_key, key)) {
      case serve::auth_result::ok:
        break;
      case serve::auth_result::missing: {
        auto r = serve::error_response(kserve::frontend_condition::unauthenticated,
                                       "this endpoint needs an API key (Authorization: Bearer "
                                       "<key> or X-API-Key)");
        r.headers.emplace_back("WWW-Authenticate", "Bearer");
        return reply.send(std::move(r));
      }
      case serve::auth_result::wrong:
        return reply.send(serve::error_response(kserve::frontend_condition::forbidden,
                                                "the API key is not valid"));
    }
  }
  using kserve::endpoint;
  switch (route->endpoint) {
    case endpoint::health_live:
      return reply.send(serve::json_response(""));
    case endpoint::health_ready:
      if (!all_ready())
        return reply.send(serve::error_response(errc::unavailable, "the server is stopping"));
      return reply.send(serve::json_response(""));
    case endpoint::server_metadata: {
      kserve::server_metadata m;
      m.version = std::string(server_version);
      m.extensions = {"binary_tensor_data", "model_repository", "schedule_policy"};
      return reply.send(serve::json_response(kserve::encode_server_metadata(m)));
    }
    case endpoint::model_metadata:
    case endpoint::model_ready: {
      auto model = find_model(route->model, route->version);
      if (!model)
        return reply.send(serve::error_response(model.error().code(), model.error().message()));
      if (route->endpoint == endpoint::model_metadata)
        return reply.send(serve::json_response((*model)->metadata_json));
      const auto version = std::to_string((*model)->sig.version);
      if (stopping.load())
        return reply.send(serve::json_response(
            kserve::encode_model_ready(route->model, version, false)));
      // Ready while some replica can serve: the batcher knows (every one's restart may have
      // given up). Asked from an actor of its own, so this I/O thread does not wait.
      auto batcher = caf::actor_cast<batcher_actor>((*model)->batcher);
      sys.spawn([batcher, reply, name = route->model, version](caf::event_based_actor* self) {
        auto answer = [reply, name, version](bool ready) {
          reply.send(serve::json_response(kserve::encode_model_ready(name, version, ready)));
        };
        self->request(batcher, std::chrono::seconds(5), atom::status_v)
            .then([answer](model_status& s) { answer(s.unavailable.empty()); },
                  [answer](caf::error&) { answer(false); });
      });
      return;
    }
    case endpoint::model_infer:
      return handle_infer(*route, req, std::move(reply));
    case endpoint::metrics: {
      http::response r;
      r.content_type = std::string(serve::serve_metrics::content_type);
      r.body = metrics.render();
      return reply.send(std::move(r));
    }
    case endpoint::repository_index:
    case endpoint::repository_load:
    case endpoint::repository_unload:
      if (stopping.load())
        return reply.send(serve::error_response(errc::unavailable, "the server is stopping"));
      // stop() may close the queue after the check above: a job it would never run is
      // answered here instead of when the server is long gone.
      if (!post_job([self = shared_from_this(), r = *route, reply]() mutable {
            self->management(r, std::move(reply));
          }))
        return reply.send(serve::error_response(errc::unavailable, "the server is stopping"));
      return;
  }
}

void http_frontend::core::handle_infer(const kserve::route& route, const http::request_view& req,
                                       http::responder reply) {
  const auto start = clock_type::now();
  if (stopping.load())
    return reply.send(serve::error_response(errc::unavailable, "the server is stopping"));
  auto model = find_model(route.model, route.version);
  if (!model)
    return reply.send(serve::error_response(model.error().code(), model.error().message()));
  const auto& m = **model;
  auto fail = [&](const status& st) {
    metrics.failed(m.metrics->name, m.metrics->version, to_string(st.code()));
    reply.send(serve::error_response(st.code(), st.message()));
  };
  kserve::decode_options options;
  options.max_json_depth = config.max_json_depth;
  auto decoded =
      kserve::decode_infer_request(req.body(), req.header(kserve::header_length_field), options);
  if (!decoded)
    return fail(decoded.error());
  reply.release_body(); // decoded into tensors of their own: the raw bytes need not wait too
  auto bound = serve::bind_request(std::move(*decoded), m.sig);
  if (!bound)
    return fail(bound.error());

  uint64_t bytes = 0;
  for (const auto& t : bound->inputs)
    bytes += t.nbytes();
  uint64_t ticket = 0;
  {
    std::lock_guard lock(pending_mutex);
    if (pending.size() >= config.max_pending_requests)
      return fail(make_error(errc::resource_exhausted,
                             "the server has {} requests pending, the limit; retry later",
                             pending.size()));
    if (pending_bytes + bytes > config.max_pending_bytes)
      return fail(make_error(errc::resource_exhausted,
                             "the server holds {} bytes of pending requests; this one's {} "
                             "would pass max_pending_bytes {}; retry later",
                             pending_bytes, bytes, config.max_pending_bytes));
    ticket = next_ticket++;
    pending_bytes += bytes;
    pending.emplace(ticket, pending_entry{reply, *model, std::move(bound->reply), bound->rows,
                                          start, bytes});
  }
  m.metrics->pending->inc();
  infer_request request{std::move(bound->inputs), bound->priority, bound->timeout_us, 0};
  const auto& bridge = bridges[next_bridge.fetch_add(1, std::memory_order_relaxed) %
                               bridges.size()];
  caf::anon_send(bridge, atom::infer_v, ticket, m.batcher, std::move(request));
}

// -- completion --------------------------------------------------------------------------------

bool http_frontend::core::drop_if_gone(uint64_t ticket) {
  std::unique_lock lock(pending_mutex);
  auto it = pending.find(ticket);
  if (it == pending.end() || !it->second.responder.client_gone())
    return false;
  auto entry = std::move(it->second);
  pending_bytes -= entry.bytes;
  pending.erase(it);
  if (all_answered())
    pending_drained.notify_all();
  lock.unlock();
  entry.model->metrics->pending->dec();
  metrics.failed(entry.model->metrics->name, entry.model->metrics->version, "client_gone");
  return true;
}

void http_frontend::core::complete(uint64_t ticket, caf::expected<infer_response> result) {
  pending_entry p;
  {
    std::lock_guard lock(pending_mutex);
    auto it = pending.find(ticket);
    if (it == pending.end())
      return;
    p = std::move(it->second);
    pending_bytes -= p.bytes;
    pending.erase(it);
    ++answering;
  }
  const served_model& m = *p.model;
  m.metrics->pending->dec();
  auto finish = [&](http::response r) {
    p.responder.send(std::move(r));
    // Counted down after the send, so a stop that waits for all_answered() finds every reply
    // already handed to the HTTP server.
    std::lock_guard lock(pending_mutex);
    --answering;
    if (all_answered())
      pending_drained.notify_all();
  };
  if (!result && result.error() == caf::sec::request_receiver_down) {
    // The batcher quit before this request reached it (stop or unload): retryable, like a
    // request that reaches a batcher while it drains.
    metrics.failed(m.metrics->name, m.metrics->version, to_string(errc::unavailable));
    return finish(serve::error_response(
        errc::unavailable, fmt::format("model {} is {}", m.sig.name,
                                       stopping.load() ? "shutting down" : "being unloaded")));
  }
  if (!result) {
    const errc code = errc_of(result.error()).value_or(errc::internal);
    metrics.failed(m.metrics->name, m.metrics->version, to_string(code));
    return finish(serve::error_response(code, message_of(result.error())));
  }
  if (result->batch_rows > 0)
    metrics.batch(*m.metrics, result->batch_rows, result->stage_devices, result->stage_us);
  const auto encode_start = clock_type::now();
  // Runs on a bridge actor: a throw (no memory for a huge JSON reply) would end the bridge,
  // and with it the answers to every request it carries.
  expected<kserve::encoded_body> body = make_error(errc::internal, "not encoded");
  try {
    body = serve::encode_reply(p.plan, result->outputs, m.sig);
  } catch (const std::exception& e) {
    body = make_error(errc::resource_exhausted, "encoding the reply: {}", e.what());
  }
  if (!body) {
    metrics.failed(m.metrics->name, m.metrics->version, to_string(body.error().code()));
    return finish(serve::error_response(errc::internal, body.error().message()));
  }
  http::response r;
  r.body = std::move(body->body);
  if (body->json_length) {
    r.content_type = "application/octet-stream";
    r.headers.emplace_back(std::string(kserve::header_length_field),
                           std::to_string(*body->json_length));
  }
  const auto end = clock_type::now();
  serve::request_timing t;
  t.queue_us = result->queue_us;
  t.compute_input_us = result->compute_input_us;
  t.compute_infer_us = result->compute_infer_us;
  t.compute_output_us = micros_between(encode_start, end);
  t.request_us = micros_between(p.start, end);
  metrics.succeeded(*m.metrics, p.rows, t);
  finish(std::move(r));
}

void http_frontend::core::answer_remaining() {
  std::vector<pending_entry> left;
  {
    std::lock_guard lock(pending_mutex);
    for (auto& [ticket, entry] : pending)
      left.push_back(std::move(entry));
    pending.clear();
    pending_bytes = 0;
  }
  for (auto& p : left) {
    const served_model& m = *p.model;
    m.metrics->pending->dec();
    metrics.failed(m.metrics->name, m.metrics->version, to_string(errc::unavailable));
    p.responder.send(serve::error_response(errc::unavailable,
                                           fmt::format("model {} is shutting down", m.sig.name)));
  }
}

// -- management --------------------------------------------------------------------------------

bool http_frontend::core::post_job(std::function<void()> job) {
  std::lock_guard lock(jobs_mutex);
  if (jobs_closed)
    return false;
  jobs.push_back(std::move(job));
  jobs_ready.notify_one();
  return true;
}

void http_frontend::core::run_jobs() {
  for (;;) {
    std::function<void()> job;
    {
      std::unique_lock lock(jobs_mutex);
      jobs_ready.wait(lock, [&] { return jobs_closed || !jobs.empty(); });
      if (jobs.empty())
        return; // closed and nothing left
      job = std::move(jobs.front());
      jobs.pop_front();
    }
    // A job that throws must not end the process: its responder goes with it, which answers
    // the request 500.
    try {
      job();
    } catch (const std::exception&) {
    }
  }
}

std::string http_frontend::core::metadata_of(const serve::model_signature& sig,
                                              const serve::pipeline_choice& plan) {
  kserve::model_metadata m;
  m.name = sig.name;
  m.versions = {std::to_string(sig.version)};
  m.platform = "onnxruntime_onnx";
  auto describe = [&](const std::vector<value_info>& list, std::vector<kserve::tensor_metadata>& out) {
    for (const auto& v : list) {
      kserve::tensor_metadata t{v.name, v.type, v.dims};
      if (sig.max_batch_size > 0 && !t.dims.empty())
        t.dims[0] = -1; // any batch up to max_batch_size
      out.push_back(std::move(t));
    }
  };
  describe(sig.inputs, m.inputs);
  describe(sig.outputs, m.outputs);
  std::string json = kserve::encode_model_metadata(m);
  // troupe's addition: the batch limit and where the replicas run (clients ignore extra keys).
  std::string extra;
  kserve::json_writer w(extra);
  // `"key":` after a comma unless it opens an object.
  auto key = [&w](std::string_view k, bool first = false) {
    if (!first)
      w.raw(',');
    w.key(k);
  };
  // A JSON array of `items`, each written by `item`.
  auto array = [&w](const auto& items, const auto& item) {
    w.raw('[');
    for (size_t i = 0; i < items.size(); ++i) {
      if (i)
        w.raw(',');
      item(items[i]);
    }
    w.raw(']');
  };
  auto integer = [&w](auto v) { w.integer(v); };
  auto text = [&w](const std::string& v) { w.string(v); };
  key("parallelism");
  w.raw('{');
  key("max_batch_size", true);
  w.integer(sig.max_batch_size);
  // The plan served: stages, the values cut between them, and what the planner predicted.
  key("pipeline_stages");
  w.integer(plan.stages);
  key("tensor_parallel");
  w.integer(plan.tensor_parallel);
  key("micro_batch");
  w.integer(plan.micro_batch);
  key("chosen_by");
  w.string(plan.chosen_by);
  if (!plan.gpu_declined.empty()) {
    key("gpu_declined");
    w.string(plan.gpu_declined);
  }
  key("cuts");
  array(plan.boundaries, [&](const std::vector<std::string>& cut) { array(cut, text); });
  if (plan.predicted_items_per_s > 0) {
    key("predicted");
    w.raw('{');
    key("items_per_s", true);
    w.number(plan.predicted_items_per_s);
    key("latency_ms");
    w.number(plan.predicted_latency_ms);
    w.raw('}');
  }
  key("replicas");
  std::vector<replica_status> replicas;
  if (auto st = runtime->status())
    for (const auto& r : st->replicas)
      if (r.model == sig.name && r.version == sig.version)
        replicas.push_back(r);
  array(replicas, [&](const replica_status& r) {
    w.raw('{');
    key("instance", true);
    w.integer(r.slot);
    key("devices");
    array(r.devices, integer);
    if (r.tensor_parallel > 1) {
      // The devices of each stage's ranks: devices holds them stage by stage.
      key("stage_ranks");
      std::vector<std::span<const int32_t>> stages;
      for (size_t i = 0; i < r.devices.size(); i += static_cast<size_t>(r.tensor_parallel))
        stages.push_back(std::span(r.devices).subspan(
            i, std::min(static_cast<size_t>(r.tensor_parallel), r.devices.size() - i)));
      array(stages, [&](std::span<const int32_t> ranks) { array(ranks, integer); });
    }
    w.raw('}');
  });
  w.raw('}');
  json.insert(json.size() - 1, extra);
  return json;
}

void http_frontend::core::refresh_device_metrics() {
  if (auto st = runtime->status())
    for (const auto& d : st->devices)
      if (d.kind == "cpu") // GPU ordinals would share the CPU devices' labels
        metrics.set_device_memory(d.index, d.memory_bytes, d.used_bytes);
}

status http_frontend::core::load_model(const std::string& name) {
  auto entry = scan_model(std::filesystem::path(config.model_repository) / name, name);
  if (!entry) {
    std::error_code ec;
    if (!std::filesystem::is_directory(std::filesystem::path(config.model_repository) / name, ec))
      return make_error(errc::not_found, "model '{}' is not in the model repository", name);
    return entry.error();
  }
  // Check every serving version before touching what serves now: a bad config or model file
  // fails here and the loaded versions keep serving.
  struct candidate {
    int64_t version;
    std::filesystem::path file;
    serve::model_signature sig;
  };
  std::vector<candidate> next;
  for (int64_t v : entry->serving) {
    const auto file = entry->model_file(v);
    auto s = session::open(file.string());
    if (!s)
      return s.error().with_context(fmt::format("model '{}' version {}", name, v));
    auto outputs = (*s)->infer_outputs();
    if (!outputs)
      return outputs.error().with_context(fmt::format("model '{}' version {}", name, v));
    serve::model_signature sig{name, v, (*s)->inputs(), std::move(*outputs),
                               entry->config.max_batch_size};
    next.push_back({v, file, std::move(sig)});
  }
  std::vector<int64_t> loaded;
  {
    std::shared_lock lock(table_mutex);
    if (auto it = table.find(name); it != table.end())
      for (const auto& [v, m] : it->second)
        loaded.push_back(v);
  }
  // Versions no longer served, and versions to be replaced, are drained and unloaded; requests
  // reaching them meanwhile get 503 (unavailable) and may retry.
  {
    std::unique_lock lock(table_mutex);
    reloading.insert(name);
  }
  for (int64_t v : loaded) {
    (void)runtime->unload_model(name, v);
    std::unique_lock lock(table_mutex);
    table[name].erase(v);
  }
  status outcome;
  for (auto& c : next) {
    auto h = runtime->load_model(name, c.version, c.file, entry->config);
    if (!h) {
      outcome = make_error(errc_of(h.error()).value_or(errc::internal), "model '{}' version {}: {}",
                           name, c.version, message_of(h.error()));
      continue;
    }
    auto served = std::make_shared<served_model>();
    served->sig = std::move(c.sig);
    served->sig.inputs = h->inputs;
    served->batcher = caf::actor_cast<caf::actor>(h->batcher);
    served->metrics = &metrics.model(name, c.version);
    served->metadata_json = metadata_of(served->sig, h->plan);
    metrics.set_plan(*served->metrics, h->plan.stages, h->plan.tensor_parallel,
                     h->plan.micro_batch);
    std::unique_lock lock(table_mutex);
    table[name][c.version] = std::move(served);
    unavailable.erase(name);
  }
  {
    std::unique_lock lock(table_mutex);
    reloading.erase(name);
    if (table[name].empty()) {
      table.erase(name);
      unavailable[name] = outcome ? "not loaded" : outcome.message();
    }
  }
  refresh_device_metrics();
  return outcome;
}

status http_frontend::core::unload_model(const std::string& name) {
  std::vector<int64_t> versions;
  {
    // Out of the routing table first: new requests get 404 while the old ones finish.
    std::unique_lock lock(table_mutex);
    auto it = table.find(name);
    if (it == table.end())
      return make_error(errc::not_found, "model '{}' is not loaded", name);
    for (const auto& [v, m] : it->second)
      versions.push_back(v);
    table.erase(it);
    unavailable[name] = "unloaded";
  }
  status outcome;
  for (int64_t v : versions)
    if (auto st = runtime->unload_model(name, v); !st)
      outcome = make_error(errc_of(st.error()).value_or(errc::internal), "{}",
                           message_of(st.error()));
  refresh_device_metrics();
  return outcome;
}

std::string http_frontend::core::repository_index() {
  std::string out;
  kserve::json_writer w(out);
  w.raw('[');
  bool first = true;
  auto item = [&](const std::string& name, std::optional<int64_t> version, bool ready,
                  const std::string& reason) {
    w.raw(first ? "{" : ",{");
    first = false;
    w.key("name");
    w.string(name);
    if (version) {
      w.raw(',');
      w.key("version");
      w.string(std::to_string(*version));
    }
    w.raw(',');
    w.key("state");
    w.string(ready ? "READY" : "UNAVAILABLE");
    if (!reason.empty()) {
      w.raw(',');
      w.key("reason");
      w.string(reason);
    }
    w.raw('}');
  };
  std::set<std::string> names;
  namespace fs = std::filesystem;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(config.model_repository, ec)) {
    const auto n = e.path().filename().string();
    std::error_code dir_ec; // an entry that cannot be examined is skipped, not a throw
    if (e.is_directory(dir_ec) && is_valid_model_name(n) && n[0] != '.')
      names.insert(n);
  }
  std::shared_lock lock(table_mutex);
  for (const auto& [n, versions] : table)
    names.insert(n);
  for (const auto& n : names) {
    auto it = table.find(n);
    if (it != table.end() && !it->second.empty()) {
      for (const auto& [v, m] : it->second)
        item(n, v, true, "");
      continue;
    }
    auto u = unavailable.find(n);
    item(n, std::nullopt, false, u == unavailable.end() ? "not loaded" : u->second);
  }
  w.raw(']');
  return out;
}

void http_frontend::core::management(const kserve::route& route, http::responder reply) {
  using kserve::endpoint;
  if (route.endpoint == endpoint::repository_index)
    return reply.send(serve::json_response(repository_index()));
  // Models come from the repository folder only: a body that tries to supply a config or
  // files (Triton's load parameters) is refused rather than ignored; other parameters
  // (unload_dependents) have nothing to act on and are accepted.
  const auto body = reply.request().body();
  if (!body.empty()) {
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(body.data(), body.size()).get(doc) != simdjson::SUCCESS || !doc.is_object())
      return reply.send(serve::error_response(errc::parse_error,
                                              "the request body must be a JSON object"));
    simdjson::dom::object params;
    if (doc["parameters"].get(params) == simdjson::SUCCESS)
      for (auto field : params)
        if (field.key == "config" || field.key.substr(0, 5) == "file:")
          return reply.send(serve::error_response(
              errc::unsupported, fmt::format("troupe loads models only from its repository "
                                             "folder; parameter '{}' is not supported",
                                             field.key)));
  }
  const status st = route.endpoint == endpoint::repository_load ? load_model(route.model)
                                                                 : unload_model(route.model);
  if (!st)
    return reply.send(serve::error_response(st.code(), st.message()));
  reply.send(serve::json_response(""));
}

// -- http_frontend -----------------------------------------------------------------------------

caf::expected<std::unique_ptr<http_frontend>> http_frontend::start(caf::actor_system& sys,
                                                                   serve::server_config config) {
  auto c = std::make_shared<core>(sys, std::move(config));
  runtime_options ro;
  ro.resources.cpu_devices = c->config.cpu_devices;
  auto rt = embedded_runtime::start(sys, ro);
  if (!rt)
    return rt.error();
  c->runtime = std::move(*rt);
  auto entries = scan_repository(c->config.model_repository);
  if (!entries)
    return to_error(entries.error());
  for (const auto& e : *entries)
    if (auto st = c->load_model(e.name); !st)
      return to_error(st);
  for (size_t i = 0; i < std::max<size_t>(1, c->config.bridges); ++i)
    c->bridges.push_back(sys.spawn(http_bridge, c));
  c->worker = std::thread([c] { c->run_jobs(); });
  auto handler = [raw = c.get()](const http::request_view& req, http::responder reply) {
    raw->handle(req, std::move(reply));
  };
  auto server = http::server::start(c->config.http, handler);
  std::unique_ptr<http_frontend> frontend(new http_frontend(c));
  if (!server) {
    frontend->stop();
    return to_error(server.error());
  }
  c->server = std::move(*server);
  return frontend;
}

http_frontend::~http_frontend() { stop(); }

uint16_t http_frontend::port() const { return core_->server ? core_->server->port() : 0; }

size_t http_frontend::loaded_versions() const {
  std::shared_lock lock(core_->table_mutex);
  size_t n = 0;
  for (const auto& [name, versions] : core_->table)
    n += versions.size();
  return n;
}

void http_frontend::stop() {
  auto& c = *core_;
  if (c.stopping.exchange(true))
    return;
  const auto deadline = clock_type::now() + c.config.exit_timeout;
  // 1. The HTTP server stops accepting and reading at once; answers owed still go out.
  if (c.server)
    c.server->begin_stop();
  // 2. Management jobs already queued finish; no new ones are taken (stopping is set).
  {
    std::lock_guard lock(c.jobs_mutex);
    c.jobs_closed = true;
    c.jobs_ready.notify_all();
  }
  if (c.worker.joinable())
    c.worker.join();
  // 3. Admitted requests get half the time to finish normally; the other half is for
  //    answering the rest and stopping the replicas (their threads end after their batch).
  {
    std::unique_lock lock(c.pending_mutex);
    c.pending_drained.wait_until(lock, deadline - c.config.exit_timeout / 2,
                                 [&] { return c.all_answered(); });
  }
  // 4. What is still queued is answered with 503 by the batchers as they shut down; what never
  //    reached a batcher is answered here. Every answer is with the HTTP server before step 5
  //    (none waits for a deadline: how long this takes depends on the machine's load).
  if (c.runtime)
    c.runtime->shutdown();
  c.answer_remaining();
  {
    std::unique_lock lock(c.pending_mutex);
    c.pending_drained.wait(lock, [&] { return c.answering == 0; });
  }
  // 5. The server writes those answers and closes; connections still open at the deadline
  //    (a client that does not read) are closed then.
  if (c.server)
    c.server->stop(std::max(
        std::chrono::milliseconds(0),
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now())));
  for (auto& b : c.bridges)
    caf::anon_send_exit(b, caf::exit_reason::user_shutdown);
  c.bridges.clear(); // the bridges hold the core; it ends with the last of them
}

} // namespace troupe
