// gemm_ceiling: one oneDNN matmul primitive timed in a loop.
#include "kernels/cpu/gemm_ceiling.hpp"

#include <algorithm>
#include <chrono>
#include <vector>

namespace troupe::cpu {

double measure_sgemm_gflops(cpu_context& ctx, int64_t n, double seconds) {
  using dnnl::memory;
  const memory::dims dims{n, n};
  memory::desc plain(dims, memory::data_type::f32, memory::format_tag::ab);
  memory::desc any(dims, memory::data_type::f32, memory::format_tag::any);
  dnnl::matmul::primitive_desc pd(dnnl::matmul::desc(plain, any, plain), ctx.engine());
  std::vector<float> a(static_cast<size_t>(n * n), 0.5f), c(static_cast<size_t>(n * n));
  memory a_mem(plain, ctx.engine(), a.data());
  memory b_mem(pd.weights_desc(), ctx.engine());
  memory c_mem(plain, ctx.engine(), c.data());
  std::fill_n(static_cast<float*>(b_mem.get_data_handle()), pd.weights_desc().get_size() / sizeof(float), 0.25f);
  dnnl::matmul mm(pd);
  auto once = [&] {
    const auto start = std::chrono::steady_clock::now();
    mm.execute(ctx.stream(), {{DNNL_ARG_SRC, a_mem}, {DNNL_ARG_WEIGHTS, b_mem}, {DNNL_ARG_DST, c_mem}});
    ctx.stream().wait();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  };
  once(); // warm-up: JIT and page faults
  double best = 1e30, total = 0;
  for (int i = 0; i < 3 || total < seconds; ++i) {
    const double t = once();
    best = std::min(best, t);
    total += t;
  }
  return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / best / 1e9;
}

} // namespace troupe::cpu
