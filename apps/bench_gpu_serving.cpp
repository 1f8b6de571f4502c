// bench_gpu_serving: throughput of models served end to end on a GPU (batcher -> merger -> GPU
// executor, KIND_GPU) next to the raw backend (gpu_session alone), per model, precision and
// batch size, and of models served as 2 KIND_GPU pipeline stages next to the whole model, as
// markdown tables for tools/gpu-check.sh.
//
//   bench_gpu_serving [--models-dir DIR] [--models seed_cnn,resnet50] [--precision fp16]
//                     [--batch 32,256] [--instances 1] [--seconds 1]
//                     [--pipeline-models seed_cnn,resnet18] [--pipeline-batch 32]
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>

#include "actors/embedded_runtime.hpp"
#include "apps/gpu_session_timing.hpp"
#include "kernels/gpu_devices.hpp"
#include "runtime/gpu_session.hpp"
#include "runtime/random_tensor.hpp"

using namespace troupe;
using clock_type = std::chrono::steady_clock;

namespace {

struct counters {
  std::atomic<bool> measuring{false};
  std::atomic<bool> stop{false};
  std::atomic<int64_t> items{0}; // rows answered while measuring
  std::atomic<int64_t> answered{0}; // rows answered since the start, warm-up included
  std::atomic<int64_t> errors{0};
  std::atomic<int> running{0}; // clients not finished yet
};

/// A closed-loop client keeping `outstanding` requests of `input` (its rows are the items) in
/// flight until told to stop.
caf::behavior client(caf::event_based_actor* self, batcher_actor batcher, tensor input,
                     int outstanding, std::shared_ptr<counters> c) {
  auto inflight = std::make_shared<int>(0);
  auto send_one = std::make_shared<std::function<void()>>();
  *send_one = [=] {
    if (c->stop) {
      if (*inflight == 0) {
        --c->running;
        self->quit();
      }
      return;
    }
    ++*inflight;
    self->request(batcher, caf::infinite, atom::infer_v, infer_request{{input}, 0, 0, 0})
        .then(
            [=](infer_response&) {
              --*inflight;
              c->answered += input.dim(0);
              if (c->measuring)
                c->items += input.dim(0);
              (*send_one)();
            },
            [=](caf::error&) {
              --*inflight;
              ++c->errors;
              (*send_one)();
            });
  };
  for (int i = 0; i < outstanding; ++i)
    (*send_one)();
  return {[](caf::ok_atom) {}};
}

struct served_result {
  double items_per_second = 0;
  int64_t errors = 0;
};

/// Items per second through the actors: `clients` closed-loop clients with `outstanding`
/// requests of `input` each, measured for `seconds` after a warm-up of at least `warm_rows`
/// answered rows (the executor's first batches compile the plan, time cuDNN's algorithms,
/// which takes seconds for a large CNN, and capture it).
served_result measure_served(caf::actor_system& sys, const model_handle& h, const tensor& input,
                             int clients, int outstanding, double seconds, int64_t warm_rows) {
  auto c = std::make_shared<counters>();
  c->running = clients;
  for (int i = 0; i < clients; ++i)
    sys.spawn(client, h.batcher, input, outstanding, c);
  const auto give_up = clock_type::now() + std::chrono::seconds(60);
  while (c->answered < warm_rows && c->errors == 0 && clock_type::now() < give_up)
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  std::this_thread::sleep_for(std::chrono::duration<double>(std::max(seconds / 2, 0.25)));
  c->measuring = true;
  const auto t0 = clock_type::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  const auto items = c->items.load();
  const double elapsed = std::chrono::duration<double>(clock_type::now() - t0).count();
  c->stop = true;
  while (c->running > 0)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return {static_cast<double>(items) / elapsed, c->errors.load()};
}

/// KIND_GPU on `device` at `precision`; every batch padded to `batch` rows, so the executor
/// runs one plan (captured as a CUDA graph).
model_config served_config(int64_t batch, gpu_precision precision, int device, int instances) {
  model_config c;
  c.max_batch_size = batch;
  c.allowed_batch_sizes = {batch};
  c.max_batches_in_flight = 2;
  dynamic_batching_config db;
  db.preferred_batch_size = {batch};
  db.max_queue_delay = std::chrono::microseconds(2000);
  c.dynamic_batching = db;
  c.precision = precision;
  c.instance_groups.push_back(instance_group{"gpu", instances, instance_kind::gpu, {device}});
  return c;
}

/// Served items/s of each model as 1 and 2 KIND_GPU pipeline stages (fp32, `batch` rows per
/// batch) on any GPUs: the stages of one replica take distinct GPUs when there are two, else
/// both share GPU 0. Prints one table row per model and stage count; returns the failures.
int pipeline_rows(caf::actor_system& sys, embedded_runtime& rt, const std::string& dir,
                  const std::vector<std::string>& models, int64_t batch, double seconds,
                  int64_t& version) {
  std::printf("\nServed as KIND_GPU pipeline stages (fp32, batch %lld; activations between "
              "stages stay on the GPUs: device-to-device or peer copies)\n\n"
              "| model | stages | GPUs | served items/s (1-item requests) | "
              "served items/s (batch requests) |\n|---|---:|---|---:|---:|\n",
              static_cast<long long>(batch));
  std::mt19937_64 rng{std::random_device{}()};
  int failures = 0;
  for (const auto& model : models) {
    const auto path = std::filesystem::path(dir) / (model + ".onnx");
    if (!std::filesystem::exists(path)) {
      std::printf("| %s | - | - | missing %s | |\n", model.c_str(), path.string().c_str());
      continue;
    }
    for (int64_t stages : {1, 2}) {
      auto config = served_config(batch, gpu_precision::fp32, 0, 1);
      config.instance_groups.front().gpus.clear(); // any GPU: placement spreads the stages
      config.parallelism.pipeline_stages = stages;
      auto h = rt.load_model(model, ++version, path, config);
      if (!h) {
        std::printf("| %s | %lld | - | error: %s | |\n", model.c_str(),
                    static_cast<long long>(stages), sys.render(h.error()).c_str());
        ++failures;
        continue;
      }
      std::string gpus;
      if (auto st = rt.status())
        for (const auto& rep : st->replicas)
          if (rep.model == model && rep.version == version)
            for (int32_t d : rep.devices)
              gpus += fmt::format("{}cuda:{}", gpus.empty() ? "" : ", ", d);
      const auto& in = h->inputs.at(0);
      const tensor input = random_tensor(in.type, concrete_dims(in, batch), rng);
      const tensor item = input.slice_rows(0, 1).clone();
      auto single = measure_served(sys, *h, item, 8, std::max(1, 3 * static_cast<int>(batch) / 8),
                                   seconds, 4 * batch);
      auto whole = measure_served(sys, *h, input, 1, 3, seconds, 4 * batch);
      (void)rt.unload_model(model, version);
      std::printf("| %s | %lld | %s | %.0f | %.0f |\n", model.c_str(),
                  static_cast<long long>(stages), gpus.c_str(), single.items_per_second,
                  whole.items_per_second);
      if (single.errors + whole.errors > 0) {
        std::printf("| %s | %lld | | %lld requests failed | |\n", model.c_str(),
                    static_cast<long long>(stages),
                    static_cast<long long>(single.errors + whole.errors));
        ++failures;
      }
      std::fflush(stdout);
    }
  }
  return failures;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"Served (actors, KIND_GPU) against raw GPU backend throughput"};
  const char* env_dir = std::getenv("TROUPE_GPU_MODELS_DIR");
  std::string dir = env_dir ? env_dir : "build/models";
  std::vector<std::string> models{"seed_cnn", "resnet50", "bert_encoder"};
  std::vector<std::string> precisions{"fp32", "fp16"};
  std::vector<int64_t> batches{32, 256};
  double seconds = 0.5;
  int device = 0;
  int instances = 1;
  std::vector<std::string> pipeline_models{"seed_cnn", "resnet18"};
  int64_t pipeline_batch = 32;
  bool no_pipelines = false;
  app.add_option("--models-dir", dir, "folder of exported <model>.onnx (default "
                                      "$TROUPE_GPU_MODELS_DIR, else build/models)");
  app.add_option("--models", models, "models to run (missing files are skipped)")->delimiter(',');
  app.add_option("--precision", precisions, "fp32, tf32, fp16, bf16")->delimiter(',');
  app.add_option("--batch", batches, "batch sizes (models with a fixed batch run only theirs)")
      ->delimiter(',');
  app.add_option("--seconds", seconds, "measuring time per figure");
  app.add_option("--device", device, "CUDA device index");
  app.add_option("--instances", instances, "GPU executors (replicas) of the served model");
  app.add_option("--pipeline-models", pipeline_models,
                 "models served as 2 pipeline stages (missing files are skipped)")
      ->delimiter(',');
  app.add_option("--pipeline-batch", pipeline_batch, "batch size of the pipeline rows");
  app.add_flag("--no-pipelines", no_pipelines, "serve no model as pipeline stages");
  CLI11_PARSE(app, argc, argv);

