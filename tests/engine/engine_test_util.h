// Helpers for engine tests: collect a request's stream, and the reference outputs a correct
// engine must produce (computed without paging, batching or caching).
#pragma once
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "core/json.h"
#include "engine/engine.h"
#include "fakes.h"

namespace ferrum::testing {

// A fixture checkpoint's prompts with transformers' greedy continuation
// (tests/fixtures/models/*/reference.json).
struct Reference {
  std::vector<int32_t> prompt, greedy;
  std::string greedy_text;  // transformers' tok.decode(greedy_ids)
};

inline std::vector<Reference> load_references(const std::filesystem::path& dir) {
  std::ifstream in(dir / "reference.json");
  json j = json::parse(in);
  std::vector<Reference> refs;
  for (const auto& p : j["prompts"])
    refs.push_back({p["prompt_ids"].get<std::vector<int32_t>>(), p["greedy_ids"].get<std::vector<int32_t>>(),
                    p["greedy_text"].get<std::string>()});
  return refs;
}

// Greedy decoding of a reference's length, special tokens kept (as the reference's decode).
inline SamplingParams greedy_like(const Reference& r) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.ignore_eos = true;
  p.max_tokens = static_cast<int32_t>(r.greedy.size());
  p.skip_special_tokens = false;
  return p;
}

struct Completion {
  std::vector<int32_t> tokens;
  std::vector<std::string> pieces;  // text deltas as streamed
  std::string text;                 // their concatenation
  std::vector<TokenLogprob> logprobs;
  FinishReason finish = FinishReason::None;
  std::string stop_reason, error;
};

struct Collected {
  std::vector<Completion> completions;
  int32_t prompt_tokens = 0, cached_tokens = 0;
  int32_t num_outputs = 0;
  bool finished = false;
};

inline void add_output(Collected& c, const RequestOutput& out) {
  ++c.num_outputs;
  c.prompt_tokens = out.prompt_tokens;
  c.cached_tokens = out.cached_tokens;
  c.finished = out.finished;
  for (auto& d : out.deltas) {
    Completion& comp = c.completions.at(d.index);
    comp.tokens.insert(comp.tokens.end(), d.token_ids.begin(), d.token_ids.end());
    if (!d.text.empty()) comp.pieces.push_back(d.text);
    comp.text += d.text;
    comp.logprobs.insert(comp.logprobs.end(), d.logprobs.begin(), d.logprobs.end());
    if (d.finish_reason != FinishReason::None) {
      comp.finish = d.finish_reason;
      comp.stop_reason = d.stop_reason;
      comp.error = d.error;
    }
  }
}

inline Collected collect(RequestStream& stream, int32_t n = 1) {
  Collected c;
  c.completions.resize(n);
  while (auto out = stream.next()) add_output(c, *out);
  return c;
}

// Each text submitted `copies` times in a row (greedy, max_tokens, EOS ignored), and the ids
// each request generated, in submission order.
inline std::vector<std::vector<int32_t>> greedy_ids_of(Engine& engine, const Tokenizer& tok,
                                                       const std::vector<std::string>& texts, int32_t max_tokens,
                                                       int copies = 1) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int copy = 0; copy < copies; ++copy)
    for (const std::string& t : texts) {
      SamplingParams p;
      p.temperature = 0.0f;
      p.max_tokens = max_tokens;
      p.ignore_eos = true;
      streams.push_back(engine.submit(tok.encode(t), p));
    }
  std::vector<std::vector<int32_t>> ids;
  for (auto& s : streams) ids.push_back(collect(*s).completions[0].tokens);
  return ids;
}

// Greedy decoding straight from reference_logits; stops on EOS (not part of the text).
inline Completion reference_greedy(const std::vector<int32_t>& prompt, int32_t max_tokens,
                                   const FakeModel& model, const Tokenizer& tok, bool ignore_eos = false) {
  Completion c;
  std::vector<int32_t> ctx = prompt;
  const auto& eos = model.config().eos_token_ids;
  const int32_t vocab = static_cast<int32_t>(model.config().vocab_size);
  for (int32_t i = 0; i < max_tokens; ++i) {
    auto row = reference_logits(ctx, vocab);
    const int32_t t = static_cast<int32_t>(std::max_element(row.begin(), row.end()) - row.begin());
    ctx.push_back(t);
    c.tokens.push_back(t);
    if (!ignore_eos && std::find(eos.begin(), eos.end(), t) != eos.end()) {
      c.finish = FinishReason::Stop;
      break;
    }
  }
  if (c.finish == FinishReason::None) c.finish = FinishReason::Length;
  std::vector<int32_t> text_ids = c.tokens;
  if (c.finish == FinishReason::Stop) text_ids.pop_back();
  c.text = tok.decode(text_ids, true);
  return c;
}

// Random prompt tokens that are plain ASCII pieces (ids 3..41 of FakeTokenizer).
inline std::vector<int32_t> ascii_prompt(std::mt19937& rng, int32_t len) {
  std::uniform_int_distribution<int32_t> d(3, 41);
  std::vector<int32_t> p(len);
  for (auto& t : p) t = d(rng);
  return p;
}

}  // namespace ferrum::testing
