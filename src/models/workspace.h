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
  // Grows buffer `slot` to at least `bytes` now (so that a later step does not reallocate it).
  void reserve(size_t slot, size_t bytes) { get(slot, {static_cast<int64_t>(bytes)}, DType::U8); }
  // An I32 tensor holding `values`, in buffer `slot`. The copy is queued from pinned staging,
  // so it never waits for the device.
  Tensor upload_i32(size_t slot, const std::vector<int32_t>& values);
  // Starts a step's uploads. Staging alternates between two halves, so a step's inputs are
  // written while the step before (whose copies may still be queued) keeps its own; a third
  // step starts only once the first has been waited for.
  void begin_step() {
    half_ ^= 1;
    staged_ = 0;
  }
  // Changes whenever a buffer is (re)allocated: graphs recorded before hold stale addresses.
  uint64_t generation() const { return generation_; }

 private:
  Backend& backend_;
  const void* stage(const void* data, size_t bytes);  // a copy of data in this step's staging

  std::vector<Tensor> buffers_;
  uint64_t generation_ = 0;
  Tensor staging_[2];
  int half_ = 0;
  size_t staged_ = 0;  // bytes of staging_[half_] used in this step
};

}  // namespace ferrum
