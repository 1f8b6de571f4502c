// packed_weights: the per-session cache of reordered constant weights.
#include "kernels/cpu/packed_weights.hpp"

#include <algorithm>

namespace troupe::cpu {

namespace {

dnnl::memory reorder_now(const tensor& source, const dnnl::memory::desc& user_md,
                         const dnnl::memory::desc& packed_md, cpu_context& cpu) {
  dnnl::memory user(user_md, cpu.engine(), source.raw());
  dnnl::memory packed(packed_md, cpu.engine());
  dnnl::reorder(user, packed).execute(cpu.stream(), user, packed);
  cpu.stream().wait();
  return packed;
}

} // namespace

dnnl::memory packed_weights::get(const tensor& source, const dnnl::memory::desc& user_md,
                                 const dnnl::memory::desc& packed_md, cpu_context& cpu) {
  std::erase_if(entries_, [](const entry& e) { return e.owner.expired(); });
  for (const auto& e : entries_)
    if (e.data == source.raw() && e.layout == packed_md && e.owner.lock() == source.buffer())
      return e.packed;
  auto packed = reorder_now(source, user_md, packed_md, cpu);
  entries_.push_back(entry{source.buffer(), source.raw(), packed_md, packed});
  return packed;
}

size_t packed_weights::bytes() const {
  size_t total = 0;
  for (const auto& e : entries_)
    total += e.layout.get_size();
  return total;
}

dnnl::memory pack_weights(packed_weights* cache, const tensor& source,
                          const dnnl::memory::desc& user_md, const dnnl::memory::desc& packed_md,
                          cpu_context& cpu) {
  return cache ? cache->get(source, user_md, packed_md, cpu)
               : reorder_now(source, user_md, packed_md, cpu);
}

} // namespace troupe::cpu
