// Device sampling (backend/sampling.h): the CPU reference of Backend::sample against the same
// reference distributions as the host Sampler, its edits against the Sampler's, seeds that
// do not depend on the batch, and the engine's device-sampling path (through a model wrapper
// that samples with the CPU reference) against transformers' greedy ids. The CUDA kernel is
// held to this reference in tests/backend/sampling_parity_test.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>

#include "backend/backend.h"
#include "core/json.h"
#include "engine/device_sampling.h"
#include "engine/sampler.h"
#include "structured/regex.h"
#include "engine_test_util.h"
#include "samples_on_device.h"
#include "sampling_reference.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::testing {
namespace {

class DeviceSampling : public ::testing::Test {
 protected:
  std::unique_ptr<Backend> cpu_ = make_cpu_backend(1);

  // Samples `rows` copies of `logits` through the CPU reference.
  SampleResult run(const std::vector<float>& logits, const SampleBatch& batch) {
    const int64_t R = static_cast<int64_t>(batch.rows.size()), V = static_cast<int64_t>(logits.size());
    Tensor t = cpu_->alloc({R, V}, DType::F32);
    for (int64_t r = 0; r < R; ++r) std::copy(logits.begin(), logits.end(), t.ptr<float>() + r * V);
    SampleResult out;
    cpu_->sample(t, batch, out);
    return out;
  }

