// server_config: server.yaml parsing and the API key file.
#include "runtime/serve/server_config.hpp"

#include <cctype>
#include <charconv>
#include <fstream>
#include <limits>
#include <set>
#include <sstream>

#include <yaml-cpp/yaml.h>

namespace troupe::serve {

namespace {

struct config_error {
  status error;
};

class reader {
public:
  explicit reader(std::string file) : file_(std::move(file)) {}

  [[noreturn]] void fail(const YAML::Node& at, const std::string& key, const std::string& what) const {
    std::string where = file_;
    if (at.IsDefined() && at.Mark().line >= 0)
      where += fmt::format(":{}", at.Mark().line + 1);
    throw config_error{make_error(errc::invalid_argument, "{}: {}: {}", where, key, what)};
  }

  template <class F>
  void each(const YAML::Node& map, const std::string& path, const std::set<std::string>& allowed,
            F&& handle) const {
    if (map.IsNull())
      return;
    if (!map.IsMap())
      fail(map, path.empty() ? "(top level)" : path, "expected a map");
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (!it->first.IsScalar())
        fail(it->first, path, "expected scalar keys");
      const std::string name = it->first.Scalar();
      const std::string key = path.empty() ? name : path + "." + name;
      if (!allowed.count(name)) {
        std::string list;
        for (const auto& a : allowed)
          list += (list.empty() ? "" : ", ") + a;
        fail(it->first, key, "unknown key, expected one of " + list);
      }
      if (!seen.insert(name).second)
        fail(it->first, key, "key given twice");
      handle(name, it->second, key);
    }
  }

  /// A whole number in [lo, hi].
  uint64_t count(const YAML::Node& n, const std::string& key, uint64_t lo, uint64_t hi) const {
    if (!n.IsScalar())
      fail(n, key, "expected a number");
    const std::string& text = n.Scalar();
    uint64_t v = 0;
    auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), v);
    if (ec != std::errc{} || end != text.data() + text.size() || v < lo || v > hi)
      fail(n, key, fmt::format("expected a whole number from {} to {}, got '{}'", lo, hi, text));
    return v;
  }

  std::string text(const YAML::Node& n, const std::string& key) const {
    if (!n.IsScalar() || n.Scalar().empty())
      fail(n, key, "expected a non-empty string");
    return n.Scalar();
  }

private:
  std::string file_;
};

constexpr uint64_t max_u32 = std::numeric_limits<uint32_t>::max();

} // namespace

expected<server_config> parse_server_config(const std::string& yaml_text, const std::string& file,
                                            server_config base) {
  server_config c = std::move(base);
  reader r(file);
  try {
    const YAML::Node root = YAML::Load(yaml_text);
    r.each(root, "",
           {"model_repository", "http", "cpu_devices", "exit_timeout_s", "api_key_file",
            "max_json_depth", "max_pending_requests", "max_pending_bytes",
            "max_outstanding_per_bridge", "bridges"},
           [&](const std::string& name, const YAML::Node& v, const std::string& key) {
             if (name == "model_repository")
               c.model_repository = r.text(v, key);
             else if (name == "cpu_devices")
               c.cpu_devices = static_cast<int>(r.count(v, key, 1, 4096));
             else if (name == "exit_timeout_s")
               c.exit_timeout = std::chrono::seconds(r.count(v, key, 1, 3600));
             else if (name == "api_key_file")
               c.api_key_file = r.text(v, key);
             else if (name == "max_json_depth")
               c.max_json_depth = r.count(v, key, 4, 1024);
             else if (name == "max_pending_requests")
               c.max_pending_requests = r.count(v, key, 1, max_u32);
             else if (name == "max_pending_bytes")
               c.max_pending_bytes = r.count(v, key, 1, uint64_t{1} << 40);
             else if (name == "max_outstanding_per_bridge")
               c.max_outstanding_per_bridge = r.count(v, key, 1, 1 << 20);
             else if (name == "bridges")
               c.bridges = r.count(v, key, 1, 64);
             else if (name == "http")
               r.each(v, key,
                      {"port", "bind", "threads", "max_body_bytes", "max_header_bytes",
                       "max_chunks", "read_timeout_ms", "idle_timeout_ms", "write_timeout_ms",
                       "max_pipelined"},
                      [&](const std::string& h, const YAML::Node& hv, const std::string& hk) {
                        auto ms = [&] {
                          return std::chrono::milliseconds(r.count(hv, hk, 1, 3'600'000));
                        };
                        if (h == "port")
                          c.http.port = static_cast<uint16_t>(r.count(hv, hk, 0, 65535));
                        else if (h == "bind")
                          c.http.bind_address = r.text(hv, hk);
                        else if (h == "threads")
                          c.http.io_threads = r.count(hv, hk, 1, 256);
                        else if (h == "max_body_bytes")
                          c.http.max_body_bytes = r.count(hv, hk, 1024, uint64_t{4} << 30);
                        else if (h == "max_header_bytes")
                          c.http.max_header_bytes = r.count(hv, hk, 256, 1 << 20);
                        else if (h == "max_chunks")
                          c.http.max_chunks = r.count(hv, hk, 1, 1 << 20);
                        else if (h == "read_timeout_ms")
                          c.http.read_timeout = ms();
                        else if (h == "idle_timeout_ms")
                          c.http.idle_timeout = ms();
                        else if (h == "write_timeout_ms")
                          c.http.write_timeout = ms();
                        else if (h == "max_pipelined")
                          c.http.max_pipelined = r.count(hv, hk, 1, 4096);
                      });
           });
  } catch (const config_error& e) {
    return e.error;
  } catch (const YAML::Exception& e) {
    return make_error(errc::parse_error, "{}: {}", file, e.what());
  }
  return c;
}

expected<server_config> load_server_config(const std::filesystem::path& file, server_config base) {
  std::ifstream in(file);
  if (!in)
    return make_error(errc::not_found, "cannot read server config {}", file.string());
  std::stringstream text;
  text << in.rdbuf();
  return parse_server_config(text.str(), file.string(), std::move(base));
}

expected<std::string> read_api_key_file(const std::filesystem::path& file) {
  std::ifstream in(file);
  if (!in)
    return make_error(errc::not_found, "cannot read API key file {}", file.string());
  std::string line;
  std::getline(in, line);
  while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back())))
    line.pop_back();
  size_t start = 0;
  while (start < line.size() && std::isspace(static_cast<unsigned char>(line[start])))
    ++start;
  line.erase(0, start);
  if (line.empty())
    return make_error(errc::invalid_argument, "API key file {} is empty", file.string());
  return line;
}

} // namespace troupe::serve
