// packed_weights: constant weights reordered once per session into the layouts oneDNN asks for,
// shared by every plan (one per batch size) that wants the same layout of the same weights.
#pragma once

#include <memory>
#include <vector>

#include <oneapi/dnnl/dnnl.hpp>

#include "kernels/cpu/cpu_context.hpp"
#include "kernels/tensor.hpp"

namespace troupe::cpu {

/// Without sharing, every plan of a session holds its own packed copy of every weight: a
/// ResNet-18 served at 8 batch sizes kept 8 × 45 MB. Not thread-safe (one per session).
class packed_weights {
public:
  /// `source` (a constant, plain row-major as `user_md` describes) in the `packed_md` layout,
  /// reordered now on first request and shared afterwards. An entry holds a weak reference
  /// to the source's storage, so a freed buffer whose address is reused never matches.
  dnnl::memory get(const tensor& source, const dnnl::memory::desc& user_md,
                   const dnnl::memory::desc& packed_md, cpu_context& cpu);

  size_t entries() const { return entries_.size(); }
  size_t bytes() const;

private:
  struct entry {
    std::weak_ptr<storage> owner;
    const void* data = nullptr;
    dnnl::memory::desc layout;
    dnnl::memory packed;
  };
  std::vector<entry> entries_;
};

/// `source` reordered into `packed_md`: through `cache` when there is one, else a fresh copy.
dnnl::memory pack_weights(packed_weights* cache, const tensor& source,
                          const dnnl::memory::desc& user_md, const dnnl::memory::desc& packed_md,
                          cpu_context& cpu);

} // namespace troupe::cpu
