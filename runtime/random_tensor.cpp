// random_tensor: fills tensors of every computable dtype.
#include "runtime/random_tensor.hpp"

namespace troupe {

tensor random_tensor(dtype type, const shape& dims, std::mt19937_64& rng) {
  tensor t = tensor::empty(type, dims);
  const int64_t n = t.numel();
  std::uniform_real_distribution<float> real(-1.f, 1.f);
  std::uniform_int_distribution<int> small(0, 9);
  switch (type) {
    case dtype::f32: for (auto& v : t.values<float>()) v = real(rng); break;
    case dtype::f64: for (auto& v : t.values<double>()) v = real(rng); break;
    case dtype::i64: for (auto& v : t.values<int64_t>()) v = small(rng); break;
    case dtype::i32: for (auto& v : t.values<int32_t>()) v = small(rng); break;
    case dtype::boolean: for (auto& v : t.values<bool>()) v = small(rng) < 5; break;
    default:
      for (int64_t i = 0; i < n * static_cast<int64_t>(size_of(type)); ++i)
        static_cast<uint8_t*>(t.raw())[i] = static_cast<uint8_t>(small(rng));
  }
  return t;
}

shape concrete_dims(const value_info& info, int64_t batch) {
  shape d = info.dims;
  for (size_t i = 0; i < d.size(); ++i)
    if (d[i] < 0)
      d[i] = i == 0 ? batch : 1;
  return d;
}

} // namespace troupe
