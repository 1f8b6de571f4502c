// onnx_conformance: runs ONNX's backend test cases (Debian's libonnx-testdata) through troupe.
//
// Usage: onnx_conformance [--skip FILE] [--filter SUBSTRING] [--verbose] DIR...
// Each case is DIR/<case>/model.onnx with test_data_set_*/input_*.pb and output_*.pb.
// A case whose model troupe cannot run for a documented reason (errc::unsupported) counts
// as unsupported; every other case must match the shipped outputs at the suite's tolerances
// (rtol 1e-3, atol 1e-7) or be listed in the skip file with a reason.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/onnx_import.hpp"
#include "runtime/session.hpp"

namespace fs = std::filesystem;
using namespace troupe;

namespace {

constexpr double rtol = 1e-3;
constexpr double atol = 1e-7;

enum class outcome { passed, failed, unsupported, skipped };

std::map<std::string, std::string> read_skip_list(const std::string& path) {
  std::map<std::string, std::string> skips;
  std::ifstream in(path);
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == '#')
      continue;
    std::istringstream fields(line);
    std::string name, reason;
    fields >> name;
    std::getline(fields, reason);
    skips[name] = reason;
  }
  return skips;
}

template <class T>
double as_double(const tensor& t, int64_t i) {
  return static_cast<double>(t.data<T>()[i]);
}

double element(const tensor& t, int64_t i) {
  switch (t.type()) {
    case dtype::f32: return as_double<float>(t, i);
    case dtype::f64: return as_double<double>(t, i);
    case dtype::i8: return as_double<int8_t>(t, i);
    case dtype::i16: return as_double<int16_t>(t, i);
    case dtype::i32: return as_double<int32_t>(t, i);
    case dtype::i64: return as_double<int64_t>(t, i);
    case dtype::u8: return as_double<uint8_t>(t, i);
    case dtype::u16: return as_double<uint16_t>(t, i);
    case dtype::u32: return as_double<uint32_t>(t, i);
    case dtype::u64: return as_double<uint64_t>(t, i);
    case dtype::boolean: return t.data<bool>()[i] ? 1.0 : 0.0;
    default: return std::nan("");
  }
}

/// Empty when `out` matches `ref`, else what differs.
std::string compare(const tensor& out, const tensor& ref) {
  if (out.type() != ref.type())
    return "dtype " + std::string(to_string(out.type())) + " != " + std::string(to_string(ref.type()));
  if (out.dims() != ref.dims())
    return "shape " + to_string(out.dims()) + " != " + to_string(ref.dims());
  if (ref.type() == dtype::f16 || ref.type() == dtype::bf16 || ref.type() == dtype::string)
    return bitwise_equal(out, ref) ? "" : "16-bit values differ";
  const bool exact = !is_floating(ref.type());
  for (int64_t i = 0; i < ref.numel(); ++i) {
    const double o = element(out, i), r = element(ref, i);
    if (std::isnan(r) && std::isnan(o))
      continue;
    if (std::isinf(r) && o == r)
      continue;
    if (exact ? o != r : !(std::abs(o - r) <= atol + rtol * std::abs(r))) {
      std::ostringstream s;
      s << "element " << i << ": " << o << " != " << r;
      return s.str();
    }
  }
  return {};
}

std::vector<fs::path> sorted_files(const fs::path& dir, const std::string& prefix) {
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().filename().string().rfind(prefix, 0) == 0)
      files.push_back(e.path());
  // input_10.pb sorts after input_9.pb
  std::sort(files.begin(), files.end(), [&](const fs::path& a, const fs::path& b) {
    auto num = [&](const fs::path& p) {
      return std::stoi(p.stem().string().substr(prefix.size()));
    };
    return num(a) < num(b);
  });
  return files;
}

outcome run_case(const fs::path& dir, std::string& why) {
  session_options options;
  options.limits.threads = 1;
  auto s = session::open((dir / "model.onnx").string(), options);
  if (!s) {
    why = s.error().to_string();
    return s.error().code() == errc::unsupported ? outcome::unsupported : outcome::failed;
  }
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0)
      sets.push_back(e.path());
  std::sort(sets.begin(), sets.end());
  if (sets.empty()) {
    why = "no test data";
    return outcome::unsupported;
  }
  for (const auto& set : sets) {
    std::vector<tensor> inputs, refs;
    for (const auto& f : sorted_files(set, "input_")) {
      auto t = load_tensor_pb(f.string());
      if (!t) {
        why = t.error().to_string();
        return t.error().code() == errc::unsupported ? outcome::unsupported : outcome::failed;
      }
      inputs.push_back(std::move(*t));
    }
    for (const auto& f : sorted_files(set, "output_")) {
      auto t = load_tensor_pb(f.string());
      if (!t) {
        why = t.error().to_string();
        return t.error().code() == errc::unsupported ? outcome::unsupported : outcome::failed;
      }
      refs.push_back(std::move(*t));
    }
    auto outs = (*s)->run(inputs);
    if (!outs) {
      why = outs.error().to_string();
      return outs.error().code() == errc::unsupported ? outcome::unsupported : outcome::failed;
    }
    if (outs->size() != refs.size()) {
      why = "produced " + std::to_string(outs->size()) + " outputs, expected " + std::to_string(refs.size());
      return outcome::failed;
    }
    for (size_t i = 0; i < refs.size(); ++i)
      if (auto diff = compare((*outs)[i], refs[i]); !diff.empty()) {
        why = set.filename().string() + " output " + std::to_string(i) + ": " + diff;
        return outcome::failed;
      }
  }
  return outcome::passed;
}

} // namespace

int main(int argc, char** argv) {
  std::string skip_file, filter;
  bool verbose = false;
  std::vector<fs::path> roots;
  for (int i = 1; i < argc; ++i) {
    std::string arg = argv[i];
    if (arg == "--skip" && i + 1 < argc)
      skip_file = argv[++i];
    else if (arg == "--filter" && i + 1 < argc)
      filter = argv[++i];
    else if (arg == "--verbose")
      verbose = true;
    else
      roots.emplace_back(arg);
  }
  const auto skips = skip_file.empty() ? std::map<std::string, std::string>{} : read_skip_list(skip_file);
  int counts[4] = {0, 0, 0, 0};
  for (const auto& root : roots) {
    if (!fs::is_directory(root)) {
      std::fprintf(stderr, "conformance: %s is not a directory (is libonnx-testdata installed?)\n",
                   root.c_str());
      return 2;
    }
    std::vector<fs::path> cases;
    for (const auto& e : fs::directory_iterator(root))
      if (fs::exists(e.path() / "model.onnx"))
        cases.push_back(e.path());
    std::sort(cases.begin(), cases.end());
    for (const auto& dir : cases) {
      const std::string name = dir.filename().string();
      if (!filter.empty() && name.find(filter) == std::string::npos)
        continue;
      std::string why;
      outcome o = skips.count(name) ? outcome::skipped : run_case(dir, why);
      ++counts[static_cast<int>(o)];
      if (o == outcome::failed)
        std::printf("FAIL %s/%s: %s\n", root.filename().c_str(), name.c_str(), why.c_str());
      else if (verbose && o == outcome::unsupported)
        std::printf("UNSUPPORTED %s: %s\n", name.c_str(), why.c_str());
      std::fflush(stdout);
    }
  }
  std::printf("conformance: %d passed, %d failed, %d unsupported, %d skipped\n", counts[0],
              counts[1], counts[2], counts[3]);
  return counts[1] == 0 ? 0 : 1;
}
