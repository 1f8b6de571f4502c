// bench_serving: in-process serving throughput and latency (batcher -> executor -> merger)
// at several concurrencies, with dynamic batching on and off, next to the raw backend.
//
//   bench_serving --models-dir DIR [--models seed_cnn,resnet18] [--concurrency 1,8,64,256]
//                 [--seconds 2]
#include <algorithm>
#include <atomic>
#include <iostream>
#include <mutex>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>

#include "apps/openmp_wait_policy.hpp"
#include "actors/embedded_runtime.hpp"
#include "runtime/session.hpp"

using namespace troupe;
using clock_type = std::chrono::steady_clock;

namespace {

struct run_result {
  double throughput = 0; // requests per second
  double p50_ms = 0, p99_ms = 0;
  uint64_t errors = 0;
};

struct bench_shared {
  std::atomic<bool> stop{false};
  std::atomic<bool> measuring{false}; // replies before this are warm-up
  std::mutex mutex;
  std::vector<double> latencies_ms;
  std::atomic<uint64_t> errors{0};
  std::atomic<int> finished{0};
};

/// A closed-loop client with `outstanding` requests in flight until told to stop.
caf::behavior client(caf::event_based_actor* self, batcher_actor batcher, tensor input,
                     int outstanding, std::shared_ptr<bench_shared> shared) {
  auto inflight = std::make_shared<int>(0);
  auto local = std::make_shared<std::vector<double>>();
  auto send_one = std::make_shared<std::function<void()>>();
  *send_one = [=] {
    if (shared->stop) {
      if (*inflight == 0) {
        {
          std::lock_guard<std::mutex> lock{shared->mutex};
          shared->latencies_ms.insert(shared->latencies_ms.end(), local->begin(), local->end());
        }
        ++shared->finished;
        self->quit();
      }
      return;
    }
    ++*inflight;
    auto t0 = clock_type::now();
    self->request(batcher, caf::infinite, atom::infer_v, infer_request{{input}, 0, 0, 0})
        .then(
            [=](infer_response&) {
              --*inflight;
              if (shared->measuring)
                local->push_back(
                    std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
              (*send_one)();
            },
            [=](caf::error&) {
              --*inflight;
              ++shared->errors;
              (*send_one)();
            });
  };
  for (int i = 0; i < outstanding; ++i)
    (*send_one)();
  return {[](caf::ok_atom) {}};
}

run_result measure(caf::actor_system& sys, const model_handle& h, const tensor& input,
                   int concurrency, double seconds) {
  auto shared = std::make_shared<bench_shared>();
  const int clients = std::min(concurrency, 64);
  for (int c = 0; c < clients; ++c) {
    int outstanding = concurrency / clients + (c < concurrency % clients ? 1 : 0);
    sys.spawn(client, h.batcher, input, outstanding, shared);
  }
  // Warm-up: the first batches of each size compile plans.
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds / 4));
  shared->measuring = true;
  const auto t0 = clock_type::now();
  std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
  shared->stop = true;
  while (shared->finished < clients)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  const double elapsed = std::chrono::duration<double>(clock_type::now() - t0).count();
  run_result r;
  auto& lat = shared->latencies_ms;
  std::sort(lat.begin(), lat.end());
  r.errors = shared->errors;
  if (!lat.empty()) {
    r.p50_ms = lat[lat.size() / 2];
    r.p99_ms = lat[std::min(lat.size() - 1, lat.size() * 99 / 100)];
  }
  r.throughput = static_cast<double>(lat.size()) / elapsed;
  return r;
}

/// Items per second of the bare session at `rows` rows (no actors).
double raw_throughput(const std::string& onnx, shape item, int64_t rows, double seconds) {
  auto s = session::open(onnx);
  if (!s)
    return 0;
  item[0] = rows;
  std::vector<tensor> in{tensor::zeros(dtype::f32, item)};
  (void)(*s)->run(in);
  int64_t n = 0;
  auto t0 = clock_type::now();
  while (std::chrono::duration<double>(clock_type::now() - t0).count() < seconds) {
    (void)(*s)->run(in);
    n += rows;
  }
  return static_cast<double>(n) / std::chrono::duration<double>(clock_type::now() - t0).count();
}

} // namespace

int main(int argc, char** argv) {
  troupe::app::use_passive_openmp_wait(argv);
  CLI::App app{"troupe in-process serving benchmark"};
  std::string dir;
  std::vector<std::string> models{"seed_cnn", "resnet18"};
  std::vector<int> concurrency{1, 8, 64, 256};
  double seconds = 2;
  app.add_option("--models-dir", dir, "folder with NAME.onnx from tools/export_models.py")
      ->required();
  app.add_option("--models", models)->delimiter(',');
  app.add_option("--concurrency", concurrency)->delimiter(',');
  app.add_option("--seconds", seconds, "measured time per row of the table");
  CLI11_PARSE(app, argc, argv);

  // The raw figures first, before the actor system's scheduler threads share the cores.
  std::vector<std::string> raw_lines;
  for (const auto& name : models) {
    const bool big = name == "resnet18";
    shape item = big ? shape{1, 3, 224, 224} : shape{1, 1, 28, 28};
    for (int64_t rows : {int64_t{1}, int64_t{big ? 16 : 64}})
      raw_lines.push_back(fmt::format("| {} | {} | {:.0f} |", name, rows,
                                      raw_throughput(dir + "/" + name + ".onnx", item, rows,
                                                     seconds)));
  }

  caf::actor_system_config cfg;
  add_troupe_types(cfg);
  cfg.set("scheduler.max-threads", size_t{2});
  cfg.set("logger.console", caf::atom("none"));
  caf::actor_system sys{cfg};

  std::cout << "| model | batching | concurrency | req/s | p50 ms | p99 ms | errors |\n"
            << "|---|---|---:|---:|---:|---:|---:|\n";
  for (const auto& name : models) {
    const std::string onnx = dir + "/" + name + ".onnx";
    const bool big = name == "resnet18";
    shape item = big ? shape{1, 3, 224, 224} : shape{1, 1, 28, 28};
    const int64_t max_batch = big ? 16 : 64;
    for (bool batching : {false, true}) {
      auto rt = embedded_runtime::start(sys);
      if (!rt) {
        std::cerr << sys.render(rt.error()) << "\n";
        return 1;
      }
      model_config config;
      config.max_batch_size = max_batch;
      config.max_batches_in_flight = 2;
      if (batching) {
        dynamic_batching_config db;
        db.max_queue_delay = std::chrono::microseconds(big ? 5000 : 500);
        config.dynamic_batching = db;
      }
      auto h = (*rt)->load_model(name, 1, onnx, config);
      if (!h) {
        std::cerr << name << ": " << sys.render(h.error()) << "\n";
        return 1;
      }
      tensor input = tensor::zeros(dtype::f32, item);
      for (int c : concurrency) {
        if (big && c > 64)
          continue; // 2 cores: ResNet-18 at 256 in flight only adds queueing
        auto r = measure(sys, *h, input, c, big ? seconds * 2 : seconds);
        std::printf("| %s | %s | %d | %.0f | %.2f | %.2f | %llu |\n", name.c_str(),
                    batching ? "on" : "off", c, r.throughput, r.p50_ms, r.p99_ms,
                    static_cast<unsigned long long>(r.errors));
        std::fflush(stdout);
      }
      (*rt)->shutdown();
    }
  }
  std::cout << "\nRaw backend (session.run, no actors):\n\n| model | batch | items/s |\n"
            << "|---|---:|---:|\n";
  for (auto& l : raw_lines)
    std::cout << l << "\n";
  return 0;
}
