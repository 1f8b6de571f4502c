// tensor: dtype, shape, device and a ref-counted buffer; views share the buffer.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>

#include "kernels/dtype.hpp"
#include "kernels/shape.hpp"

namespace troupe {

struct device {
  enum class kind : uint8_t { cpu, cuda };
  kind type = kind::cpu;
  int index = 0;
  friend bool operator==(const device&, const device&) = default;
};

/// A block of bytes owned by whoever allocated it; freed through `release` when the last
/// tensor referring to it goes away.
class storage {
public:
  /// 64-byte aligned host memory (what oneDNN's AVX-512 kernels like best).
  static std::shared_ptr<storage> allocate_host(size_t bytes);
  /// Memory someone else owns and keeps alive at least as long as the storage.
  static std::shared_ptr<storage> borrow(void* data, size_t bytes, device where = {});

  storage(void* data, size_t bytes, device where, void (*release)(void*));
  ~storage();
  storage(const storage&) = delete;
  storage& operator=(const storage&) = delete;

  void* data() const { return data_; }
  size_t bytes() const { return bytes_; }
  device where() const { return where_; }

private:
  void* data_;
  size_t bytes_;
  device where_;
  void (*release_)(void*);
};

/// A dense, row-major tensor. Copying a tensor shares its buffer; `clone` copies bytes.
class tensor {
public:
  tensor() = default;

  /// Uninitialized host tensor. Shapes must have been validated (checked_numel) before.
  static tensor empty(dtype type, shape dims);
  static tensor zeros(dtype type, shape dims);
  /// A tensor over existing storage, starting `offset` bytes into it.
  static tensor wrap(dtype type, shape dims, std::shared_ptr<storage> buffer, size_t offset = 0);
  /// Host tensor holding a copy of `values`.
  template <class T>
  static tensor from_vector(shape dims, std::span<const T> values) {
    tensor t = empty(dtype_of<T>(), std::move(dims));
    std::copy(values.begin(), values.end(), t.data<T>());
    return t;
  }
  template <class T>
  static tensor scalar(T value) {
    tensor t = empty(dtype_of<T>(), {});
    *t.data<T>() = value;
    return t;
  }

  bool defined() const { return type_ != dtype::undefined; }
  dtype type() const { return type_; }
  const shape& dims() const { return dims_; }
  int64_t rank() const { return static_cast<int64_t>(dims_.size()); }
  int64_t dim(int64_t i) const { return dims_[static_cast<size_t>(i < 0 ? i + rank() : i)]; }
  int64_t numel() const { return numel_of(dims_); }
  size_t nbytes() const { return static_cast<size_t>(numel()) * size_of(type_); }
  device where() const { return buffer_ ? buffer_->where() : device{}; }
  const std::shared_ptr<storage>& buffer() const { return buffer_; }
  size_t offset() const { return offset_; }

  void* raw() const { return buffer_ ? static_cast<std::byte*>(buffer_->data()) + offset_ : nullptr; }
  template <class T> T* data() const { return static_cast<T*>(raw()); }
  template <class T> std::span<T> values() const {
    return {data<T>(), static_cast<size_t>(numel())};
  }

  /// Rows [begin, end) of the first dimension, sharing the buffer.
  tensor slice_rows(int64_t begin, int64_t end) const;
  /// The same bytes seen with another shape of equal element count.
  tensor reshaped(shape dims) const;
  /// A deep copy into fresh host memory.
  tensor clone() const;

private:
  dtype type_ = dtype::undefined;
  shape dims_;
  std::shared_ptr<storage> buffer_;
  size_t offset_ = 0;
};

/// True when both tensors have equal dtype, shape and bytes.
bool bitwise_equal(const tensor& a, const tensor& b);

/// ‖a − b‖₂ / ‖b‖₂ over float32 tensors of equal shape (0 when both are zero).
double relative_error(const tensor& out, const tensor& ref);

} // namespace troupe
