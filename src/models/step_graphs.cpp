#include "models/step_graphs.h"

#include "core/log.h"

namespace ferrum {

void StepGraphs::record(Backend& be, int32_t tokens, int32_t width, const Epoch& epoch,
                        const std::function<void()>& body) {
  if (!(epoch == epoch_)) {
    graphs_.clear();
    seen_.clear();
    epoch_ = epoch;
  }
  const Key key{tokens, width};
  if (graphs_.count(key)) return;
  be.begin_capture();
  try {
    body();
  } catch (...) {
    be.abort_capture();
    throw;
  }
  graphs_[key] = be.end_capture();
  seen_.insert(key);
}

void StepGraphs::run(Backend& be, int32_t tokens, int32_t width, const Epoch& epoch,
                     const std::function<void()>& body) {
  if (!(epoch == epoch_)) {
    if (!graphs_.empty())
      log::info("{} decode graphs dropped: a buffer they use was reallocated (they are recorded again as steps come)",
                graphs_.size());
    graphs_.clear();
    seen_.clear();  // shapes run eagerly first again: a new cache may need other scratch sizes
    epoch_ = epoch;
  }
  const Key key{tokens, width};
  if (auto it = graphs_.find(key); it != graphs_.end()) return be.replay(it->second);
  if (seen_.insert(key).second) return body();  // first time: eagerly, sizing the buffers
  be.begin_capture();
  try {
    body();
  } catch (...) {
    be.abort_capture();
    seen_.erase(key);  // next time eagerly again, not another doomed capture
    throw;
  }
  be.replay(graphs_[key] = be.end_capture());
}

void StepGraphs::clear() {
  graphs_.clear();
  seen_.clear();
}

}  // namespace ferrum
