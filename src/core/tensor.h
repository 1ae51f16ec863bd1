// A typed, shaped view of memory that may live on the host or on a device. Storage is kept
// alive by `owner` (an allocation, or the mmap of a weights file); views share it.
#pragma once
#include <array>
#include <cstdint>
#include <initializer_list>
#include <memory>
#include <string>

#include "core/dtype.h"
#include "core/error.h"

namespace ferrum {

enum class Device : uint8_t { CPU, CUDA };

struct Tensor {
  void* data = nullptr;
  DType dtype = DType::F32;
  Device device = Device::CPU;
  int ndim = 0;
  std::array<int64_t, 4> shape{};
  std::shared_ptr<void> owner;

  int64_t dim(int i) const { return shape[i < 0 ? ndim + i : i]; }
  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  size_t nbytes() const { return static_cast<size_t>(numel()) * dtype_size(dtype); }
  int64_t cols() const { return ndim ? shape[ndim - 1] : 1; }
  int64_t rows() const { return ndim ? numel() / cols() : 1; }
  bool empty() const { return data == nullptr; }

  template <typename T>
  T* ptr() const { return static_cast<T*>(data); }

  // The same storage seen with another shape (same element count).
  Tensor view(std::initializer_list<int64_t> new_shape) const;
  // Rows [begin, begin + count) along the first dimension.
  Tensor slice_rows(int64_t begin, int64_t count) const;
  std::string shape_str() const;
};

}  // namespace ferrum
