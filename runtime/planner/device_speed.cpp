// device_speed: calibration runs on a worker thread (so pinning does not stick to the caller).
#include "runtime/planner/device_speed.hpp"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>
#include <unistd.h>
#include <vector>

#include "kernels/cpu/gemm_ceiling.hpp"

namespace troupe::planner {

std::filesystem::path default_speed_cache() {
  std::filesystem::path base;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    base = xdg;
  else if (const char* home = std::getenv("HOME"); home && *home)
    base = std::filesystem::path(home) / ".cache";
  else
    base = std::filesystem::temp_directory_path();
  return base / "troupe" / "device_speed.txt";
}

std::string cpu_device_key(const cpu::cpu_limits& limits) {
  std::string model = "cpu";
  std::ifstream info("/proc/cpuinfo");
  for (std::string line; std::getline(info, line);)
    if (line.rfind("model name", 0) == 0) {
      model = line.substr(line.find(':') + 1);
      break;
    }
  std::string key;
  for (char c : model) // one token per key: spaces would split the cache line
    if (c != ' ' && c != '\t')
      key += c;
  key += "/threads=" + std::to_string(limits.threads);
  key += "/cores=";
  for (size_t i = 0; i < limits.cores.size(); ++i)
    key += (i ? "," : "") + std::to_string(limits.cores[i]);
  return key;
}

std::optional<measured_speed> read_cached_speed(const std::filesystem::path& file,
                                                const std::string& key) {
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) {
    std::istringstream fields(line);
    std::string k;
    measured_speed s;
    if (fields >> k >> s.gflops >> s.mem_gbps && k == key && s.gflops > 0 && s.mem_gbps > 0) {
      s.from_cache = true;
      return s;
    }
  }
  return std::nullopt;
}

status write_cached_speed(const std::filesystem::path& file, const std::string& key,
                          const measured_speed& speed) {
  std::vector<std::string> kept;
  {
    std::ifstream in(file);
    for (std::string line; std::getline(in, line);)
      if (line.rfind(key + " ", 0) != 0 && !line.empty())
        kept.push_back(line);
  }
  std::error_code ec;
  std::filesystem::create_directories(file.parent_path(), ec);
  // Write a sibling and rename, so a concurrent reader never sees half a file.
  const auto tmp = file.string() + ".tmp" + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::trunc);
    for (const auto& l : kept)
      out << l << '\n';
    out << key << ' ' << speed.gflops << ' ' << speed.mem_gbps << '\n';
    if (!out)
      return make_error(errc::unavailable, "cannot write the speed cache {}", tmp);
  }
  std::filesystem::rename(tmp, file, ec);
  if (ec)
    return make_error(errc::unavailable, "cannot write the speed cache {}: {}", file.string(),
                      ec.message());
  return status::ok();
}

namespace {

/// GB/s of a large memcpy (read + write counted), best of a few runs.
double measure_copy_gbps() {
  const size_t bytes = size_t{64} << 20;
  std::vector<char> a(bytes, 1), b(bytes, 0);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    std::memcpy(b.data(), a.data(), bytes);
    const double t = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::min(best, t);
    a[static_cast<size_t>(i)] = b[static_cast<size_t>(i) + 1]; // keep the copy observable
  }
  return 2.0 * static_cast<double>(bytes) / best / 1e9;
}

} // namespace

expected<measured_speed> cpu_device_speed(const cpu::cpu_limits& limits,
                                          const std::filesystem::path& cache, bool refresh) {
  const std::string key = cpu_device_key(limits);
  if (!refresh)
    if (auto cached = read_cached_speed(cache, key))
      return *cached;
  measured_speed speed;
  status failure;
  std::thread worker([&] {
    cpu::cpu_context ctx(limits);
    if (auto st = ctx.enter(); !st.is_ok()) {
      failure = st;
      return;
    }
    speed.gflops = cpu::measure_sgemm_gflops(ctx, 1024, 0.5);
    speed.mem_gbps = measure_copy_gbps();
  });
  worker.join();
  if (!failure.is_ok())
    return failure;
  // A cache that cannot be written costs a re-measurement next time, nothing more.
  (void)write_cached_speed(cache, key, speed);
  return speed;
}

} // namespace troupe::planner
