// Sampling on the device: the engine describes each logits row's sampling (SampleRow) and
// its sparse logit edits (min_tokens masks, logit_bias, penalties); Backend::sample picks the
// tokens where the logits are, and only ids and the requested logprobs come back.
//
// The draw is a Gumbel-max over the kept tokens: argmax(l_i / T + G_i) with G_i from a
// counter-based hash of (key, counter, token). That samples exactly from the filtered softmax,
// needs no sort, and depends only on the row's own key and counter, so a seeded request gives
// the same tokens whatever else is in the batch. The CPU implementation
// (backend/cpu/cpu_sampling.cpp) is the reference the GPU kernel is tested against; the engine
// keeps its own host Sampler on the CPU.
#pragma once
#include <cstdint>
#include <utility>
#include <vector>

#include "backend/splitmix.h"
#include "core/tensor.h"

namespace ferrum {

// vLLM v1's order of operations on a row: edits (mask, bias, repetition, frequency and
// presence penalties) -> the token mask (structured output; last, so that no bias brings a
// masked token back) -> greedy, or temperature -> min_p -> top_k -> top_p -> draw.
struct SampleRow {
  float temperature = 1.0f;  // below kGreedyTemperature: greedy (argmax)
  int32_t top_k = 0;         // 0: off
  float top_p = 1.0f;
  float min_p = 0.0f;
  uint64_t key = 0;      // the sequence's random key (request seed and completion index)
  uint64_t counter = 0;  // which draw of that sequence (its output length)
  int32_t num_logprobs = -1;  // -1: none; else the sampled token's raw logprob and this many top ones
  int32_t edits_begin = 0, edits_end = 0;  // this row's range of SampleBatch::edits
  int32_t mask = -1;  // -1: none; else the row's token mask, SampleBatch::masks[mask]
};

// One change to one token's logit before sampling. Within a row, edits run in the order of
// their phase (Mask, Bias, Repetition, Penalty); a token appears at most once per phase.
struct LogitEdit {
  enum Kind : int32_t { Mask = 0, Bias = 1, Repetition = 2, Penalty = 3 };
  int32_t token = 0;
  int32_t kind = Mask;
  float value = 0.0f;  // Bias: added; Repetition: the HF penalty r; Penalty: subtracted
};

struct SampleBatch {
  std::vector<SampleRow> rows;
  std::vector<LogitEdit> edits;  // grouped by row, each row's sorted by kind
  // Token masks, mask_words 32-bit words each (at least vocab / 32): bit t % 32 of word t / 32
  // set where token t may be picked. Rows share none; they are filled in before the picks.
  int32_t mask_words = 0;
  std::vector<uint32_t> masks;
  int32_t num_masks() const { return mask_words > 0 ? static_cast<int32_t>(masks.size() / mask_words) : 0; }
  void clear() {
    rows.clear();
    edits.clear();
    masks.clear();
    mask_words = 0;
  }
};

FERRUM_HOST_DEVICE inline bool mask_allows(const uint32_t* mask, int64_t token) {
  return (mask[token >> 5] >> (token & 31)) & 1u;
}

constexpr float kGreedyTemperature = 1e-5f;  // as vLLM: lower temperatures mean greedy
constexpr int32_t kMaxTopLogprobs = 20;      // the OpenAI API's limit

struct SampleResult {
  std::vector<int32_t> tokens;     // [rows]
  std::vector<float> logprobs;     // [rows]: raw logprob of the sampled token (rows that asked)
  std::vector<int32_t> top_ids;    // [rows, kMaxTopLogprobs], best first; the first num_logprobs valid
  std::vector<float> top_logprobs;
};

// A uniform number in (0, 1) from 64 random bits: the top 23, plus a half, over 2^23. Every
// value (v + 0.5) / 2^23 is exact in a float, so u lies in [2^-24, 1 - 2^-24] and is never 1
// (24 bits plus a half would round the largest to 1.0, whose Gumbel score -log(-log u) is
// +inf: a token picked at random in about 1 of 130 draws over a 128k vocabulary).
FERRUM_HOST_DEVICE inline float uniform_from_bits(uint64_t z) {
  return (static_cast<float>(z >> 41) + 0.5f) * (1.0f / 8388608.0f);
}

// The draw's uniform number for (key, counter, token). Shared by both implementations so that
// they pick the same tokens.
FERRUM_HOST_DEVICE inline float sample_uniform(uint64_t key, uint64_t counter, uint32_t token) {
  return uniform_from_bits(
      splitmix64_mix(key ^ (counter * kGoldenGamma) ^ (static_cast<uint64_t>(token) * 0xD1B54A32D192ED03ull)));
}

// The Gumbel-max draw picks the best x - log(-log u) of the candidates; with u as above the
// noise lies in [-log(-log 2^-24), -log(-log(1 - 2^-24))] = [-2.82, 16.64]. So a token whose
// x is more than kGumbelReach below the row's largest cannot beat that token, and a kernel
// may skip its draw (the pick is the same).
constexpr float kGumbelReach = 20.5f;

}  // namespace ferrum
