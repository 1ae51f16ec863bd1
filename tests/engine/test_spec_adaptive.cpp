// Adaptive n-gram speculation (spec_policy.h): the step-cost table, the scoring of proposals
// against the tokens that followed, the choice of rows; and in the engine, that n-gram
// speculation never changes a seeded request's tokens (the policy's premise), stops verifying
// where rows are costly and proposals seldom accepted, and keeps verifying where they are.
#include <gtest/gtest.h>

#include "engine/spec_policy.h"
#include "engine_test_util.h"

namespace ferrum::testing {
namespace {

TEST(StepCost, InterpolatesAndExtrapolatesMeasuredSteps) {
  StepCost c;
  EXPECT_LT(c.estimate(1, 0), 0.0);  // nothing measured
  c.record(1, 0, 10.0);
  EXPECT_DOUBLE_EQ(c.estimate(1, 0), 10.0);
  EXPECT_DOUBLE_EQ(c.estimate(1, 3), 10.0);  // one size known: larger ones look as cheap
  EXPECT_LT(c.estimate(2, 0), 0.0);          // by number of sequences
  c.record(1, 2, 14.0);
  EXPECT_DOUBLE_EQ(c.estimate(1, 1), 12.0);  // between measured sizes
  EXPECT_DOUBLE_EQ(c.estimate(1, 4), 18.0);  // past them, by the slope of the last two
  c.record(1, 0, 18.0);                      // a running average
  EXPECT_GT(c.estimate(1, 0), 10.0);
  EXPECT_LT(c.estimate(1, 0), 18.0);
  c.record(1, 2, 1e6);  // a stall counts as at most 3x its cell
  EXPECT_LT(c.estimate(1, 2), 14.0 * 3.0);
}

// The machine gets twice as busy while only one size runs: every size's estimate doubles
// alike (the load), rather than that size looking twice as dear as the others.
TEST(StepCost, ALoadChangeMovesEverySize) {
  StepCost c;
  for (int i = 0; i < 40; ++i) {
    c.record(1, 0, 1.0);
    c.record(1, 3, 2.0);
  }
  EXPECT_NEAR(c.estimate(1, 3) / c.estimate(1, 0), 2.0, 0.05);
  for (int i = 0; i < 30; ++i) c.record(1, 3, 4.0);
  EXPECT_NEAR(c.estimate(1, 3), 4.0, 0.2);
  EXPECT_NEAR(c.estimate(1, 0), 2.0, 0.3);
  EXPECT_NEAR(c.estimate(1, 3) / c.estimate(1, 0), 2.0, 0.3);
}

TEST(SpecPolicy, ScoresProposalsAgainstTheTokensThatFollowed) {
  SpecPolicy policy(2, 3, 3);
  NgramAcceptance h;
  std::vector<int32_t> tokens = {1, 2, 3, 1, 2};
  std::vector<double> g;
  policy.gains(h, 2, 3, g);  // before any count: the prior, half accepted at each position
  ASSERT_EQ(g.size(), 3u);
  EXPECT_DOUBLE_EQ(g[0], 0.5);
  EXPECT_DOUBLE_EQ(g[2], 0.125);

  const std::vector<int32_t> proposal = {3, 1, 2};  // matched on n = 2
  policy.observe(h, tokens, proposal, 2);
  EXPECT_EQ(h.start, 5);
  tokens.push_back(3);  // accepted so far: not decided yet
  policy.observe(h, tokens, {}, 0);
  EXPECT_EQ(h.start, 5);
  tokens.push_back(7);  // the second proposal was wrong: 1 accepted of 2 tried
  policy.observe(h, tokens, {}, 0);
  EXPECT_EQ(h.start, -1);
  policy.gains(h, 2, 3, g);
  EXPECT_DOUBLE_EQ(g[0], 1.5 / 2.0);
  EXPECT_DOUBLE_EQ(g[1], g[0] * 0.5 / 2.0);
  EXPECT_DOUBLE_EQ(g[2], g[1] * 0.5);  // never tried at the third position
  policy.gains(h, 3, 3, g);            // another match length keeps its own counts
  EXPECT_DOUBLE_EQ(g[0], 0.5);

  // Fully accepted proposals push the rates up; later counts weigh more than old ones.
  for (int i = 0; i < 40; ++i) {
    policy.observe(h, tokens, std::vector<int32_t>{4, 5, 6}, 2);
    tokens.insert(tokens.end(), {4, 5, 6});
  }
  policy.gains(h, 2, 3, g);
  EXPECT_GT(g[2], 0.8);
}

TEST(SpecPolicy, KeepsTheRowsThatMaximizeTokensPerSecond) {
  // Costly rows (the CPU: each proposal costs 40% of a step).
  SpecPolicy cpu(2, 3, 4);
  for (int m = 0; m <= 8; ++m) cpu.record_step(1, m, 1.0 + 0.4 * m);
  EXPECT_EQ(cpu.choose({{0.3, 0.1}}, 1), std::vector<int32_t>{0});
  EXPECT_EQ(cpu.choose({{0.95, 0.9, 0.85, 0.8}}, 1), std::vector<int32_t>{4});
  EXPECT_EQ(cpu.choose({{0.7, 0.3, 0.1}}, 1), std::vector<int32_t>{1});
  // Two sequences share the step: the better proposals win.
  for (int m = 0; m <= 8; ++m) cpu.record_step(2, m, 2.0 + 0.4 * m);
  EXPECT_EQ(cpu.choose({{0.2}, {0.95, 0.9}}, 2), (std::vector<int32_t>{0, 2}));

  // Nearly free rows (a GPU reading gigabytes of weights per step): any gain pays.
  SpecPolicy gpu(2, 3, 4);
  for (int m = 0; m <= 8; ++m) gpu.record_step(1, m, 5.0 + 0.02 * m);
  EXPECT_EQ(gpu.choose({{0.3, 0.1, 0.03}}, 1), std::vector<int32_t>{3});

  // A new batch size: the plain step is measured first, then every proposal is tried.
  EXPECT_EQ(gpu.choose({{0.1}, {0.1}, {0.1}}, 3), (std::vector<int32_t>{0, 0, 0}));
  gpu.record_step(3, 0, 6.0);
  EXPECT_EQ(gpu.choose({{0.1}, {0.1}, {0.1}}, 3), (std::vector<int32_t>{1, 1, 1}));

  // Every kProbeEvery-th choice verifies one row more than the best, and halfway between one
  // row less, to measure them again.
  SpecPolicy probe(2, 3, 4);
  for (int m = 0; m <= 4; ++m) probe.record_step(1, m, 1.0 + m);
  int rows = 0;
  for (int i = 0; i < 2 * SpecPolicy::kProbeEvery; ++i) rows += probe.choose({{0.1, 0.05}}, 1)[0];
  EXPECT_EQ(rows, 2);  // best 0: two probes up
  SpecPolicy cheap(2, 3, 4);
  for (int m = 0; m <= 4; ++m) cheap.record_step(1, m, 1.0 + 0.1 * m);
  rows = 0;
  for (int i = 0; i < 2 * SpecPolicy::kProbeEvery; ++i) rows += cheap.choose({{0.99, 0.98}}, 1)[0];
  EXPECT_EQ(rows, 2 * 2 * SpecPolicy::kProbeEvery - 2);  // best 2: two probes down
}

// worth_proposing: whether choose() would verify anything, without its probes or any change.
TEST(SpecPolicy, WorthProposingIsChooseWithoutProbes) {
  SpecPolicy p(2, 3, 4);
  EXPECT_FALSE(p.worth_proposing({{0.9}}, 1));  // the plain step is measured first
  for (int m = 0; m <= 8; ++m) p.record_step(1, m, 1.0 + 0.4 * m);
  EXPECT_FALSE(p.worth_proposing({{0.3, 0.1}}, 1));
  EXPECT_FALSE(p.worth_proposing({}, 1));
  EXPECT_TRUE(p.worth_proposing({{0.95, 0.9}}, 1));
  for (int i = 0; i < 2 * SpecPolicy::kProbeEvery; ++i) EXPECT_FALSE(p.worth_proposing({{0.3, 0.1}}, 1));
  EXPECT_EQ(p.choose({{0.3, 0.1}}, 1), std::vector<int32_t>{0});  // its probe counter did not move
}

// ---- in the engine ----

EngineOptions ngram_options(bool adaptive) {
  EngineOptions o;
  o.block_size = 4;
  o.num_kv_blocks = 512;
  o.max_num_batched_tokens = 48;
  o.speculative.num_tokens = 3;
  o.speculative.ngram = true;
  o.speculative.ngram_min = 1;
  o.speculative.max_batch = 0;
  o.speculative.adaptive = adaptive;
  return o;
}

std::vector<int32_t> periodic_prompt(std::mt19937& rng, int32_t period, int32_t len) {
  const std::vector<int32_t> motif = ascii_prompt(rng, period);
  std::vector<int32_t> p;
  while (static_cast<int32_t>(p.size()) < len) p.push_back(motif[p.size() % motif.size()]);
  return p;
}

// Requests one at a time (c = 1), as in the benchmark; returns every completion.
std::vector<Completion> run_one_by_one(Engine& engine, const std::vector<std::vector<int32_t>>& prompts,
                                       const SamplingParams& base) {
  std::vector<Completion> out;
  for (size_t i = 0; i < prompts.size(); ++i) {
    SamplingParams p = base;
    p.seed = 77 + i;
    auto stream = engine.submit(prompts[i], p);
    out.push_back(collect(*stream).completions[0]);
  }
  return out;
}

// Verification by the target's own draw: a seeded request's tokens and logprobs are the same
// with n-gram speculation as without, whatever it proposes, under penalties and filters.
TEST(SpecAdaptive, NgramSpeculationNeverChangesASeededRequest) {
  auto tok = std::make_shared<FakeTokenizer>();
  std::mt19937 rng(4);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 6; ++i) prompts.push_back(i % 2 ? periodic_prompt(rng, 4, 20) : ascii_prompt(rng, 12));
  SamplingParams p;
  p.temperature = 0.8f;
  p.top_p = 0.9f;
  p.frequency_penalty = 0.3f;
  p.max_tokens = 40;
  p.ignore_eos = true;
  p.logprobs = 2;
  EngineOptions plain = ngram_options(false);
  plain.speculative = SpeculativeOptions{};
  auto model = std::make_shared<FakeModel>();
  model->copy_period.store(4);  // a model that tends to repeat itself: many proposals, some rejected
  model->copy_bonus.store(6.0f);
  const auto want = run_one_by_one(*Engine::create(model, tok, plain), prompts, p);
  auto spec = Engine::create(model, tok, ngram_options(false));
  const auto got = run_one_by_one(*spec, prompts, p);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(got[i].tokens, want[i].tokens) << "request " << i;
    ASSERT_EQ(got[i].logprobs.size(), want[i].logprobs.size());
    for (size_t t = 0; t < got[i].logprobs.size(); ++t) EXPECT_EQ(got[i].logprobs[t].logprob, want[i].logprobs[t].logprob);
  }
  const EngineStats s = spec->stats();
  EXPECT_GT(s.spec_accepted_tokens, 20u) << s.spec_draft_tokens;
  EXPECT_LT(s.spec_accepted_tokens, s.spec_draft_tokens);
}

