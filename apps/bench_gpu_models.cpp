// bench_gpu_models: throughput and latency of the GPU backend (gpu_session) per model, precision
// and batch size, host tensors in and out and with the tensors already on the GPU, printed as a
// markdown table for tools/gpu-check.sh (tools/gpu_ratios.py sets PyTorch's next to it).
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>

#include "apps/gpu_session_timing.hpp"
#include "kernels/gpu_devices.hpp"
#include "runtime/gpu_session.hpp"
#include "runtime/onnx_import.hpp"
#include "runtime/random_tensor.hpp"

using namespace troupe;

namespace {

/// Times every batch size of `batches` on `s` (host to host, then on device) and prints a row
/// each; returns the failures.
int time_rows(gpu_session& s, const std::string& label, const std::string& precision,
              const std::vector<int64_t>& batches, double seconds, int device,
              std::mt19937_64& rng) {
  int failures = 0;
  const auto& first = s.inputs().at(0);
  const bool dynamic_batch = !first.dims.empty() && first.dims[0] < 0;
  for (int64_t batch : batches) {
    const int64_t b = dynamic_batch ? batch : (first.dims.empty() ? 1 : first.dims[0]);
    std::vector<tensor> inputs, device_inputs;
    for (const auto& in : s.inputs())
      inputs.push_back(random_tensor(in.type, concrete_dims(in, b), rng));
    auto m = time_gpu_session(s, inputs, b, seconds);
    expected<gpu_session_rate> on_device = make_error(errc::internal, "not run");
    if (m) {
      for (const auto& t : inputs) {
        auto uploaded = gpu_session::to_gpu(t, device);
        if (!uploaded) {
          on_device = uploaded.error();
          break;
        }
        device_inputs.push_back(std::move(*uploaded));
      }
      if (device_inputs.size() == inputs.size()) {
        s.set_device_outputs(true);
        on_device = time_gpu_session(s, device_inputs, b, seconds);
        s.set_device_outputs(false);
      }
    }
    if (!m || !on_device) {
      std::printf("| %s | %s | %lld | error: %s | | | |\n", label.c_str(), precision.c_str(),
                  static_cast<long long>(b),
                  (m ? on_device.error() : m.error()).to_string().c_str());
      ++failures;
    } else {
      std::printf("| %s | %s | %lld | %.0f | %.3f | %.0f | %.3f |\n", label.c_str(),
                  precision.c_str(), static_cast<long long>(b), m->items_per_second, m->mean_ms,
                  on_device->items_per_second, on_device->mean_ms);
    }
    std::fflush(stdout);
    if (!dynamic_batch)
      break;
  }
  return failures;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"GPU backend throughput per model, precision and batch size"};
  const char* env_dir = std::getenv("TROUPE_GPU_MODELS_DIR");
  std::string dir = env_dir ? env_dir : "build/models";
  std::vector<std::string> models{"seed_cnn", "resnet18", "resnet50", "bert_encoder"};
  std::vector<std::string> precisions{"fp32", "fp16", "bf16"};
  std::vector<int64_t> batches{1, 8, 32, 128, 256};
  double seconds = 0.3;
  int device = 0;
  app.add_option("--models-dir", dir, "folder of exported <model>.onnx (default "
                 "$TROUPE_GPU_MODELS_DIR, else build/models)");
  app.add_option("--models", models, "models to run (missing files are skipped)");
  app.add_option("--precision", precisions, "fp32, tf32, fp16, bf16");
  app.add_option("--batch", batches, "batch sizes (models with a fixed batch run only theirs)");
  app.add_option("--seconds", seconds, "measuring time per row");
  app.add_option("--device", device, "CUDA device index");
  CLI11_PARSE(app, argc, argv);

  auto gpus = list_gpus();
  if (!gpus || gpus->empty()) {
    std::printf("bench_gpu_models: skipped, %s\n",
                gpus ? "no GPU" : gpus.error().message().c_str());
    return 77;
  }
  std::printf("\nGPU backend (gpu_session: pinned H2D, plan or CUDA graph, D2H; on device: the "
              "input already on the GPU, the output left there) on %s\n\n",
              (*gpus)[static_cast<size_t>(device) < gpus->size() ? static_cast<size_t>(device) : 0]
                  .name.c_str());
  std::printf("| model | precision | batch | items/s | ms/batch | items/s on device | "
              "ms/batch on device |\n|---|---|---:|---:|---:|---:|---:|\n");
  std::mt19937_64 rng{std::random_device{}()};
  int failures = 0;
  for (const auto& model : models) {
    const auto path = std::filesystem::path(dir) / (model + ".onnx");
    if (!std::filesystem::exists(path)) {
      std::printf("| %s | - | - | missing %s | | | |\n", model.c_str(), path.string().c_str());
      continue;
    }
    // Parsed once: every session of the model starts from this graph.
    auto g = load_onnx(path.string());
    if (!g) {
      std::printf("| %s | - | - | error: %s | | | |\n", model.c_str(),
                  g.error().to_string().c_str());
      ++failures;
      continue;
    }
    // Convolutional models also run channels-last (NHWC) at 16-bit precisions, where cuDNN's
    // tensor-core kernels want that layout; their rows say "(NHWC)".
    const bool has_conv = std::any_of(g->nodes.begin(), g->nodes.end(),
                                      [](const node& n) { return n.op_type == "Conv"; });
    for (const auto& name : precisions) {
      auto precision = parse_precision(name);
      if (!precision) {
        std::fprintf(stderr, "bench_gpu_models: %s\n", precision.error().to_string().c_str());
        return 2;
      }
      const bool sixteen = *precision == gpu_precision::fp16 || *precision == gpu_precision::bf16;
      for (bool nhwc : {false, true}) {
        if (nhwc && !(has_conv && sixteen))
          continue;
        const std::string label = nhwc ? model + " (NHWC)" : model;
        gpu_session_options options;
        options.device = device;
        options.precision = *precision;
        options.max_cached_plans = batches.size() + 1;
        options.channels_last = nhwc;
        auto s = gpu_session::from_graph(*g, options);
        if (!s) {
          std::printf("| %s | %s | - | error: %s | | | |\n", label.c_str(), name.c_str(),
                      s.error().to_string().c_str());
          ++failures;
          continue;
        }
        failures += time_rows(**s, label, name, batches, seconds, device, rng);
      }
    }
  }
  return failures == 0 ? 0 : 1;
}
