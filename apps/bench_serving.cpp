// bench_serving: in-process serving throughput and latency (batcher -> executor -> merger)
// at several concurrencies, with dynamic batching on and off, next to the raw backend; or,
// with --pipeline, one model served as a 1-stage replica on one single-core device against
// pipelines over one single-core device per stage, next to the planner's prediction.
//
//   bench_serving --models-dir DIR [--models seed_cnn,resnet18] [--concurrency 1,8,64,256]
//                 [--seconds 2] [--async-executor]
//   bench_serving --pipeline --models-dir DIR [--models resnet18] [--batch 8]
//                 [--micro-batches 0,4] [--cores 0,1] [--seconds 10]
#include <algorithm>
#include <cmath>
#include <atomic>
#include <iostream>
#include <mutex>

#include <CLI/CLI.hpp>
#include <caf/all.hpp>

#include "apps/openmp_wait_policy.hpp"
#include "actors/embedded_runtime.hpp"
#include "runtime/onnx_import.hpp"
#include "runtime/planner/device_speed.hpp"
#include "runtime/planner/placement.hpp"
#include "runtime/session.hpp"

using namespace troupe;
using clock_type = std::chrono::steady_clock;

namespace {

struct run_result {
  double throughput = 0; // requests per second
  double p50_ms = 0, p99_ms = 0;
  uint64_t errors = 0;
  std::vector<double> stage_ms;   // mean run time of each stage per measured batch
  std::vector<double> stage_busy; // share of the measured time each stage ran
};

struct bench_shared {
  std::atomic<bool> stop{false};
  std::atomic<bool> measuring{false}; // replies before this are warm-up
  std::mutex mutex;
  std::vector<double> latencies_ms;
  std::atomic<uint64_t> errors{0};
  std::atomic<int> finished{0};
  std::vector<double> stage_us; // summed over measured batches (under `mutex`)
  uint64_t batches = 0;
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
            [=](infer_response& r) {
              --*inflight;
              if (shared->measuring)
                local->push_back(
                    std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
              if (shared->measuring && r.batch_rows > 0) { // the batch's first reply
                std::lock_guard<std::mutex> lock{shared->mutex};
                shared->stage_us.resize(std::max(shared->stage_us.size(), r.stage_us.size()));
                for (size_t i = 0; i < r.stage_us.size(); ++i)
                  shared->stage_us[i] += static_cast<double>(r.stage_us[i]);
                ++shared->batches;
              }
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
  for (double us : shared->stage_us) {
    r.stage_ms.push_back(shared->batches ? us / 1e3 / static_cast<double>(shared->batches) : 0);
    r.stage_busy.push_back(us / 1e6 / elapsed);
  }
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

struct pipeline_settings {
  std::string onnx;
  shape item;
  int64_t batch = 8;
  std::vector<int64_t> micro_batches{0};
  std::vector<int> cores{0, 1};
  std::vector<std::string> transports{"message"}; // stage_transport variants of K >= 2
  double seconds = 10;
};

/// One pipeline row: the planner's prediction for `stages` single-core devices, then the same
/// cut served through the actors (closed loop, two full batches of one-row requests in flight
/// so the stages can overlap; the better of two windows). Returns measured items per second.
std::optional<double> pipeline_row(caf::actor_system& sys, const pipeline_settings& s,
                                   const planner::model_cost& cost,
                                   const planner::device_spec& device, int stages, int64_t micro,
                                   double baseline, bool exchange_links = false) {
  planner::device_pool pool;
  pool.devices_per_node = stages;
  pool.device = device;
  pool.link_gbps = 1e3; // stages in one process hand tensors over by reference
  planner::planner_options options;
  options.batch = static_cast<double>(s.batch);
  options.micro_batch = static_cast<double>(micro);
  auto plan = planner::evaluate_candidate(cost, pool, options, stages, 1);
  if (plan.stage_list.empty()) {
    std::cerr << stages << " stages: " << plan.why_not << "\n";
    return std::nullopt;
  }
  runtime_options ro;
  ro.resources.cpu_devices = stages;
  ro.resources.cores.assign(s.cores.begin(), s.cores.begin() + stages);
  auto rt = embedded_runtime::start(sys, ro);
  if (!rt) {
    std::cerr << sys.render(rt.error()) << "\n";
    return std::nullopt;
  }
  model_config config;
  config.max_batch_size = s.batch;
  config.max_batches_in_flight = 2;
  config.parallelism.micro_batch = micro;
  config.parallelism.exchange_links = exchange_links;
  dynamic_batching_config db;
  db.preferred_batch_size = {s.batch};
  db.max_queue_delay = std::chrono::microseconds(50000);
  config.dynamic_batching = db;
  load_options lo;
  lo.boundaries = plan.boundaries;
  auto h = (*rt)->load_model("bench", 1, s.onnx, config, lo);
  if (!h) {
    std::cerr << sys.render(h.error()) << "\n";
    return std::nullopt;
  }
  tensor input = tensor::zeros(dtype::f32, s.item);
  // The better of two windows: one disturbance from outside (this is a shared VM) does not
  // decide a row.
  auto r = measure(sys, *h, input, static_cast<int>(2 * s.batch), s.seconds);
  if (auto again = measure(sys, *h, input, static_cast<int>(2 * s.batch), s.seconds);
      again.throughput > r.throughput)
    r = std::move(again);
  (*rt)->shutdown();
  // Per batch: every micro-batch's run time summed, predicted and measured.
  const double micros = micro > 0 ? std::ceil(static_cast<double>(s.batch) / static_cast<double>(micro)) : 1;
  std::string predicted_ms, measured_ms, busy;
  for (const auto& st : plan.stage_list)
    predicted_ms += fmt::format("{}{:.0f}", predicted_ms.empty() ? "" : "/", st.seconds * micros * 1e3);
  for (size_t i = 0; i < r.stage_ms.size(); ++i) {
    measured_ms += fmt::format("{}{:.0f}", i ? "/" : "", r.stage_ms[i]);
    busy += fmt::format("{}{:.0f}%", i ? "/" : "", 100 * r.stage_busy[i]);
  }
  const double speedup = baseline > 0 ? r.throughput / baseline : 1;
  std::printf("| %d stage(s) on core(s) %s%s | %s | %.1f | %.1f | %+.0f%% | %.2fx | %s | %s | %s | %llu |\n",
              stages, fmt::format("{}", fmt::join(ro.resources.cores, ",")).c_str(),
              exchange_links ? ", exchange links" : "",
              micro > 0 ? std::to_string(micro).c_str() : "-", plan.replica_items_per_s,
              r.throughput, 100 * (plan.replica_items_per_s - r.throughput) / r.throughput,
              speedup, predicted_ms.c_str(), measured_ms.c_str(), busy.c_str(),
              static_cast<unsigned long long>(r.errors));
  std::fflush(stdout);
  return r.throughput;
}

/// The --pipeline table: K = 1 on one core, then K = 2 (and micro-batch variants) on two.
int pipeline_bench(const pipeline_settings& s) {
  auto g = load_onnx(s.onnx);
  if (!g) {
    std::cerr << g.error().to_string() << "\n";
    return 1;
  }
  auto analysis = planner::analyze_model(std::move(*g));
  if (!analysis) {
    std::cerr << analysis.error().to_string() << "\n";
    return 1;
  }
  // Predictions from operator times profiled on one core (as `troupe plan --measure`), at
  // 1 and `batch` rows; before the actor system's threads exist.
  const cpu::cpu_limits one_core{1, {s.cores.at(0)}};
  if (auto st = planner::profile_model(*analysis, one_core, s.batch, 5); !st.is_ok()) {
    std::cerr << st.to_string() << "\n";
    return 1;
  }
  auto speed = planner::cpu_device_speed(one_core, planner::default_speed_cache());
  if (!speed) {
    std::cerr << speed.error().to_string() << "\n";
    return 1;
  }
  planner::device_spec device;
  device.memory_bytes = 1e12;
  device.gflops = speed->gflops;
  device.mem_gbps = speed->mem_gbps;

  caf::actor_system_config cfg;
  add_troupe_types(cfg);
  cfg.set("scheduler.max-threads", size_t{2});
  cfg.set("logger.console", caf::atom("none"));
  caf::actor_system sys{cfg};
  std::printf("%s, batch %lld, %lld one-row requests in flight, max_batches_in_flight 2, "
              "one thread per stage, better of two %.0f s windows\n\n",
              std::filesystem::path(s.onnx).stem().c_str(), static_cast<long long>(s.batch),
              static_cast<long long>(2 * s.batch), s.seconds);
  std::cout << "| plan | micro-batch | predicted items/s | measured items/s | prediction error "
               "| speedup vs 1 stage | stage ms per batch, predicted | measured | stage busy "
               "| errors |\n"
            << "|---|---:|---:|---:|---:|---:|---|---|---|---:|\n";
  auto base = pipeline_row(sys, s, analysis->cost, device, 1, 0, 0);
  if (!base)
    return 1;
  for (int stages = 2; stages <= static_cast<int>(s.cores.size()); ++stages)
    for (int64_t micro : s.micro_batches)
      for (const auto& transport : s.transports)
        if (!pipeline_row(sys, s, analysis->cost, device, stages, micro, *base,
                          transport == "exchange"))
          return 1;
  return 0;
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
  bool async_executor = false;
  app.add_flag("--async-executor", async_executor,
               "serve through the asynchronous executor (the GPU executor's actor path over a "
               "CPU session on its own thread) instead of the detached one");
  bool pipeline = false;
  pipeline_settings ps;
  app.add_flag("--pipeline", pipeline,
               "pipeline table: 1 stage on one core vs one stage per core (first --models)");
  app.add_option("--batch", ps.batch, "--pipeline: max_batch_size")
      ->check(CLI::Range(int64_t{1}, int64_t{1024}));
  app.add_option("--micro-batches", ps.micro_batches, "--pipeline: micro_batch variants (0: none)")
      ->delimiter(',');
  app.add_option("--cores", ps.cores, "--pipeline: one core per stage; stages 2..count")
      ->delimiter(',');
  app.add_option("--stage-transports", ps.transports,
                 "--pipeline: message (tensors in the actor messages) and/or exchange (over "
                 "exchange links) for 2 or more stages")
      ->check(CLI::IsMember({"message", "exchange"}))
      ->delimiter(',');
  CLI11_PARSE(app, argc, argv);
  if (pipeline) {
    if (models.empty() || ps.cores.empty()) {
      std::cerr << "--pipeline needs a model and at least one core\n";
      return 1;
    }
    const bool big = models.front() != "seed_cnn";
    ps.onnx = dir + "/" + models.front() + ".onnx";
    ps.item = big ? shape{1, 3, 224, 224} : shape{1, 1, 28, 28};
    ps.seconds = seconds;
    return pipeline_bench(ps);
  }

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
      load_options lo;
      lo.host_async = async_executor;
      auto h = (*rt)->load_model(name, 1, onnx, config, lo);
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