struct NgramRun {
  std::vector<Completion> out;
  EngineStats stats;
};

// Steps cost 500 us plus 150 us a token: each verified proposal costs 30% of a decode step.
NgramRun run_costly(bool adaptive, int copy_period, const std::vector<std::vector<int32_t>>& prompts,
                    const SamplingParams& p) {
  auto model = std::make_shared<FakeModel>();
  model->step_delay_us.store(500);
  model->token_delay_us.store(150);
  model->copy_period.store(copy_period);
  auto engine = Engine::create(model, std::make_shared<FakeTokenizer>(), ngram_options(adaptive));
  NgramRun r{run_one_by_one(*engine, prompts, p), {}};
  r.stats = engine->stats();
  return r;
}

TEST(SpecAdaptive, StopsVerifyingWhereProposalsDoNotPay) {
  std::mt19937 rng(8);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 3; ++i) prompts.push_back(ascii_prompt(rng, 16));
  SamplingParams p;
  p.temperature = 1.0f;
  p.max_tokens = 64;
  p.ignore_eos = true;
  // A model that does not repeat itself: single-token matches propose noise.
  const NgramRun always = run_costly(false, 0, prompts, p);
  const NgramRun adaptive = run_costly(true, 0, prompts, p);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(adaptive.out[i].tokens, always.out[i].tokens);
  ASSERT_GT(always.stats.spec_draft_tokens, 60u);
  EXPECT_LT(always.stats.spec_accepted_tokens * 5, always.stats.spec_draft_tokens);  // seldom accepted
  EXPECT_LT(adaptive.stats.spec_draft_tokens * 4, always.stats.spec_draft_tokens)
      << "adaptive verified " << adaptive.stats.spec_draft_tokens << " proposals, always-on "
      << always.stats.spec_draft_tokens;
}

TEST(SpecAdaptive, KeepsVerifyingWhereProposalsPay) {
  std::mt19937 rng(9);
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 3; ++i) prompts.push_back(periodic_prompt(rng, 5, 20));
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = 64;
  p.ignore_eos = true;
  const NgramRun always = run_costly(false, 5, prompts, p);
  const NgramRun adaptive = run_costly(true, 5, prompts, p);
  for (size_t i = 0; i < prompts.size(); ++i) EXPECT_EQ(adaptive.out[i].tokens, always.out[i].tokens);
  ASSERT_GT(always.stats.spec_accepted_tokens, 100u);
  EXPECT_GT(adaptive.stats.spec_accepted_tokens * 10, always.stats.spec_accepted_tokens * 7)
      << "adaptive accepted " << adaptive.stats.spec_accepted_tokens << " proposals, always-on "
      << always.stats.spec_accepted_tokens;
}

}  // namespace
}  // namespace ferrum::testing
