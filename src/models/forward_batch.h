// The flat (varlen) batch that one engine step hands to a model: prefill chunks and decodes
// of several sequences concatenated, no padding. Built by the engine's model runner.
#pragma once
#include <cstdint>
#include <vector>

namespace ferrum {

struct ForwardBatch {
  // One entry per scheduled token, all sequences concatenated: [num_tokens].
  std::vector<int32_t> token_ids;
  std::vector<int32_t> positions;      // absolute position of each token in its sequence
  std::vector<int32_t> slot_mapping;   // KV slot (block * block_size + offset) each token writes

  // One entry per sequence: [num_seqs] (query_start has num_seqs + 1).
  std::vector<int32_t> query_start;    // token i of seq s is token_ids[query_start[s] + i]
  std::vector<int32_t> seq_lens;       // context length of seq s after this step (cached + new)
  std::vector<int32_t> block_tables;   // [num_seqs * max_blocks_per_seq], row-major, -1 padded
  int32_t max_blocks_per_seq = 0;

  // Rows of the flat batch whose logits are wanted (usually the last token of each sequence
  // that finishes its prompt or decodes). The output has one row per entry, in this order.
  std::vector<int32_t> logits_indices;

  // Tokens not known on the host yet (overlapped steps): pairs (index into token_ids, row of
  // the previous launch's picks), flattened. The model takes them from those picks on its
  // device; token_ids holds a placeholder there.
  std::vector<int32_t> deferred;

  int32_t num_tokens() const { return static_cast<int32_t>(token_ids.size()); }
  int32_t num_seqs() const { return static_cast<int32_t>(seq_lens.size()); }
};

}  // namespace ferrum
