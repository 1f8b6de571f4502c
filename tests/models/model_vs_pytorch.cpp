// model_vs_pytorch: runs an exported reference model on PyTorch's input and compares outputs.
//
// Usage: model_vs_pytorch DIR NAME [MAX_RELATIVE_ERROR]
// DIR holds NAME.onnx, NAME.input.npy and NAME.output.npy written by tools/export_models.py
// (fresh random inputs each export). Checks ‖out − ref‖ / ‖ref‖ for the optimized session
// (passes + blocked layouts), the unoptimized one, and row 0 run alone at batch 1.
#include <cstdio>
#include <string>

#include "runtime/npy.hpp"
#include "runtime/session.hpp"

using namespace troupe;

namespace {

bool check(const char* what, const tensor& out, const tensor& ref, double limit) {
  if (out.dims() != ref.dims()) {
    std::printf("FAIL %s: shape %s != %s\n", what, to_string(out.dims()).c_str(), to_string(ref.dims()).c_str());
    return false;
  }
  const double err = relative_error(out, ref);
  const bool ok = err <= limit;
  std::printf("%s %s: relative error %.3g (limit %.1g)\n", ok ? "ok  " : "FAIL", what, err, limit);
  return ok;
}

} // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s DIR NAME [MAX_RELATIVE_ERROR]\n", argv[0]);
    return 2;
  }
  const std::string base = std::string(argv[1]) + "/" + argv[2];
  const double limit = argc > 3 ? std::stod(argv[3]) : 1e-4;
  auto input = load_npy(base + ".input.npy");
  auto ref = load_npy(base + ".output.npy");
  if (!input || !ref) {
    std::fprintf(stderr, "error: %s (run tools/export-test-models.sh)\n",
                 (!input ? input.error() : ref.error()).to_string().c_str());
    return 1;
  }
  bool ok = true;
  for (bool optimize : {true, false}) {
    session_options options;
    options.optimize = optimize;
    options.allow_blocked = optimize;
    auto s = session::open(base + ".onnx", options);
    if (!s) {
      std::printf("FAIL load: %s\n", s.error().to_string().c_str());
      return 1;
    }
    std::vector<tensor> in{*input};
    auto out = (*s)->run(in);
    if (!out) {
      std::printf("FAIL run: %s\n", out.error().to_string().c_str());
      return 1;
    }
    ok = check(optimize ? "optimized batch" : "unoptimized batch", (*out)[0], *ref, limit) && ok;
    if (optimize && input->dim(0) > 1) {
      std::vector<tensor> row{input->slice_rows(0, 1).clone()};
      auto one = (*s)->run(row);
      if (!one) {
        std::printf("FAIL run batch 1: %s\n", one.error().to_string().c_str());
        return 1;
      }
      ok = check("row 0 alone", (*one)[0], ref->slice_rows(0, 1).clone(), limit) && ok;
    }
  }
  return ok ? 0 : 1;
}
