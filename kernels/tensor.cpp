// tensor: storage allocation, views and comparisons.
#include "kernels/tensor.hpp"

#include <cassert>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <new>

namespace troupe {

std::shared_ptr<storage> storage::allocate_host(size_t bytes) {
  constexpr size_t alignment = 64;
  size_t rounded = (std::max<size_t>(bytes, 1) + alignment - 1) / alignment * alignment;
  void* p = std::aligned_alloc(alignment, rounded);
  if (!p)
    throw std::bad_alloc{};
  return std::make_shared<storage>(p, bytes, device{}, [](void* q) { std::free(q); });
}

std::shared_ptr<storage> storage::borrow(void* data, size_t bytes, device where) {
  return std::make_shared<storage>(data, bytes, where, nullptr);
}

storage::storage(void* data, size_t bytes, device where, void (*release)(void*))
  : data_(data), bytes_(bytes), where_(where), release_(release) {}

storage::~storage() {
  if (release_)
    release_(data_);
}

tensor tensor::empty(dtype type, shape dims) {
  tensor t;
  t.type_ = type;
  t.dims_ = std::move(dims);
  t.buffer_ = storage::allocate_host(t.nbytes());
  return t;
}

tensor tensor::zeros(dtype type, shape dims) {
  tensor t = empty(type, std::move(dims));
  std::memset(t.raw(), 0, t.nbytes());
  return t;
}

tensor tensor::wrap(dtype type, shape dims, std::shared_ptr<storage> buffer, size_t offset) {
  tensor t;
  t.type_ = type;
  t.dims_ = std::move(dims);
  t.buffer_ = std::move(buffer);
  t.offset_ = offset;
  assert(!t.buffer_ || t.offset_ + t.nbytes() <= t.buffer_->bytes());
  return t;
}

tensor tensor::slice_rows(int64_t begin, int64_t end) const {
  assert(rank() >= 1 && 0 <= begin && begin <= end && end <= dims_[0]);
  shape d = dims_;
  d[0] = end - begin;
  const size_t row_bytes = dims_[0] == 0 ? 0 : nbytes() / static_cast<size_t>(dims_[0]);
  return wrap(type_, std::move(d), buffer_, offset_ + static_cast<size_t>(begin) * row_bytes);
}

tensor tensor::reshaped(shape dims) const {
  assert(numel_of(dims) == numel());
  return wrap(type_, std::move(dims), buffer_, offset_);
}

tensor tensor::clone() const {
  tensor t = empty(type_, dims_);
  if (nbytes())
    std::memcpy(t.raw(), raw(), nbytes());
  return t;
}

bool bitwise_equal(const tensor& a, const tensor& b) {
  return a.type() == b.type() && a.dims() == b.dims() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

double relative_error(const tensor& out, const tensor& ref) {
  assert(out.type() == dtype::f32 && ref.type() == dtype::f32 && out.numel() == ref.numel());
  double diff = 0, norm = 0;
  const float* o = out.data<float>();
  const float* r = ref.data<float>();
  for (int64_t i = 0; i < ref.numel(); ++i) {
    double d = static_cast<double>(o[i]) - r[i];
    diff += d * d;
    norm += static_cast<double>(r[i]) * r[i];
  }
  if (norm == 0)
    return std::sqrt(diff);
  return std::sqrt(diff / norm);
}

} // namespace troupe