  auto gpus = list_gpus();
  if (!gpus || gpus->empty()) {
    std::printf("bench_gpu_serving: skipped, %s\n",
                gpus ? "no GPU" : gpus.error().message().c_str());
    return 77;
  }
  caf::actor_system_config cfg;
  add_troupe_types(cfg);
  cfg.set("logger.console", caf::atom("none"));
  caf::actor_system sys{cfg};
  auto rt = embedded_runtime::start(sys);
  if (!rt) {
    std::fprintf(stderr, "bench_gpu_serving: %s\n", sys.render(rt.error()).c_str());
    return 1;
  }
  std::printf("\nServed end to end (batcher -> merger -> GPU executor, %d replica(s)) against "
              "the raw backend on %s (the better of one run at a time and two in flight); "
              "1-item requests are batched by the batcher, batch requests carry the whole "
              "batch\n\n",
              instances, gpus->front().name.c_str());
  std::printf("| model | precision | batch | raw items/s | served items/s (1-item requests) | "
              "ratio | served items/s (batch requests) | ratio |\n"
              "|---|---|---:|---:|---:|---:|---:|---:|\n");
  std::mt19937_64 rng{std::random_device{}()};
  int failures = 0;
  int64_t version = 0;
  for (const auto& model : models) {
    const auto path = std::filesystem::path(dir) / (model + ".onnx");
    if (!std::filesystem::exists(path)) {
      std::printf("| %s | - | - | missing %s | | | | |\n", model.c_str(), path.string().c_str());
      continue;
    }
    for (const auto& name : precisions) {
      auto precision = parse_precision(name);
      if (!precision) {
        std::fprintf(stderr, "bench_gpu_serving: %s\n", precision.error().to_string().c_str());
        return 2;
      }
      gpu_session_options options;
      options.device = device;
      options.precision = *precision;
      auto raw = gpu_session::open(path.string(), options);
      if (!raw) {
        std::printf("| %s | %s | - | error: %s | | | | |\n", model.c_str(), name.c_str(),
                    raw.error().to_string().c_str());
        ++failures;
        continue;
      }
      const auto& first = (*raw)->inputs().at(0);
      const bool dynamic_batch = !first.dims.empty() && first.dims[0] < 0;
      if (!dynamic_batch) {
        std::printf("| %s | %s | - | skipped: no batch dimension to serve | | | | |\n",
                    model.c_str(), name.c_str());
        continue;
      }
      for (int64_t batch : batches) {
        std::vector<tensor> inputs;
        for (const auto& in : (*raw)->inputs())
          inputs.push_back(random_tensor(in.type, concrete_dims(in, batch), rng));
        auto timed = time_gpu_session(**raw, inputs, batch, seconds);
        if (timed) { // the raw figure is the better of one run at a time and two in flight
          auto overlapped = time_gpu_session_overlapped(**raw, inputs, batch, seconds);
          if (!overlapped)
            timed = overlapped.error();
          else if (overlapped->items_per_second > timed->items_per_second)
            timed = *overlapped;
        }
        if (!timed || inputs.size() != 1) {
          std::printf("| %s | %s | %lld | error: %s | | | | |\n", model.c_str(), name.c_str(),
                      static_cast<long long>(batch),
                      timed ? "the served benchmark sends one input"
                            : timed.error().to_string().c_str());
          ++failures;
          continue;
        }
        const double raw_rate = timed->items_per_second;
        auto h = (*rt)->load_model(model, ++version, path,
                                   served_config(batch, *precision, device, instances));
        if (!h) {
          std::printf("| %s | %s | %lld | %.0f | error: %s | | | |\n", model.c_str(), name.c_str(),
                      static_cast<long long>(batch), raw_rate, sys.render(h.error()).c_str());
          ++failures;
          continue;
        }
        const tensor item = inputs[0].slice_rows(0, 1).clone();
        const int rows = static_cast<int>(batch);
        auto single = measure_served(sys, *h, item, 8, std::max(1, 3 * rows * instances / 8),
                                     seconds, 4 * batch * instances);
        auto whole = measure_served(sys, *h, inputs[0], 1, 3 * instances, seconds,
                                    4 * batch * instances);
        (void)(*rt)->unload_model(model, version);
        std::printf("| %s | %s | %lld | %.0f | %.0f | %.2f | %.0f | %.2f |\n", model.c_str(),
                    name.c_str(), static_cast<long long>(batch), raw_rate,
                    single.items_per_second, single.items_per_second / raw_rate,
                    whole.items_per_second, whole.items_per_second / raw_rate);
        if (single.errors + whole.errors > 0) {
          std::printf("| %s | %s | %lld | %lld requests failed | | | | |\n", model.c_str(),
                      name.c_str(), static_cast<long long>(batch),
                      static_cast<long long>(single.errors + whole.errors));
          ++failures;
        }
        std::fflush(stdout);
      }
    }
  }
  if (!no_pipelines)
    failures += pipeline_rows(sys, **rt, dir, pipeline_models, pipeline_batch, seconds, version);
  (*rt)->shutdown();
  return failures == 0 ? 0 : 1;
}
