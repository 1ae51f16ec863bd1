// Speculative decoding with FakeModel (whose logits hash every K/V slot a token attends to, so
// a stale, misplaced or rolled-back-wrong slot changes the output): greedy ids exactly the
// reference's, sampled tokens distributed exactly as without speculation (chi-square), KV
// blocks all free again after preemption and aborts, the draft's KV kept exact.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <thread>

#include "engine/sampler.h"
#include "engine/spec_drafter.h"
#include "engine_test_util.h"
#include "sampling_reference.h"

namespace ferrum::testing {
namespace {

using namespace std::chrono_literals;

// A draft that is deliberately not the target: the target's logits, flattened and tilted
// toward some tokens, so that q differs from p everywhere.
class PerturbedFakeModel : public FakeModel {
 public:
  using FakeModel::FakeModel;
  void forward(const ForwardBatch& b, KvCache& cache, std::vector<float>& logits) override {
    FakeModel::forward(b, cache, logits);
    const size_t vocab = config().vocab_size;
    for (size_t i = 0; i < logits.size(); ++i)
      logits[i] = 0.6f * logits[i] + 0.7f * static_cast<float>(static_cast<int>((i % vocab) * 7 % 5) - 2);
  }
};

struct SpecHarness {
  std::shared_ptr<FakeModel> model;
  std::shared_ptr<FakeModel> draft;
  std::shared_ptr<FakeTokenizer> tok = std::make_shared<FakeTokenizer>();
  std::unique_ptr<Engine> engine;

