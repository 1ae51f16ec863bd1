// One completion being generated: its tokens (prompt + output so far), how many of them are in
// the KV cache, the KV blocks that hold them, and its sampling / detokenization state.
// Owned by the engine thread; nothing here is touched by any other thread.
#pragma once
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/engine.h"
#include "engine/sampling_params.h"
#include "engine/spec_policy.h"
#include "structured/token_constraint.h"

namespace ferrum {

struct Request;

enum class SequenceStatus { Waiting, Running, Finished };

// Incremental detokenization state (the prefix/read offset method of vLLM and TGI).
struct DetokState {
  size_t prefix_offset = 0;   // start of the context window re-decoded each step
  size_t read_offset = 0;     // tokens before this are already turned into text
  std::string text;           // all output text decoded so far (stop strings not yet cut)
  size_t emittable = 0;       // bytes of `text` that may be sent (stop-string prefixes held back)
  size_t emitted = 0;         // bytes of `text` already sent to the client
};

struct Sequence {
  uint64_t id = 0;
  Request* request = nullptr;   // owns this sequence
  int32_t index = 0;            // which of the request's n completions
  const SamplingParams* params = nullptr;

  std::vector<int32_t> tokens;  // prompt followed by the generated tokens
  int32_t prompt_len = 0;
  int32_t num_computed_tokens = 0;  // tokens whose K/V are in the cache (or queued to be)
  // Overlapped steps: tokens picked on the device and not yet in `tokens` (0-2), and the row of
  // the latest launch's picks that holds the newest of them.
  int32_t pending_tokens = 0;
  int32_t pending_row = -1;
  int32_t max_kv_tokens = 0;        // worst case K/V this sequence can ever hold

  // Speculative decoding (spec_decode.h). The tokens proposed for this step (verified by the
  // target after its last known token, never in `tokens`), and for a draft model, the
  // proposal distribution of each (empty when a proposal is a point mass, as n-gram's) and
  // how many leading positions have the draft's K/V (always <= num_computed_tokens between
  // steps; 0 again whenever the blocks are freed).
  std::vector<int32_t> spec_draft;
  std::vector<float> spec_draft_probs;  // [spec_draft.size(), vocab] or empty
  int32_t draft_num_computed = 0;
  NgramAcceptance ngram_acceptance;     // adaptive n-gram lookup (spec_policy.h)

  SequenceStatus status = SequenceStatus::Waiting;
  std::vector<int32_t> block_table;   // KV block ids, in order
  std::vector<uint64_t> block_hashes; // chained hash of each full block of `tokens`
  int32_t num_cache_checked_blocks = 0;  // leading blocks already offered to the prefix cache
  Sequence* fork_parent = nullptr;    // n > 1: the completion whose prompt blocks it shares

  // Sampling state.
  std::mt19937_64 rng;
  uint64_t sample_key = 0;  // device sampling's random key (backend/sampling.h)
  std::unordered_map<int32_t, int32_t> output_counts;  // token -> times generated
  DetokState detok;
  std::optional<structured::TokenConstraint> constraint;  // when params->grammar is set

  // Pending output for the client (flushed after each step).
  std::vector<int32_t> new_token_ids;
  std::vector<TokenLogprob> new_logprobs;
  FinishReason finish_reason = FinishReason::None;
  std::string stop_reason;
  std::string error;
  bool retired = false;  // its finish was reported and its blocks freed

  int32_t num_tokens() const { return static_cast<int32_t>(tokens.size()); }  // known here
  int32_t num_output_tokens() const { return num_tokens() - prompt_len; }
  // What the scheduler plans with: the known tokens and those still on their way.
  int32_t num_total_tokens() const { return num_tokens() + pending_tokens; }
  bool is_finished() const { return status == SequenceStatus::Finished; }
};

}  // namespace ferrum
