#include "models/workspace.h"

#include <algorithm>
#include <cstring>

namespace ferrum {

Tensor Workspace::get(size_t slot, std::initializer_list<int64_t> shape, DType dtype) {
  if (buffers_.size() <= slot) buffers_.resize(slot + 1);
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  const int64_t bytes = std::max<int64_t>(1, n) * static_cast<int64_t>(dtype_size(dtype));
  Tensor& buf = buffers_[slot];
  if (buf.empty() || static_cast<int64_t>(buf.nbytes()) < bytes) {
    buf = backend_.alloc({bytes + bytes / 4}, DType::U8);  // 25% headroom against regrowth
    ++generation_;
  }
  Tensor t = buf;
  t.dtype = dtype;
  t.ndim = static_cast<int>(shape.size());
  int i = 0;
  for (int64_t d : shape) t.shape[i++] = d;
  return t;
}

Tensor Workspace::upload_i32(size_t slot, const std::vector<int32_t>& values) {
  Tensor t = get(slot, {static_cast<int64_t>(values.size())}, DType::I32);
  const size_t bytes = values.size() * sizeof(int32_t);
  if (bytes) backend_.copy_from_host(t, stage(values.data(), bytes), bytes);
  return t;
}

const void* Workspace::stage(const void* data, size_t bytes) {
  const size_t offset = (staged_ + 255) / 256 * 256;
  Tensor& buf = staging_[half_];
  if (buf.nbytes() < offset + bytes) {
    if (!buf.empty()) backend_.synchronize();  // copies queued from it must finish first
    buf = backend_.alloc_host({static_cast<int64_t>(std::max<size_t>(2 * (offset + bytes), 1 << 16))}, DType::U8);
  }
  auto* dst = static_cast<uint8_t*>(buf.data) + offset;
  std::memcpy(dst, data, bytes);
  staged_ = offset + bytes;
  return dst;
}

}  // namespace ferrum
