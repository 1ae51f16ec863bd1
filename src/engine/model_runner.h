// Turns a scheduler step into the flat batch a Model runs (token ids, positions, slot mapping,
// query starts, context lengths, block tables, logits rows) and owns the paged KV cache.
// The batch's buffers are reused from step to step: no per-step allocation once warm.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/device_sampling.h"
#include "engine/scheduler.h"
#include "models/forward_batch.h"
#include "models/model.h"

namespace ferrum {

class ModelRunner {
 public:
  ModelRunner(std::shared_ptr<Model> model, int32_t num_blocks, int32_t block_size);

  // Fills `batch` for this step. Sequences whose last token is computed in this step get a
  // logits row; their ScheduledSeq indices are written to `sampled` in row order.
  void build_batch(const SchedulerOutput& out, ForwardBatch& batch, std::vector<int32_t>& sampled) const;
  // Runs the step; returns the logits rows, [sampled.size(), vocab] (the model's memory,
  // writable, valid until the next run).
  std::span<float> run(const SchedulerOutput& out, std::vector<int32_t>& sampled);

  // The same with the tokens picked on the model's device: one SampleRow per sampled sequence
  // (built into `sampling`), the picks in `result`.
  void run_sampled(const SchedulerOutput& out, std::vector<int32_t>& sampled, DeviceSamplingBuilder& builder,
                   SampleBatch& sampling, SampleResult& result);

  KvCache& kv_cache() { return *cache_; }
  int32_t vocab_size() const { return vocab_size_; }

 private:
  std::shared_ptr<Model> model_;
  std::unique_ptr<KvCache> cache_;
  int32_t block_size_;
  int32_t vocab_size_;
  ForwardBatch batch_;
};

}  // namespace ferrum