  void check_distribution(const SamplingParams& sp) {
    DeviceSamplingBuilder builder(8, {});
    Sequence seq;
    seq.params = &sp;
    seq.tokens = {1};
    seq.prompt_len = 1;
    seq.sample_key = DeviceSamplingBuilder::key(42, 0);
    SampleBatch batch;
    const int draws = 40000;
    for (int i = 0; i < draws; ++i) {
      builder.add(seq, batch);
      batch.rows.back().counter = static_cast<uint64_t>(i);  // successive draws of one sequence
    }
    const SampleResult out = run(test_logits(), batch);
    std::vector<int> counts(8, 0);
    for (int32_t t : out.tokens) ++counts.at(t);
    const auto ref = reference_distribution(test_logits(), sp);
    expect_frequencies(counts, ref, draws);
  }
};

TEST_F(DeviceSampling, DistributionsMatchTheReference) {
  SamplingParams sp;
  check_distribution(sp);
  sp.temperature = 0.7f;
  check_distribution(sp);
  for (const SamplingParams& c : filter_cases()) check_distribution(c);
}

// Edits and logprobs equal the host Sampler's on the same sequence state.
TEST_F(DeviceSampling, EditsAndLogprobsMatchTheHostSampler) {
  std::mt19937_64 rng(3);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  for (int trial = 0; trial < 50; ++trial) {
    std::vector<float> logits(64);
    for (float& l : logits) l = u(rng);
    SamplingParams sp;
    sp.temperature = 0.0f;
    sp.repetition_penalty = 1.0f + static_cast<float>(trial % 3);
    sp.frequency_penalty = 0.3f * (trial % 2);
    sp.presence_penalty = 0.2f;
    sp.logit_bias = {{static_cast<int32_t>(trial % 64), 4.0f}, {7, -2.0f}};
    sp.min_tokens = trial % 2 ? 5 : 0;
    sp.stop_token_ids = {static_cast<int32_t>((trial * 7) % 64)};
    sp.logprobs = 3;
    Sequence seq;
    seq.params = &sp;
    seq.tokens = {1, 2, 2, 9, static_cast<int32_t>(trial % 64), 9};
    seq.prompt_len = 3;
    seq.output_counts = {{9, 2}, {static_cast<int32_t>(trial % 64), 1}};
    Sampler host(64, {0});
    std::vector<float> host_logits = logits;
    const int32_t want = host.sample(seq, host_logits);
    const TokenLogprob want_lp = seq.new_logprobs.back();
    seq.new_logprobs.clear();

    DeviceSamplingBuilder builder(64, {0});
    SampleBatch batch;
    builder.add(seq, batch);
    const SampleResult out = run(logits, batch);
    EXPECT_EQ(DeviceSamplingBuilder::take(seq, batch, out, 0), want) << "trial " << trial;
    ASSERT_EQ(seq.new_logprobs.size(), 1u);
    EXPECT_NEAR(seq.new_logprobs[0].logprob, want_lp.logprob, 1e-5);
    ASSERT_EQ(seq.new_logprobs[0].top.size(), 3u);
    for (int j = 0; j < 3; ++j) {
      EXPECT_EQ(seq.new_logprobs[0].top[j].first, want_lp.top[j].first);
      EXPECT_NEAR(seq.new_logprobs[0].top[j].second, want_lp.top[j].second, 1e-5);
    }
  }
}

// Speculative decoding on the device: a row after proposals draws exactly what the row of the
// same sequence with those proposals generated draws (counter, min_tokens, penalties).
TEST_F(DeviceSampling, ARowAfterProposalsDrawsAsIfTheyWereGenerated) {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  std::uniform_int_distribution<int32_t> tok(0, 63);
  for (int trial = 0; trial < 200; ++trial) {
    std::vector<float> logits(64);
    for (float& l : logits) l = u(rng);
    SamplingParams sp;
    sp.temperature = 0.9f;
    sp.top_p = trial % 2 ? 0.8f : 1.0f;
    sp.repetition_penalty = trial % 3 ? 1.3f : 1.0f;
    sp.frequency_penalty = 0.5f * (trial % 2);
    sp.presence_penalty = trial % 4 ? 0.4f : 0.0f;
    sp.min_tokens = 4;  // reached by the proposals in some trials only
    sp.stop_token_ids = {static_cast<int32_t>(trial % 64)};
    sp.logprobs = 1;
    Sequence seq;
    seq.params = &sp;
    seq.tokens = {5, 6, 7};
    seq.prompt_len = 2;
    seq.output_counts = {{7, 1}};
    seq.sample_key = DeviceSamplingBuilder::key(trial, 0);
    std::vector<int32_t> proposed;
    for (int i = 0; i < trial % 5; ++i) proposed.push_back(i % 2 ? 7 : tok(rng));  // repeats too
    Sequence generated = seq;
    generated.tokens.insert(generated.tokens.end(), proposed.begin(), proposed.end());
    for (int32_t t : proposed) ++generated.output_counts[t];

    DeviceSamplingBuilder builder(64, {0});
    SampleBatch after, plain;
    builder.add(seq, after, proposed);
    builder.add(generated, plain);
    ASSERT_EQ(after.rows[0].counter, plain.rows[0].counter);
    const SampleResult a = run(logits, after), p = run(logits, plain);
    EXPECT_EQ(a.tokens[0], p.tokens[0]) << "trial " << trial;
    EXPECT_EQ(a.logprobs[0], p.logprobs[0]) << "trial " << trial;
    // And the same draw as the host Sampler's processing of those proposals gives (as verification
    // on the host sees it): same edits, so the same processed row.
    std::vector<float> host_row = logits;
    Sampler host(64, {0});
    host.process(seq, host_row, proposed);
    std::vector<float> device_row = logits;
    SampleBatch no_draw = after;
    no_draw.rows[0].temperature = 0.0f;  // greedy on the edited row: its argmax
    const SampleResult g = run(device_row, no_draw);
    EXPECT_EQ(g.tokens[0], static_cast<int32_t>(std::max_element(host_row.begin(), host_row.end()) - host_row.begin()))
        << "trial " << trial;
  }
}

// A grammar's bitmask (filled in by fill_masks) picks what the host Sampler's mask picks, and
// logprobs stay those of the raw logits; EOS only once the grammar accepts.
TEST_F(DeviceSampling, GrammarMasksMatchTheHostSampler) {
  std::vector<std::string> bytes = {""};  // id 0: EOS, no bytes
  const std::string alphabet = "ab1 ";
  for (int i = 1; i < 64; ++i) {  // one to three bytes of "ab1 "
    std::string b(1, alphabet[i % 4]);
    if (i % 5) b += alphabet[(i / 4) % 4];
    if (i % 7 == 0) b += alphabet[(i / 16) % 4];
    bytes.push_back(b);
  }
  auto vocab = std::make_shared<const structured::TokenVocab>(bytes);
  const auto grammar = structured::compile_regex("(ab|ba)+( 1)?");
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<float> u(-3.0f, 3.0f);
  for (int trial = 0; trial < 30; ++trial) {
    SamplingParams sp;
    sp.temperature = 0.0f;
    sp.logprobs = 2;
    sp.logit_bias = {{static_cast<int32_t>(trial % 64), 6.0f}};  // masked tokens stay masked
    Sequence seq;
    seq.params = &sp;
    seq.tokens = {1, 2};
    seq.prompt_len = 2;
    seq.constraint.emplace(grammar, vocab);
    Sampler host(64, {0});
    DeviceSamplingBuilder builder(64, {0});
    for (int step = 0; step < 6 && !seq.constraint->complete(); ++step) {
      std::vector<float> logits(64);
      for (float& l : logits) l = u(rng);
      std::vector<float> host_logits = logits;
      const int32_t want = host.sample(seq, host_logits);
      const TokenLogprob want_lp = seq.new_logprobs.back();
      seq.new_logprobs.clear();
      SampleBatch batch;
      builder.add(seq, batch);
      ASSERT_TRUE(builder.has_masks());
      builder.fill_masks(batch);
      ASSERT_EQ(batch.num_masks(), 1);
      const SampleResult out = run(logits, batch);
      ASSERT_EQ(DeviceSamplingBuilder::take(seq, batch, out, 0), want) << "trial " << trial << " step " << step;
      EXPECT_NEAR(seq.new_logprobs.back().logprob, want_lp.logprob, 1e-5);
      seq.new_logprobs.clear();
      if (want == 0) break;
      ASSERT_TRUE(seq.constraint->advance(want));
      seq.tokens.push_back(want);
    }
  }
}

// A row's draw depends on its key and counter only, not on its place in the batch.
TEST_F(DeviceSampling, SeededDrawsDoNotDependOnTheBatch) {
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.top_p = 0.9f;
  SampleBatch alone, mixed;
  DeviceSamplingBuilder builder(8, {});
  Sequence seq, other;
  seq.params = other.params = &sp;
  seq.tokens = other.tokens = {1};
  seq.prompt_len = other.prompt_len = 1;
  seq.sample_key = DeviceSamplingBuilder::key(7, 0);
  for (int i = 0; i < 200; ++i) {
    seq.tokens.push_back(1);  // counter = output length
    builder.add(seq, alone);
    other.sample_key = DeviceSamplingBuilder::key(1000 + i, 0);
    builder.add(other, mixed);
    builder.add(seq, mixed);
  }
  const SampleResult a = run(test_logits(), alone), m = run(test_logits(), mixed);
  for (int i = 0; i < 200; ++i) EXPECT_EQ(a.tokens[i], m.tokens[2 * i + 1]) << i;
}

TEST(DeviceSamplingEngine, GreedyMatchesTransformersAndSeedsReproduceAcrossBatches) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::path(FERRUM_SOURCE_DIR) / "tests/fixtures/models/tiny-llama";
  std::ifstream in(dir / "reference.json");
  const json ref = json::parse(in);
  auto model = std::make_shared<SamplesOnDevice>(load_model(dir.string(), 2));
  std::shared_ptr<const Tokenizer> tok = Tokenizer::from_dir(dir.string());
  EngineOptions o;
  o.num_kv_blocks = 64;
  auto engine = Engine::create(model, tok, o);
  std::vector<std::shared_ptr<RequestStream>> greedy;
  std::vector<std::vector<int32_t>> want;
  for (const auto& p : ref["prompts"]) {
    SamplingParams sp;
    sp.temperature = 0.0f;
    sp.ignore_eos = true;
    want.push_back(p["greedy_ids"].get<std::vector<int32_t>>());
    sp.max_tokens = static_cast<int32_t>(want.back().size());
    greedy.push_back(engine->submit(p["prompt_ids"].get<std::vector<int32_t>>(), sp));
  }
  for (size_t i = 0; i < greedy.size(); ++i) EXPECT_EQ(collect(*greedy[i]).completions[0].tokens, want[i]) << i;

  // A seeded request alone, then among 7 others: the same tokens.
  const std::vector<int32_t> prompt = ref["prompts"][0]["prompt_ids"].get<std::vector<int32_t>>();
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.top_p = 0.95f;
  sp.max_tokens = 24;
  sp.ignore_eos = true;
  sp.seed = 1234;
  const auto alone = collect(*engine->submit(prompt, sp)).completions[0].tokens;
  std::vector<std::shared_ptr<RequestStream>> crowd;
  for (int i = 0; i < 8; ++i) {
    SamplingParams other = sp;
    other.seed = i == 3 ? 1234 : 99 + i;
    crowd.push_back(engine->submit(prompt, other));
  }
  std::vector<std::vector<int32_t>> got;
  for (auto& s : crowd) got.push_back(collect(*s).completions[0].tokens);
  EXPECT_EQ(got[3], alone);
  EXPECT_NE(got[2], alone);  // other seeds draw other tokens (24 draws: a clash is ~impossible)
}

}  // namespace
}  // namespace ferrum::testing
