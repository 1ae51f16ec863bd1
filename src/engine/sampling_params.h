// Per-request generation settings, as the OpenAI API and vLLM name them.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "structured/grammar.h"

namespace ferrum {

struct SamplingParams {
  int32_t n = 1;                    // completions per prompt (they share the prompt's KV blocks)
  float temperature = 1.0f;         // 0 = greedy
  float top_p = 1.0f;
  int32_t top_k = 0;                // 0 = off
  float min_p = 0.0f;
  float repetition_penalty = 1.0f;  // 1 = off (HF semantics: divides positive logits)
  float frequency_penalty = 0.0f;
  float presence_penalty = 0.0f;
  std::map<int32_t, float> logit_bias;
  std::optional<uint64_t> seed;     // reproducible whatever else is in the batch
  int32_t max_tokens = 16;
  int32_t min_tokens = 0;
  bool ignore_eos = false;
  std::vector<std::string> stop;            // stop strings, never emitted
  std::vector<int32_t> stop_token_ids;      // besides the model's EOS ids
  bool include_stop_str_in_output = false;
  std::optional<int32_t> logprobs;          // number of top logprobs per token (0..20); unset = none
  bool skip_special_tokens = true;
  // Structured output: the output must be a sentence of this grammar (null = free text).
  // Sampling masks the tokens that leave it; the completion stops when it is complete.
  std::shared_ptr<const structured::Grammar> grammar;
  // The grammar starts after this text appears in the output (a reasoning model's "</think>";
  // the reasoning before it is free). Empty: from the first token.
  std::string grammar_after;

  // Throws InvalidRequest with a clear message when a value is out of range.
  void validate(int32_t vocab_size) const;
};

}  // namespace ferrum
