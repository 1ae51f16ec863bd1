// Decode steps recorded as backend graphs (CUDA graphs) and replayed: one launch instead of
// hundreds of kernel launches per step. A graph bakes in device addresses, so it is keyed by
// the step's shape and dropped whenever a buffer it uses may have moved.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <utility>

#include "backend/backend.h"

namespace ferrum {

class StepGraphs {
 public:
  // What the recorded addresses depend on: the KV cache, and the generations of the model's
  // workspace and of the backend's scratch buffers.
  struct Epoch {
    uint64_t cache_id = 0, workspace = 0, scratch = 0;
    bool operator==(const Epoch&) const = default;
  };

  // Runs `body` (which issues the step's ops) for a step of this shape: replays its graph if
  // one is recorded; records one if the shape ran before (so every buffer it needs already
  // exists and nothing allocates while recording); else runs it eagerly.
  void run(Backend& be, int32_t tokens, int32_t width, const Epoch& epoch, const std::function<void()>& body);
  // Records a step of this shape now, without running it (start-up: the buffers it needs are
  // already sized). Throws if the body cannot be recorded.
  void record(Backend& be, int32_t tokens, int32_t width, const Epoch& epoch, const std::function<void()>& body);
  void clear();

 private:
  using Key = std::pair<int32_t, int32_t>;  // (tokens, block-table width)
  std::map<Key, std::shared_ptr<void>> graphs_;
  std::set<Key> seen_;
  Epoch epoch_;
};

}  // namespace ferrum
