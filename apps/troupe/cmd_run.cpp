// troupe run: runs a model once on inputs from .npy files or random, prints a summary.
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <map>

#include "apps/troupe/commands.hpp"
#include "runtime/npy.hpp"
#include "runtime/random_tensor.hpp"
#include "runtime/session.hpp"

namespace troupe::app {
namespace {

struct run_flags {
  std::string model;
  std::vector<std::string> inputs; // name=file.npy, or file.npy in input order
  std::string output_dir;
  int64_t batch = 1;
  uint64_t seed = 0;
  backend_flags backend;
};

void print_summary(const value_info& info, const tensor& t) {
  std::printf("%s: %s %s", info.name.c_str(), std::string(to_string(t.type())).c_str(),
              to_string(t.dims()).c_str());
  if (t.type() == dtype::f32 && t.numel() > 0) {
    auto v = t.values<float>();
    float lo = v[0], hi = v[0];
    double sum = 0;
    for (float x : v) {
      lo = std::min(lo, x);
      hi = std::max(hi, x);
      sum += x;
    }
    std::printf("  min %.6g  max %.6g  mean %.6g  first [", lo, hi, sum / static_cast<double>(v.size()));
    for (size_t i = 0; i < std::min<size_t>(v.size(), 6); ++i)
      std::printf("%s%.6g", i ? ", " : "", v[i]);
    std::printf("%s]", v.size() > 6 ? ", ..." : "");
  }
  std::printf("\n");
}

int run(const run_flags& f) {
  session_options options;
  options.limits = f.backend.limits();
  auto s = session::open(f.model, options);
  if (!s) {
    std::fprintf(stderr, "error: %s\n", s.error().to_string().c_str());
    return 1;
  }
  const auto& declared = (*s)->inputs();
  std::map<std::string, std::string> files;
  for (size_t i = 0; i < f.inputs.size(); ++i) {
    const auto& spec = f.inputs[i];
    auto eq = spec.find('=');
    if (eq != std::string::npos)
      files[spec.substr(0, eq)] = spec.substr(eq + 1);
    else if (i < declared.size())
      files[declared[i].name] = spec;
  }
  std::mt19937_64 rng(f.seed);
  std::vector<tensor> inputs;
  for (const auto& in : declared) {
    auto it = files.find(in.name);
    if (it == files.end()) {
      inputs.push_back(random_tensor(in.type, concrete_dims(in, f.batch), rng));
      continue;
    }
    auto t = load_npy(it->second);
    if (!t) {
      std::fprintf(stderr, "error: input '%s': %s\n", in.name.c_str(), t.error().to_string().c_str());
      return 1;
    }
    inputs.push_back(std::move(*t));
  }
  const auto start = std::chrono::steady_clock::now();
  auto outs = (*s)->run(inputs);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  if (!outs) {
    std::fprintf(stderr, "error: %s\n", outs.error().to_string().c_str());
    return 1;
  }
  for (size_t i = 0; i < inputs.size(); ++i)
    print_summary(declared[i], inputs[i]);
  std::printf("-> %.3f ms (first run, includes plan compilation for new shapes)\n", ms);
  for (size_t i = 0; i < outs->size(); ++i) {
    print_summary((*s)->outputs()[i], (*outs)[i]);
    if (!f.output_dir.empty()) {
      std::filesystem::create_directories(f.output_dir);
      auto path = (std::filesystem::path(f.output_dir) / ((*s)->outputs()[i].name + ".npy")).string();
      if (auto st = save_npy(path, (*outs)[i]); !st.is_ok()) {
        std::fprintf(stderr, "error: %s\n", st.to_string().c_str());
        return 1;
      }
      std::printf("   written to %s\n", path.c_str());
    }
  }
  return 0;
}

} // namespace

void add_run_command(CLI::App& app) {
  auto flags = std::make_shared<run_flags>();
  auto* cmd = app.add_subcommand("run", "run an ONNX model once and print its outputs");
  cmd->add_option("model", flags->model, "model.onnx")->required()->check(CLI::ExistingFile);
  cmd->add_option("--input,-i", flags->inputs, "input as NAME=FILE.npy (or FILE.npy in order); random when absent");
  cmd->add_option("--output-dir,-o", flags->output_dir, "write each output to DIR/<name>.npy");
  cmd->add_option("--batch", flags->batch, "batch size for random inputs")->check(CLI::Range(1, 1 << 20));
  cmd->add_option("--seed", flags->seed, "seed of the random inputs");
  flags->backend.add_to(*cmd);
  cmd->callback([flags] {
    if (int rc = run(*flags); rc != 0)
      throw CLI::RuntimeError(rc);
  });
}

} // namespace troupe::app
