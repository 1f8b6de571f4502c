// troupe load: runs a scripted load scenario against a server (HTTP) or an embedded runtime
// and writes the summary, JSON, per-second CSV and an HTML report.
#include <cstdio>
#include <fstream>
#include <optional>

#include <caf/all.hpp>

#include "actors/embedded_runtime.hpp"
#include "actors/in_process_transport.hpp"
#include "apps/troupe/commands.hpp"
#include "runtime/load/http_transport.hpp"
#include "runtime/load/report.hpp"
#include "runtime/load/runner.hpp"

namespace troupe::app {
namespace {

struct load_flags {
  std::string scenario;
  std::string url;
  std::string repository;
  std::string json, csv, html;
  bool quiet = false;
  int cpu_devices = 1;
  std::optional<double> capacity; // requests per second that `rate: P%` is a share of
};

bool write_file(const std::string& path, const std::string& text) {
  std::ofstream f(path, std::ios::binary);
  f << text;
  if (!f) {
    std::fprintf(stderr, "error: cannot write %s\n", path.c_str());
    return false;
  }
  return true;
}

int run_with(const load_flags& f, const load::scenario& s, load::transport& t) {
  auto clock = load::make_steady_clock();
  load::runner_options options;
  if (!f.quiet)
    options.on_second = [](const load::second_row& row, const load::run_result& context) {
      std::printf("%s\n", load::live_line(row, context).c_str());
      std::fflush(stdout);
    };
  load::load_runner runner(s, t, *clock, options);
  if (auto st = runner.prepare(); !st.is_ok())
    return fail(st);
  const load::run_result r = runner.run();
  std::printf("%s", load::summary_table(r).c_str());
  bool ok = true;
  if (!f.json.empty())
    ok &= write_file(f.json, load::to_json(r));
  if (!f.csv.empty())
    ok &= write_file(f.csv, load::to_csv(r));
  if (!f.html.empty()) {
    ok &= write_file(f.html, load::to_html(r));
    if (ok)
      std::printf("report: %s\n", f.html.c_str());
  }
  return ok ? 0 : 1;
}

int run(const load_flags& f) {
  auto loaded = load::load_scenario(f.scenario, f.capacity);
  if (!loaded)
    return fail(loaded.error());
  load::scenario s = std::move(*loaded);

  if (!f.repository.empty()) {
    // In-process: troupe's actors in this process, requests as typed messages.
    s.transport = load::transport_kind::in_process;
    caf::actor_system_config cfg;
    add_troupe_types(cfg);
    cfg.set("logger.console", caf::atom("none"));
    caf::actor_system sys{cfg};
    runtime_options ro;
    ro.resources.cpu_devices = f.cpu_devices;
    auto rt = embedded_runtime::start(sys, ro);
    if (!rt) {
      std::fprintf(stderr, "error: %s\n", sys.render(rt.error()).c_str());
      return 1;
    }
    auto models = (*rt)->load_repository(f.repository);
    if (!models) {
      std::fprintf(stderr, "error: %s\n", sys.render(models.error()).c_str());
      return 1;
    }
    int rc = 0;
    {
      in_process_transport t(sys, **rt, "in-process " + f.repository);
      rc = run_with(f, s, t);
    }
    (*rt)->shutdown();
    return rc;
  }

  if (s.transport == load::transport_kind::in_process) {
    if (f.url.empty())
      return fail(make_error(errc::invalid_argument,
                             "{}: the scenario's transport is in_process: pass --in-process REPO "
                             "(or --url URL to send it over HTTP JSON)",
                             f.scenario));
    s.transport = load::transport_kind::http_json;
  }
  const std::string url = f.url.empty() ? "http://127.0.0.1:8000" : f.url;
  auto t = load::make_http_transport(url,
                                     s.transport == load::transport_kind::http_binary
                                         ? load::http_encoding::binary
                                         : load::http_encoding::json,
                                     static_cast<int>(s.connections));
  if (!t)
    return fail(t.error());
  return run_with(f, s, **t);
}

} // namespace

void add_load_command(CLI::App& app) {
  auto flags = std::make_shared<load_flags>();
  auto* cmd = app.add_subcommand("load", "run a load scenario (YAML) and report latency, "
                                         "throughput, goodput and accuracy");
  cmd->add_option("scenario", flags->scenario, "scenario YAML")->required()->check(CLI::ExistingFile);
  auto* url = cmd->add_option("--url", flags->url, "server root, e.g. http://127.0.0.1:8000 (loopback only)");
  auto* repo = cmd->add_option("--in-process", flags->repository,
                               "model repository to serve inside this process instead of HTTP")
                   ->check(CLI::ExistingDirectory);
  url->excludes(repo);
  cmd->add_option("--cpu-devices", flags->cpu_devices, "in-process: CPU devices (disjoint core sets)")
      ->check(CLI::Range(1, 1024));
  // Checked by the scenario parser, whose error says what a capacity must be.
  cmd->add_option("--capacity", flags->capacity,
                  "requests per second that relative rates (`rate: 40%`) are a share of");
  cmd->add_option("--json", flags->json, "write the results as JSON");
  cmd->add_option("--csv", flags->csv, "write the per-second series as CSV");
  cmd->add_option("--html", flags->html, "write a self-contained HTML report");
  cmd->add_flag("--quiet", flags->quiet, "no live line per second");
  cmd->callback([flags] {
    if (int rc = run(*flags); rc != 0)
      throw CLI::RuntimeError(rc);
  });
}

} // namespace troupe::app
