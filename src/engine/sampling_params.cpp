#include "engine/sampling_params.h"

#include <cmath>

#include "core/error.h"

namespace ferrum {
namespace {

template <typename... Args>
[[noreturn]] void invalid(fmt::format_string<Args...> f, Args&&... args) {
  throw InvalidRequest(fmt::format(f, std::forward<Args>(args)...));
}

}  // namespace

void SamplingParams::validate(int32_t vocab_size) const {
  if (n < 1 || n > 128) invalid("n must be between 1 and 128, got {}", n);
  if (!std::isfinite(temperature) || temperature < 0.0f)
    invalid("temperature must be a finite number >= 0, got {}", temperature);
  if (!(top_p > 0.0f && top_p <= 1.0f)) invalid("top_p must be in (0, 1], got {}", top_p);
  if (top_k < -1) invalid("top_k must be -1 or 0 (off) or a positive count, got {}", top_k);
  if (!(min_p >= 0.0f && min_p <= 1.0f)) invalid("min_p must be in [0, 1], got {}", min_p);
  if (!(repetition_penalty > 0.0f) || !std::isfinite(repetition_penalty))
    invalid("repetition_penalty must be > 0, got {}", repetition_penalty);
  if (!(frequency_penalty >= -2.0f && frequency_penalty <= 2.0f))
    invalid("frequency_penalty must be in [-2, 2], got {}", frequency_penalty);
  if (!(presence_penalty >= -2.0f && presence_penalty <= 2.0f))
    invalid("presence_penalty must be in [-2, 2], got {}", presence_penalty);
  for (const auto& [token, bias] : logit_bias) {
    if (token < 0 || token >= vocab_size)
      invalid("logit_bias token id {} is outside the vocabulary [0, {})", token, vocab_size);
    if (!(bias >= -100.0f && bias <= 100.0f))
      invalid("logit_bias for token {} must be in [-100, 100], got {}", token, bias);
  }
  if (max_tokens < 1) invalid("max_tokens must be at least 1, got {}", max_tokens);
  if (min_tokens < 0 || min_tokens > max_tokens)
    invalid("min_tokens must be in [0, max_tokens={}], got {}", max_tokens, min_tokens);
  for (const std::string& s : stop)
    if (s.empty()) invalid("stop strings must not be empty");
  for (int32_t t : stop_token_ids)
    if (t < 0 || t >= vocab_size)
      invalid("stop_token_ids entry {} is outside the vocabulary [0, {})", t, vocab_size);
  if (logprobs && (*logprobs < 0 || *logprobs > 20))
    invalid("logprobs must be between 0 and 20, got {}", *logprobs);
}

}  // namespace ferrum
