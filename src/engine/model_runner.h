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

// A sequence's logits rows are consecutive in `sampled` (1 + its proposals): the end of the
// rows of the sequence whose first row is r.
inline size_t sequence_rows_end(const std::vector<int32_t>& sampled, size_t r) {
  size_t end = r + 1;
  while (end < sampled.size() && sampled[end] == sampled[r]) ++end;
  return end;
}

class ModelRunner {
 public:
  ModelRunner(std::shared_ptr<Model> model, int32_t num_blocks, int32_t block_size);

  // Fills `batch` for this step. Sequences whose last token is computed in this step get a
  // logits row; their ScheduledSeq indices are written to `sampled` in row order. A sequence
  // with proposed tokens (Sequence::spec_draft, in its lookahead slots) gets them after its
  // last token and 1 + their number consecutive rows, all with its index.
  void build_batch(const SchedulerOutput& out, ForwardBatch& batch, std::vector<int32_t>& sampled) const;
  // Runs the step; returns the logits rows, [sampled.size(), vocab] (the model's memory,
  // writable, valid until the next run).
  std::span<float> run(const SchedulerOutput& out, std::vector<int32_t>& sampled);

  // The step with its tokens picked by the model (on its device), in two halves so that the
  // engine can overlap steps: launch queues the step and returns a ticket (one SampleRow per
  // logits row is built into `sampling`, a sequence's row after j proposals as if they were
  // generated; each sampled sequence gets a pending token);
  // collect waits for that step's picks, `rows` of them. Tokens pending from the step before
  // are fed from its picks on the device. Rows with a grammar get their token masks once the
  // forward is queued (the host computes them while the device runs it), after
  // `before_masks` (the engine takes the step before's tokens there, which the masks follow).
  uint64_t launch(const SchedulerOutput& out, std::vector<int32_t>& sampled, DeviceSamplingBuilder& builder,
                  SampleBatch& sampling, const std::function<void()>& before_masks = {});
  void collect(uint64_t ticket, size_t rows, SampleResult& result);

  // Model::prepare for this runner's KV cache.
  void prepare(const PrepareSpec& spec);

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
