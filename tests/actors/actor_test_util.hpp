// actor_test_util: fixtures for the actor tests (deterministic scheduler, small models).
#pragma once

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <random>
#include <string>

#include <caf/all.hpp>
#include <doctest/doctest.h>
#include <onnx/onnx_pb.h>

#include "actors/actors.hpp"

namespace troupe::test {

/// An actor_system on CAF's deterministic test scheduler: nothing runs until the test says
/// so, and time moves only by advance_time.
struct deterministic_system {
  static caf::actor_system_config& configure(caf::actor_system_config& cfg) {
    add_troupe_types(cfg);
    cfg.set("scheduler.policy", caf::atom("testing"));
    cfg.set("logger.file-verbosity", caf::atom("quiet"));
    cfg.set("logger.console", caf::atom("none"));
    return cfg;
  }
  caf::actor_system_config cfg;
  caf::actor_system sys;
  caf::scheduler::test_coordinator& sched;

  deterministic_system()
      : sys(configure(cfg)),
        sched(dynamic_cast<caf::scheduler::test_coordinator&>(sys.scheduler())) {
    sched.clock().current_time += std::chrono::hours(1); // no time point at the epoch
  }
  ~deterministic_system() { run(); }

  /// Runs every message until all mailboxes are empty (no timers are triggered).
  void run() {
    while (sched.try_run_once()) {
    }
  }
  /// Moves the clock, fires what is due, and runs the messages that follows.
  void advance(std::chrono::microseconds d) {
    sched.clock().advance_time(d);
    run();
  }
};

/// A real, multi-threaded actor system with troupe's types.
struct threaded_system {
  static caf::actor_system_config& configure(caf::actor_system_config& cfg) {
    add_troupe_types(cfg);
    cfg.set("logger.file-verbosity", caf::atom("quiet"));
    cfg.set("logger.console", caf::atom("none"));
    cfg.set("scheduler.max-threads", size_t{2});
    return cfg;
  }
  caf::actor_system_config cfg;
  caf::actor_system sys;
  threaded_system() : sys(configure(cfg)) {}
};

/// Writes a two-layer MLP (Gemm -> Relu-free Gemm -> Softmax) with random weights as ONNX:
/// input "x" [batch, in], hidden value "h" (the cut value), output "y" [batch, out].
inline void write_mlp_onnx(const std::filesystem::path& file, int64_t in = 16, int64_t hidden = 32,
                           int64_t out = 8, unsigned seed = 7) {
  onnx::ModelProto model;
  model.set_ir_version(8);
  model.add_opset_import()->set_version(13);
  auto* g = model.mutable_graph();
  g->set_name("mlp");
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-0.5f, 0.5f);
  auto add_init = [&](const std::string& name, std::vector<int64_t> dims) {
    auto* t = g->add_initializer();
    t->set_name(name);
    t->set_data_type(onnx::TensorProto::FLOAT);
    int64_t n = 1;
    for (auto d : dims) {
      t->add_dims(d);
      n *= d;
    }
    for (int64_t i = 0; i < n; ++i)
      t->add_float_data(dist(rng));
  };
  add_init("w1", {in, hidden});
  add_init("b1", {hidden});
  add_init("w2", {hidden, out});
  add_init("b2", {out});
  auto add_node = [&](const std::string& op, std::vector<std::string> ins, std::string o) {
    auto* n = g->add_node();
    n->set_op_type(op);
    n->set_name(o + "_node");
    for (auto& i : ins)
      n->add_input(i);
    n->add_output(o);
  };
  add_node("Gemm", {"x", "w1", "b1"}, "h");
  add_node("Gemm", {"h", "w2", "b2"}, "logits");
  add_node("Softmax", {"logits"}, "y");
  auto add_io = [&](onnx::ValueInfoProto* v, const std::string& name, int64_t width) {
    v->set_name(name);
    auto* tt = v->mutable_type()->mutable_tensor_type();
    tt->set_elem_type(onnx::TensorProto::FLOAT);
    tt->mutable_shape()->add_dim()->set_dim_param("batch");
    tt->mutable_shape()->add_dim()->set_dim_value(width);
  };
  add_io(g->add_input(), "x", in);
  add_io(g->add_output(), "y", out);
  std::ofstream f(file, std::ios::binary);
  model.SerializeToOstream(&f);
}

/// A fresh temporary folder, removed at the end of the test.
struct temp_dir {
  std::filesystem::path path;
  temp_dir() {
    path = std::filesystem::temp_directory_path() /
           ("troupe-actors-" + std::to_string(::getpid()) + "-" +
            std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path);
  }
  ~temp_dir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
};

/// An exported reference model (tools/export_models.py), when present.
inline std::optional<std::filesystem::path> test_model_path(const std::string& name) {
  std::vector<std::filesystem::path> candidates;
  if (const char* dir = std::getenv("TROUPE_TEST_MODELS"))
    candidates.emplace_back(std::filesystem::path(dir) / (name + ".onnx"));
  candidates.emplace_back(std::filesystem::path(TROUPE_TEST_MODELS_DIR) / (name + ".onnx"));
  for (const auto& c : candidates)
    if (std::filesystem::exists(c))
      return c;
  return std::nullopt;
}

/// The exported seed CNN, when present.
inline std::optional<std::filesystem::path> seed_cnn_path() { return test_model_path("seed_cnn"); }

inline tensor random_rows(shape dims, std::mt19937& rng) {
  tensor t = tensor::empty(dtype::f32, std::move(dims));
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (auto& v : t.values<float>())
    v = dist(rng);
  return t;
}

/// Sends every request at once (one requester actor each) and returns the replies in request
/// order, checking that each request got exactly one; the calling thread waits in a scoped
/// actor's receive.
inline std::vector<caf::expected<infer_response>>
infer_all(caf::actor_system& sys, batcher_actor b, const std::vector<infer_request>& reqs) {
  caf::scoped_actor self{sys};
  auto sink = caf::actor{self};
  for (size_t i = 0; i < reqs.size(); ++i)
    self->spawn([=, req = reqs[i]](caf::event_based_actor* a) {
      a->request(b, caf::infinite, atom::infer_v, req)
          .then([=](infer_response& r) { a->send(sink, uint64_t{i}, std::move(r)); },
                [=](caf::error& e) { a->send(sink, uint64_t{i}, std::move(e)); });
    });
  std::vector<caf::expected<infer_response>> out(reqs.size(), caf::sec::request_timeout);
  std::vector<int> count(reqs.size(), 0);
  for (size_t n = 0; n < reqs.size(); ++n)
    self->receive([&](uint64_t i, infer_response& r) { out.at(i) = std::move(r); ++count.at(i); },
                  [&](uint64_t i, caf::error& e) { out.at(i) = std::move(e); ++count.at(i); });
  for (int c : count)
    CHECK(c == 1);
  return out;
}

/// Requests of rows[i] rows cut (copied) from `batch`, in order.
inline std::vector<infer_request> requests_of(const tensor& batch,
                                              const std::vector<int64_t>& rows) {
  std::vector<infer_request> reqs;
  int64_t begin = 0;
  for (int64_t r : rows) {
    reqs.push_back(infer_request{{batch.slice_rows(begin, begin + r).clone()}, 0, 0, 0});
    begin += r;
  }
  return reqs;
}

} // namespace troupe::test
