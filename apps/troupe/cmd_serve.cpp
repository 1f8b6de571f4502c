// troupe serve: the KServe v2 HTTP server over a model repository, until SIGINT or SIGTERM.
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include <pthread.h>

#include "actors/http_frontend.hpp"
#include "apps/troupe/commands.hpp"

namespace troupe::app {
namespace {

struct serve_flags {
  std::string model_repository;
  std::string config_file;
  uint16_t http_port = 8000;
  std::string bind = "127.0.0.1";
  int cpu_devices = 1;
  int exit_timeout_s = 30;
  std::string api_key;
  std::string api_key_file;
  size_t http_threads = 1;
  CLI::App* cmd = nullptr;
  bool given(const char* name) const { return cmd->count(name) > 0; }
};

int serve(const serve_flags& f) {
  // Signals are taken by sigwait on this thread only: block them before any thread exists, so
  // every thread started from here on inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  serve::server_config config;
  if (!f.config_file.empty()) {
    auto loaded = serve::load_server_config(f.config_file);
    if (!loaded) {
      std::fprintf(stderr, "error: %s\n", loaded.error().to_string().c_str());
      return 1;
    }
    config = std::move(*loaded);
  }
  // Flags given on the command line win over the file.
  if (f.given("--model-repository"))
    config.model_repository = f.model_repository;
  if (f.given("--http-port"))
    config.http.port = f.http_port;
  if (f.given("--bind"))
    config.http.bind_address = f.bind;
  if (f.given("--cpu-devices"))
    config.cpu_devices = f.cpu_devices;
  if (f.given("--exit-timeout"))
    config.exit_timeout = std::chrono::seconds(f.exit_timeout_s);
  if (f.given("--http-threads"))
    config.http.io_threads = f.http_threads;
  if (f.given("--api-key-file"))
    config.api_key_file = f.api_key_file;
  if (f.given("--api-key"))
    config.api_key = f.api_key;
  else if (!config.api_key_file.empty()) {
    auto key = serve::read_api_key_file(config.api_key_file);
    if (!key) {
      std::fprintf(stderr, "error: %s\n", key.error().to_string().c_str());
      return 1;
    }
    config.api_key = *key;
  }
  if (config.model_repository.empty()) {
    std::fprintf(stderr, "error: --model-repository (or model_repository in --config) is required\n");
    return 1;
  }

  caf::actor_system_config cfg;
  add_troupe_types(cfg);
  cfg.set("logger.file-verbosity", caf::atom("quiet"));
  cfg.set("logger.console", caf::atom("none"));
  // One scheduler thread per core: more only add idle polling on a small machine.
  cfg.set("scheduler.max-threads",
          static_cast<size_t>(std::max(2u, std::thread::hardware_concurrency())));
  caf::actor_system sys{cfg};
  const auto exit_timeout = config.exit_timeout;
  auto frontend = http_frontend::start(sys, std::move(config));
  if (!frontend) {
    std::fprintf(stderr, "error: %s\n", message_of(frontend.error()).c_str());
    return 1;
  }
  std::printf("troupe serve: %zu model versions loaded; listening on http://%s:%u\n",
              (*frontend)->loaded_versions(), f.given("--bind") ? f.bind.c_str() : "127.0.0.1",
              static_cast<unsigned>((*frontend)->port()));
  std::fflush(stdout);

  int received = 0;
  sigwait(&signals, &received);
  std::printf("troupe serve: %s, stopping (at most %lld s)\n",
              received == SIGINT ? "SIGINT" : "SIGTERM", static_cast<long long>(exit_timeout.count()));
  std::fflush(stdout);
  // The stop is graceful but bounded: should anything hang past the exit timeout (a batch
  // that never ends), the process still exits, non-zero.
  std::mutex done_mutex;
  std::condition_variable done_cv;
  bool done = false;
  std::thread watchdog([&] {
    std::unique_lock lock(done_mutex);
    if (!done_cv.wait_for(lock, exit_timeout, [&] { return done; })) {
      std::fprintf(stderr, "troupe serve: not stopped after %lld s, exiting\n",
                   static_cast<long long>(exit_timeout.count()));
      std::_Exit(2);
    }
  });
  (*frontend)->stop();
  frontend->reset();
  {
    std::lock_guard lock(done_mutex);
    done = true;
  }
  done_cv.notify_all();
  watchdog.join();
  std::printf("troupe serve: stopped\n");
  std::fflush(stdout);
  return 0;
}

} // namespace

void add_serve_command(CLI::App& app) {
  auto flags = std::make_shared<serve_flags>();
  auto* cmd = app.add_subcommand("serve", "serve a model repository over HTTP (KServe v2)");
  flags->cmd = cmd;
  cmd->add_option("--model-repository", flags->model_repository,
                  "folder of <model>/config.yaml and <model>/<version>/model.onnx");
  cmd->add_option("--config", flags->config_file, "server.yaml (flags override its keys)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--http-port", flags->http_port, "port; 0 picks a free one (default 8000)");
  cmd->add_option("--bind", flags->bind, "address to listen on (default 127.0.0.1)");
  cmd->add_option("--cpu-devices", flags->cpu_devices, "CPU devices (disjoint core sets)")
      ->check(CLI::Range(1, 4096));
  cmd->add_option("--exit-timeout", flags->exit_timeout_s,
                  "seconds a SIGINT/SIGTERM stop may take (default 30)")
      ->check(CLI::Range(1, 3600));
  auto* key = cmd->add_option("--api-key", flags->api_key,
                              "key the repository endpoints require (Authorization: Bearer)");
  cmd->add_option("--api-key-file", flags->api_key_file, "file whose first line is the API key")
      ->check(CLI::ExistingFile)
      ->excludes(key);
  cmd->add_option("--http-threads", flags->http_threads, "HTTP I/O threads (default 1)")
      ->check(CLI::Range(1, 256));
  cmd->callback([flags] {
    if (int rc = serve(*flags); rc != 0)
      throw CLI::RuntimeError(rc);
  });
}

} // namespace troupe::app
