// The sampler against straightforward reference implementations of each filter.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>

#include "engine/sampler.h"
#include "sampling_reference.h"

namespace ferrum {
namespace {

using testing::reference_distribution;
using testing::softmax;
using testing::test_logits;

// Draws many samples and compares frequencies with the reference distribution.
void check_distribution(const SamplingParams& sp) {
  Sampler sampler(8, {});
  std::mt19937_64 rng(77);
  const auto ref = reference_distribution(test_logits(), sp);
  const int draws = 40000;
  std::vector<int> counts(8, 0);
  for (int i = 0; i < draws; ++i) {
    auto l = test_logits();
    ++counts[sampler.sample_filtered(l, sp, rng)];
  }
  testing::expect_frequencies(counts, ref, draws);
}

TEST(Sampler, TemperatureMatchesSoftmax) {
  SamplingParams sp;
  sp.temperature = 0.7f;
  check_distribution(sp);
  sp.temperature = 1.6f;
  check_distribution(sp);
}

TEST(Sampler, TopKTopPMinPMatchTheReference) {
  for (const SamplingParams& sp : testing::filter_cases()) check_distribution(sp);
}

TEST(Sampler, GreedyIsArgmaxFirstOnTies) {
  Sampler sampler(4, {});
  std::mt19937_64 rng(1);
  SamplingParams sp;
  sp.temperature = 0.0f;
  std::vector<float> l{0.5f, 3.0f, 3.0f, -1.0f};
  EXPECT_EQ(sampler.sample_filtered(l, sp, rng), 1);
  sp.temperature = 1.0f;
  sp.top_k = 1;
  l = {0.5f, 3.0f, 3.0f, -1.0f};
  EXPECT_EQ(sampler.sample_filtered(l, sp, rng), 1);
}

TEST(Sampler, PenaltiesFollowHfAndOpenAiSemantics) {
  std::vector<float> l{2.0f, -2.0f, 1.0f, 0.5f, 3.0f};
  SamplingParams sp;
  sp.repetition_penalty = 2.0f;
  sp.frequency_penalty = 0.5f;
  sp.presence_penalty = 0.25f;
  std::vector<int32_t> context{0, 1, 1, 3};  // prompt 0, 1, 1 + output 3
  std::unordered_map<int32_t, int32_t> output_counts{{3, 1}, {2, 2}};
  std::vector<uint8_t> seen;
  apply_penalties(l, context, output_counts, sp, seen);
  EXPECT_FLOAT_EQ(l[0], 1.0f);                // positive: divided once
  EXPECT_FLOAT_EQ(l[1], -4.0f);               // negative: multiplied once despite repeats
  EXPECT_FLOAT_EQ(l[2], 1.0f - 2 * 0.5f - 0.25f);   // not in context: frequency + presence only
  EXPECT_FLOAT_EQ(l[3], 0.25f - 0.5f - 0.25f);
  EXPECT_FLOAT_EQ(l[4], 3.0f);
}

TEST(Sampler, SeededDrawsDependOnlyOnTheSequenceRng) {
  SamplingParams sp;
  sp.temperature = 1.0f;
  Sampler a(8, {}), b(8, {});
  std::mt19937_64 r1(5), r2(5);
  for (int i = 0; i < 100; ++i) {
    auto l1 = test_logits(), l2 = test_logits();
    EXPECT_EQ(a.sample_filtered(l1, sp, r1), b.sample_filtered(l2, sp, r2));
  }
}

TEST(Sampler, LogprobsAreLogSoftmaxWithSortedTop) {
  std::vector<float> l = test_logits();
  TokenLogprob out;
  std::vector<int32_t> scratch;
  compute_logprobs(l, 3, 3, out, scratch);
  auto p = softmax(l, 1.0);
  EXPECT_NEAR(out.logprob, std::log(p[3]), 1e-5);
  ASSERT_EQ(out.top.size(), 3u);
  EXPECT_EQ(out.top[0].first, 0);
  EXPECT_EQ(out.top[1].first, 1);
  EXPECT_EQ(out.top[2].first, 2);
  EXPECT_NEAR(out.top[1].second, std::log(p[1]), 1e-5);
}

TEST(Sampler, MinTokensAndLogitBiasApplyBeforeSampling) {
  Sampler sampler(8, {0});  // EOS = 0, the argmax of test_logits
  Sequence seq;
  SamplingParams sp;
  sp.temperature = 0.0f;
  sp.min_tokens = 1;
  seq.params = &sp;
  seq.tokens = {5};
  seq.prompt_len = 1;
  auto l = test_logits();
  EXPECT_EQ(sampler.sample(seq, l), 1);  // EOS masked before min_tokens
  sp.min_tokens = 0;
  sp.logit_bias[6] = 10.0f;
  l = test_logits();
  EXPECT_EQ(sampler.sample(seq, l), 6);
}

}  // namespace
}  // namespace ferrum