  SpecHarness(EngineOptions o, int32_t vocab = 64) : model(std::make_shared<FakeModel>(vocab)) {
    if (o.speculative.draft) draft = std::static_pointer_cast<FakeModel>(o.speculative.draft);
    engine = Engine::create(model, tok, o);
  }
  std::vector<Collected> run_all(const std::vector<std::vector<int32_t>>& prompts, const std::vector<SamplingParams>& ps) {
    std::vector<std::shared_ptr<RequestStream>> streams;
    model->pause();
    for (size_t i = 0; i < prompts.size(); ++i) streams.push_back(engine->submit(prompts[i], ps[i]));
    model->resume();
    std::vector<Collected> out;
    for (size_t i = 0; i < streams.size(); ++i) out.push_back(collect(*streams[i], ps[i].n));
    return out;
  }
  int32_t used_blocks_when_idle() {
    for (int i = 0; i < 400; ++i) {
      auto s = engine->stats();
      if (s.running == 0 && s.waiting == 0 && s.kv_blocks_used == 0) return 0;
      std::this_thread::sleep_for(5ms);
    }
    return engine->stats().kv_blocks_used;
  }
};

EngineOptions spec_options(int32_t k, bool ngram, std::shared_ptr<Model> draft, int32_t num_blocks = 512) {
  EngineOptions o;
  o.block_size = 4;
  o.num_kv_blocks = num_blocks;
  o.max_num_batched_tokens = 48;  // chunked prefill
  o.max_num_seqs = 32;
  o.speculative.num_tokens = k;
  o.speculative.ngram = ngram;
  o.speculative.ngram_min = 1;  // random models rarely repeat longer n-grams: exercise proposals
  o.speculative.draft = std::move(draft);
  o.speculative.max_batch = 0;  // speculate at any batch size
  o.speculative.adaptive = false;  // verify every proposal (test_spec_adaptive.cpp: the policy)
  return o;
}

// Prompts that repeat themselves, so that n-gram lookup finds proposals.
std::vector<int32_t> repetitive_prompt(std::mt19937& rng, int32_t len) {
  std::vector<int32_t> motif = ascii_prompt(rng, 5);
  std::vector<int32_t> p;
  while (static_cast<int32_t>(p.size()) < len) p.push_back(motif[p.size() % motif.size()]);
  return p;
}

TEST(NgramLookup, ProposesWhatFollowedTheLongestRecentMatch) {
  const std::vector<int32_t> t = {1, 2, 3, 4, 9, 2, 3, 5, 6, 1, 2, 3};
  // "1 2 3" occurred at 0: 4 9 2 follow (the longest match wins over the more recent "2 3").
  EXPECT_EQ(propose_ngram(t, 1, 3, 3), (std::vector<int32_t>{4, 9, 2}));
  // n = 2 at most: "2 3" most recently at 5, followed by 5 6.
  EXPECT_EQ(propose_ngram(t, 1, 2, 2), (std::vector<int32_t>{5, 6}));
  // The continuation stops at the end of the context.
  EXPECT_EQ(propose_ngram(std::vector<int32_t>{7, 8, 7}, 1, 3, 4), (std::vector<int32_t>{8, 7}));
  EXPECT_TRUE(propose_ngram(std::vector<int32_t>{1, 2, 3}, 1, 3, 4).empty());
  EXPECT_TRUE(propose_ngram(std::vector<int32_t>{1, 2, 1, 2}, 3, 3, 4).empty());
  EXPECT_TRUE(propose_ngram(t, 1, 3, 0).empty());
}

// Greedy under every drafter, with batching, chunked prefill, prefix hits (repeated prompts),
// preemption (a small pool) and EOS stops: the ids are exactly the unpaged reference's, the
// model never read a wrong slot, and every block is free at the end.
void expect_greedy_exact(const EngineOptions& o, const char* what, bool expect_all_accepted = false) {
  SpecHarness h(o);
  std::mt19937 rng(11);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<SamplingParams> ps;
  for (int i = 0; i < 24; ++i) {
    prompts.push_back(i % 3 == 0 ? repetitive_prompt(rng, 9 + i) : prompts.empty() || i % 3 == 2 ? ascii_prompt(rng, 6 + i) : prompts.back());
    SamplingParams p;
    p.temperature = 0.0f;
    p.max_tokens = 20 + i % 7;
    p.ignore_eos = i % 2 == 0;
    ps.push_back(p);
  }
  auto out = h.run_all(prompts, ps);
  for (size_t i = 0; i < out.size(); ++i) {
    Completion ref = reference_greedy(prompts[i], ps[i].max_tokens, *h.model, *h.tok, ps[i].ignore_eos);
    EXPECT_EQ(out[i].completions[0].tokens, ref.tokens) << what << " request " << i;
    EXPECT_EQ(out[i].completions[0].finish, ref.finish) << what << " request " << i;
    EXPECT_EQ(out[i].completions[0].text, ref.text) << what << " request " << i;
  }
  EXPECT_EQ(h.model->violations.load(), 0) << what;
  EXPECT_EQ(h.used_blocks_when_idle(), 0) << what;
  const EngineStats s = h.engine->stats();
  EXPECT_GT(s.spec_drafts, 0u) << what;
  EXPECT_GT(s.spec_draft_tokens, 0u) << what;
  if (expect_all_accepted) {
    EXPECT_EQ(s.spec_accepted_tokens, s.spec_draft_tokens) << what;
  }
  if (o.num_kv_blocks < 64) {
    EXPECT_GT(s.preemptions, 0u) << what;
  }
  if (h.draft) {
    EXPECT_EQ(h.draft->violations.load(), 0) << what;
  }
}

TEST(SpecDecode, GreedyIdsAreTheReferenceWithNgramLookup) {
  expect_greedy_exact(spec_options(3, true, nullptr), "ngram");
  expect_greedy_exact(spec_options(5, true, nullptr, 40), "ngram, preemption");
}

TEST(SpecDecode, GreedyIdsAreTheReferenceWithADifferentDraft) {
  expect_greedy_exact(spec_options(3, false, std::make_shared<PerturbedFakeModel>()), "perturbed draft");
  expect_greedy_exact(spec_options(4, false, std::make_shared<PerturbedFakeModel>(), 40), "perturbed draft, preemption");
}

// The target as its own draft: a greedy draft proposes exactly the target's ids only if its
// own KV (caught up after acceptances, recomputed after preemption and prefix hits, never
// past the rolled-back length) is exact, so every proposal must be accepted.
TEST(SpecDecode, ASelfDraftIsAlwaysAccepted) {
  expect_greedy_exact(spec_options(4, false, std::make_shared<FakeModel>()), "self draft", true);
  expect_greedy_exact(spec_options(3, false, std::make_shared<FakeModel>(), 40), "self draft, preemption", true);
}

TEST(SpecDecode, ADraftWithAnotherVocabularyIsRefused) {
  EXPECT_THROW(SpecHarness(spec_options(3, false, std::make_shared<FakeModel>(32))), Error);
  EXPECT_THROW(SpecHarness(spec_options(3, true, std::make_shared<FakeModel>())), Error);  // both drafters
}

// ---- distribution ----

// Chi-square goodness of fit at p = 1e-4 (Wilson-Hilferty's quantile), over cells expecting
// at least 5 draws (the rest pooled); a cell of probability 0 must never be drawn.
void expect_chi_square(const std::vector<int>& counts, const std::vector<double>& probs, int draws, const std::string& what) {
  double stat = 0.0, pooled_e = 0.0, pooled_o = 0.0;
  int cells = 0;
  for (size_t i = 0; i < probs.size(); ++i) {
    const double e = probs[i] * draws;
    if (probs[i] == 0.0) {
      EXPECT_EQ(counts[i], 0) << what << ": cell " << i << " has probability 0";
      continue;
    }
    if (e < 5.0) {
      pooled_e += e;
      pooled_o += counts[i];
      continue;
    }
    stat += (counts[i] - e) * (counts[i] - e) / e;
    ++cells;
  }
  if (pooled_e > 0.0) {
    stat += (pooled_o - pooled_e) * (pooled_o - pooled_e) / std::max(pooled_e, 1.0);
    ++cells;
  }
  const double df = cells - 1, z = 3.719;  // one-sided 1e-4
  const double crit = df * std::pow(1.0 - 2.0 / (9.0 * df) + z * std::sqrt(2.0 / (9.0 * df)), 3.0);
  EXPECT_LT(stat, crit) << what << ": chi-square " << stat << " over " << df << " degrees of freedom";
}

// The distribution the host sampler draws the next token from after `context` (output tokens
// = context past prompt_len), computed directly: penalties, then the reference filters.
std::vector<double> next_token_probs(const std::vector<int32_t>& context, int32_t prompt_len, int32_t vocab,
                                     const SamplingParams& sp) {
  std::vector<float> row = reference_logits(context, vocab);
  std::unordered_map<int32_t, int32_t> counts;
  for (size_t i = prompt_len; i < context.size(); ++i) ++counts[context[i]];
  std::vector<uint8_t> seen;
  apply_penalties(row, context, counts, sp, seen);
  return reference_distribution(row, sp);
}

// Many seeded requests of one prompt; tokens 2 and 3 of each come from one verification of
// K >= 2 proposals. Their marginal and joint frequencies must match the exact distribution,
// marginalized over the first token (sampled without speculation, at the prompt's end).
void expect_target_distribution(const EngineOptions& o, const SamplingParams& base, const std::string& what) {
  const int32_t vocab = 8;
  SpecHarness h(o, vocab);
  const std::vector<int32_t> prompt = {3, 5, 3, 5, 2, 3, 5, 3, 6, 3, 5};
  const int draws = 30000;
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<int> joint(vocab * vocab, 0), second(vocab, 0);
  for (int i = 0; i < draws; ++i) {
    SamplingParams p = base;
    p.max_tokens = 4;
    p.ignore_eos = true;
    p.seed = 1000 + i;
    streams.push_back(h.engine->submit(prompt, p));
    if (streams.size() == 64 || i + 1 == draws) {
      for (auto& s : streams) {
        auto c = collect(*s);
        const auto& t = c.completions[0].tokens;
        ASSERT_EQ(t.size(), 4u) << what;
        ++second[t[1]];
        ++joint[t[1] * vocab + t[2]];
      }
      streams.clear();
    }
  }
  std::vector<double> ref_joint(vocab * vocab, 0.0), ref_second(vocab, 0.0);
  const int32_t plen = static_cast<int32_t>(prompt.size());
  const auto p1 = next_token_probs(prompt, plen, vocab, base);
  for (int32_t a = 0; a < vocab; ++a) {
    if (p1[a] == 0.0) continue;
    std::vector<int32_t> ctx = prompt;
    ctx.push_back(a);
    const auto p2 = next_token_probs(ctx, plen, vocab, base);
    for (int32_t b = 0; b < vocab; ++b) {
      if (p2[b] == 0.0) continue;
      ctx.push_back(b);
      const auto p3 = next_token_probs(ctx, plen, vocab, base);
      ctx.pop_back();
      for (int32_t c = 0; c < vocab; ++c) ref_joint[b * vocab + c] += p1[a] * p2[b] * p3[c];
      ref_second[b] += p1[a] * p2[b];
    }
  }
  expect_chi_square(second, ref_second, draws, what + ", next token");
  expect_chi_square(joint, ref_joint, draws, what + ", two tokens");
  const EngineStats s = h.engine->stats();
  EXPECT_GT(s.spec_draft_tokens, static_cast<uint64_t>(draws / 4)) << what;  // it did speculate
  EXPECT_GT(s.spec_accepted_tokens, 0u) << what;
  EXPECT_LT(s.spec_accepted_tokens, s.spec_draft_tokens) << what;  // and rejected some
  EXPECT_EQ(h.used_blocks_when_idle(), 0) << what;
}

SamplingParams temp_top_p() {
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_p = 0.85f;
  return p;
}

TEST(SpecDecode, SampledTokensHaveTheTargetDistributionWithADifferentDraft) {
  auto o = spec_options(3, false, std::make_shared<PerturbedFakeModel>(8));
  expect_target_distribution(o, temp_top_p(), "perturbed draft, T 0.9, top_p 0.85");
  SamplingParams p;
  p.temperature = 1.3f;
  p.top_k = 5;
  p.min_p = 0.05f;
  p.repetition_penalty = 1.4f;
  p.presence_penalty = 0.6f;
  expect_target_distribution(spec_options(2, false, std::make_shared<PerturbedFakeModel>(8)), p,
                             "perturbed draft, T 1.3, top_k, min_p, penalties");
}

TEST(SpecDecode, SampledTokensHaveTheTargetDistributionWithNgramLookup) {
  expect_target_distribution(spec_options(3, true, nullptr), temp_top_p(), "ngram, T 0.9, top_p 0.85");
  SamplingParams p;
  p.temperature = 1.0f;
  p.frequency_penalty = 0.8f;
  expect_target_distribution(spec_options(2, true, nullptr), p, "ngram, frequency penalty");
}

// ---- rollback ----

TEST(SpecDecode, AbortedAndPreemptedRequestsFreeEveryBlock) {
  for (bool ngram : {true, false}) {
    auto o = spec_options(4, ngram, ngram ? nullptr : std::make_shared<PerturbedFakeModel>(), 48);
    SpecHarness h(o);
    h.model->step_delay_us = 300;
    std::mt19937 rng(5);
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (int i = 0; i < 12; ++i) {
      SamplingParams p;
      p.temperature = 0.8f;
      p.seed = i;
      p.max_tokens = 60;
      p.ignore_eos = true;
      p.n = i % 4 == 0 ? 2 : 1;
      streams.push_back(h.engine->submit(repetitive_prompt(rng, 10 + i), p));
    }
    std::this_thread::sleep_for(20ms);
    for (size_t i = 0; i < streams.size(); i += 2) streams[i]->abort();
    for (size_t i = 0; i < streams.size(); ++i) {
      auto c = collect(*streams[i], i % 4 == 0 ? 2 : 1);
      EXPECT_TRUE(c.finished);
      if (i % 2 == 1) {
        for (const auto& comp : c.completions) EXPECT_EQ(comp.tokens.size(), 60u);
      }
    }
    EXPECT_EQ(h.used_blocks_when_idle(), 0) << (ngram ? "ngram" : "draft");
    EXPECT_EQ(h.model->violations.load(), 0);
    EXPECT_GT(h.engine->stats().preemptions, 0u);
  }
}

// Logprobs come with every token (those of the raw target row at its position), stop tokens
// end a run of accepted proposals, and n > 1 completions speculate independently.
TEST(SpecDecode, LogprobsStopsAndNAreKept) {
  SpecHarness h(spec_options(4, false, std::make_shared<FakeModel>()));
  std::mt19937 rng(3);
  const std::vector<int32_t> prompt = repetitive_prompt(rng, 12);
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = 24;
  p.logprobs = 2;
  p.n = 2;
  Completion ref = reference_greedy(prompt, p.max_tokens, *h.model, *h.tok, true);
  ASSERT_GT(ref.tokens.size(), 10u);
  p.stop_token_ids = {ref.tokens[9]};  // a stop in the middle of an accepted run, likely
  auto c = h.run_all({prompt}, {p})[0];
  const auto stop_at = std::find(ref.tokens.begin(), ref.tokens.end(), ref.tokens[9]) - ref.tokens.begin();
  for (const Completion& comp : c.completions) {
    ASSERT_EQ(comp.tokens.size(), static_cast<size_t>(stop_at + 1));
    EXPECT_EQ(comp.finish, FinishReason::Stop);
    ASSERT_EQ(comp.logprobs.size(), comp.tokens.size());
    std::vector<int32_t> ctx = prompt;
    for (size_t i = 0; i < comp.tokens.size(); ++i) {
      EXPECT_EQ(comp.tokens[i], ref.tokens[i]);
      const auto row = reference_logits(ctx, 64);
      double z = 0.0;
      for (float l : row) z += std::exp(static_cast<double>(l));
      EXPECT_NEAR(comp.logprobs[i].logprob, row[comp.tokens[i]] - std::log(z), 1e-4);
      EXPECT_EQ(comp.logprobs[i].top.size(), 2u);
      ctx.push_back(comp.tokens[i]);
    }
  }
  EXPECT_EQ(h.used_blocks_when_idle(), 0);
}

// Above the configured concurrency, steps decode one token at a time (nothing proposed).
TEST(SpecDecode, SwitchesOffAboveMaxBatch) {
  auto o = spec_options(3, true, nullptr);
  o.speculative.max_batch = 2;
  SpecHarness h(o);
  std::mt19937 rng(9);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<SamplingParams> ps;
  for (int i = 0; i < 8; ++i) {  // 8 x 6 tokens: all admitted in one step, all finish together
    prompts.push_back(repetitive_prompt(rng, 6));
    ps.push_back(SamplingParams{});
    ps.back().temperature = 0.0f;
    ps.back().max_tokens = 8;
    ps.back().ignore_eos = true;
  }
  h.run_all(prompts, ps);
  EXPECT_EQ(h.engine->stats().spec_draft_tokens, 0u);
  h.run_all({prompts[0]}, {ps[0]});  // alone: speculates
  EXPECT_GT(h.engine->stats().spec_drafts, 0u);
}

}  // namespace
}  // namespace ferrum::testing
