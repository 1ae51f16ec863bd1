// Activation buffers reused across forward passes: allocating fresh ones every step costs page
// faults on large buffers (the logits of a 150k vocabulary) in the decode hot path.
#pragma once
#include <vector>

#include "backend/backend.h"

namespace ferrum {

class Workspace {
 public:
  explicit Workspace(Backend& backend) : backend_(backend) {}
  // A tensor of `shape` backed by buffer `slot`, grown (never shrunk) when too small.
  Tensor get(size_t slot, std::initializer_list<int64_t> shape, DType dtype);
  // An I32 tensor holding `values`, in buffer `slot`.
  Tensor upload_i32(size_t slot, const std::vector<int32_t>& values);
  // Changes whenever a buffer is (re)allocated: graphs recorded before hold stale addresses.
  uint64_t generation() const { return generation_; }

 private:
  Backend& backend_;
  std::vector<Tensor> buffers_;
  uint64_t generation_ = 0;
};

}  // namespace ferrum
