#include "core/tensor.h"

namespace ferrum {

Tensor Tensor::view(std::initializer_list<int64_t> new_shape) const {
  Tensor t = *this;
  FERRUM_CHECK(new_shape.size() <= 4, "tensor view: at most 4 dimensions");
  t.ndim = static_cast<int>(new_shape.size());
  int i = 0;
  int64_t n = 1;
  for (int64_t d : new_shape) n *= (t.shape[i++] = d);
  FERRUM_CHECK(n == numel(), "tensor view {} -> {} elements: sizes differ", shape_str(), n);
  return t;
}

Tensor Tensor::slice_rows(int64_t begin, int64_t count) const {
  FERRUM_CHECK(ndim >= 1 && begin >= 0 && begin + count <= shape[0], "slice_rows out of range");
  Tensor t = *this;
  const int64_t row_elems = numel() / shape[0];
  t.data = static_cast<char*>(data) + begin * row_elems * static_cast<int64_t>(dtype_size(dtype));
  t.shape[0] = count;
  return t;
}

std::string Tensor::shape_str() const {
  std::string s = "[";
  for (int i = 0; i < ndim; ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace ferrum
