// troupe bench: throughput, latency and GFLOP/s of a model per batch size on the CPU backend.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <map>

#include "apps/troupe/commands.hpp"
#include "kernels/cpu/gemm_ceiling.hpp"
#include "runtime/cost.hpp"
#include "runtime/random_tensor.hpp"
#include "runtime/session.hpp"

namespace troupe::app {
namespace {

struct bench_flags {
  std::string model;
  std::vector<int64_t> batches{1, 8, 64};
  double seconds = 3.0;
  bool json = false;
  bool profile = false;
  bool ceiling = true;
  backend_flags backend;
};

struct bench_row {
  int64_t batch = 0;
  int runs = 0;
  double items_per_s = 0, p50_ms = 0, p99_ms = 0, gflops = 0;
  size_t arena_bytes = 0;
  std::map<std::string, double> op_seconds;
};

double percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

long peak_rss_kb() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return u.ru_maxrss;
}

expected<bench_row> bench_batch(session& s, int64_t batch, const bench_flags& f) {
  std::mt19937_64 rng(batch);
  std::vector<tensor> inputs;
  std::vector<shape> dims;
  for (const auto& in : s.inputs()) {
    inputs.push_back(random_tensor(in.type, concrete_dims(in, batch), rng));
    dims.push_back(inputs.back().dims());
  }
  auto p = s.plan_for(dims);
  if (!p)
    return p.error();
  bench_row row;
  row.batch = batch;
  row.arena_bytes = (*p)->arena_bytes();
  const double flops = count_flops(s.model(), (*p)->value_shapes());
  for (int i = 0; i < 2; ++i) // warm-up: page faults, oneDNN JIT
    if (auto out = s.run(inputs); !out)
      return out.error();
  std::vector<double> latencies;
  std::vector<step_profile> prof;
  const auto start = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (latencies.size() < 3 || elapsed < f.seconds) {
    const auto t0 = std::chrono::steady_clock::now();
    auto out = s.run(inputs, f.profile ? &prof : nullptr);
    if (!out)
      return out.error();
    const auto t1 = std::chrono::steady_clock::now();
    latencies.push_back(std::chrono::duration<double>(t1 - t0).count());
    elapsed = std::chrono::duration<double>(t1 - start).count();
  }
  double total = 0;
  for (double l : latencies)
    total += l;
  row.runs = static_cast<int>(latencies.size());
  row.items_per_s = static_cast<double>(batch) * static_cast<double>(row.runs) / total;
  row.p50_ms = percentile(latencies, 0.5) * 1e3;
  row.p99_ms = percentile(latencies, 0.99) * 1e3;
  row.gflops = flops * static_cast<double>(row.runs) / total / 1e9;
  for (const auto& step : prof)
    row.op_seconds[step.op_type] += step.seconds / static_cast<double>(row.runs);
  return row;
}

int run(const bench_flags& f) {
  session_options options;
  options.limits = f.backend.limits();
  auto s = session::open(f.model, options);
  if (!s) {
    std::fprintf(stderr, "error: %s\n", s.error().to_string().c_str());
    return 1;
  }
  if (auto st = (*s)->context().enter(); !st.is_ok()) {
    std::fprintf(stderr, "error: %s\n", st.to_string().c_str());
    return 1;
  }
  std::vector<bench_row> rows;
  for (int64_t b : f.batches) {
    auto row = bench_batch(**s, b, f);
    if (!row) {
      std::fprintf(stderr, "error: batch %lld: %s\n", static_cast<long long>(b), row.error().to_string().c_str());
      return 1;
    }
    rows.push_back(std::move(*row));
  }
  const double ceiling = f.ceiling ? cpu::measure_sgemm_gflops((*s)->context()) : 0.0;
  const long rss = peak_rss_kb();
  if (f.json) {
    std::printf("{\"model\":\"%s\",\"threads\":%d,\"gemm_ceiling_gflops\":%.2f,\"results\":[", f.model.c_str(),
                (*s)->context().threads(), ceiling);
    for (size_t i = 0; i < rows.size(); ++i) {
      const auto& r = rows[i];
      std::printf("%s{\"batch\":%lld,\"runs\":%d,\"items_per_s\":%.3f,\"latency_ms_p50\":%.4f,"
                  "\"latency_ms_p99\":%.4f,\"gflops\":%.3f,\"arena_bytes\":%zu,\"peak_rss_kb\":%ld}",
                  i ? "," : "", static_cast<long long>(r.batch), r.runs, r.items_per_s, r.p50_ms,
                  r.p99_ms, r.gflops, r.arena_bytes, rss);
    }
    std::printf("]}\n");
    return 0;
  }
  std::printf("%s, %d threads; fp32 GEMM ceiling %.1f GFLOP/s\n", f.model.c_str(),
              (*s)->context().threads(), ceiling);
  std::printf("%7s %8s %12s %10s %10s %9s %8s\n", "batch", "runs", "items/s", "p50 ms", "p99 ms",
              "GFLOP/s", "ceiling");
  for (const auto& r : rows) {
    std::printf("%7lld %8d %12.1f %10.3f %10.3f %9.1f %7.1f%%\n", static_cast<long long>(r.batch),
                r.runs, r.items_per_s, r.p50_ms, r.p99_ms, r.gflops,
                ceiling > 0 ? 100.0 * r.gflops / ceiling : 0.0);
    if (f.profile) {
      std::vector<std::pair<double, std::string>> ops;
      double total = 0;
      for (const auto& [op, sec] : r.op_seconds) {
        ops.push_back({sec, op});
        total += sec;
      }
      std::sort(ops.rbegin(), ops.rend());
      for (const auto& [sec, op] : ops)
        std::printf("        %-22s %9.3f ms %5.1f%%\n", op.c_str(), sec * 1e3, 100.0 * sec / total);
    }
  }
  std::printf("peak RSS %ld KiB\n", rss);
  return 0;
}

} // namespace

void add_bench_command(CLI::App& app) {
  auto flags = std::make_shared<bench_flags>();
  auto* cmd = app.add_subcommand("bench", "measure throughput and latency per batch size");
  cmd->add_option("model", flags->model, "model.onnx")->required()->check(CLI::ExistingFile);
  cmd->add_option("--batch", flags->batches, "batch sizes")->delimiter(',')->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--seconds", flags->seconds, "measuring time per batch size")->check(CLI::Range(0.0, 3600.0));
  cmd->add_flag("--json", flags->json, "print JSON instead of a table");
  cmd->add_flag("--profile", flags->profile, "time per operator type");
  cmd->add_flag("!--no-ceiling", flags->ceiling, "skip measuring the GEMM ceiling");
  flags->backend.add_to(*cmd);
  cmd->callback([flags] {
    if (int rc = run(*flags); rc != 0)
      throw CLI::RuntimeError(rc);
  });
}

} // namespace troupe::app
