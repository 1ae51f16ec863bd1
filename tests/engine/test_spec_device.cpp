// Speculative decoding where the model samples (its device; here the CPU reference through
// SamplesOnDevice): steps that propose nothing stay on the device-sampling path and overlap as
// without speculation, n-gram proposals are verified by the model's own picks, a draft's on the
// host. Greedy ids must be the reference's, seeded requests exactly those of plain decoding on
// that path, the draft's KV exact across steps that did not speculate, and a workload whose
// n-gram lookup never matches must run overlapped.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "engine_test_util.h"
#include "samples_on_device.h"

namespace ferrum::testing {
namespace {

using namespace std::chrono_literals;

struct DeviceHarness {
  std::shared_ptr<FakeModel> model;  // the target, inside `sampling`
  std::shared_ptr<Model> sampling;
  std::shared_ptr<FakeTokenizer> tok;
  std::unique_ptr<Engine> engine;

  DeviceHarness(EngineOptions o, std::shared_ptr<FakeModel> target = std::make_shared<FakeModel>(),
                bool with_tokenizer = true)
      : model(std::move(target)), sampling(std::make_shared<SamplesOnDevice>(model)) {
    if (with_tokenizer) tok = std::make_shared<FakeTokenizer>();
    engine = Engine::create(sampling, tok, o);
  }
  std::vector<Collected> run_all(const std::vector<std::vector<int32_t>>& prompts, const std::vector<SamplingParams>& ps) {
    std::vector<std::shared_ptr<RequestStream>> streams;
    model->pause();  // all submitted before the first step: they share steps
    for (size_t i = 0; i < prompts.size(); ++i) streams.push_back(engine->submit(prompts[i], ps[i]));
    model->resume();
    std::vector<Collected> out;
    for (size_t i = 0; i < streams.size(); ++i) out.push_back(collect(*streams[i], ps[i].n));
    return out;
  }
  // Stats once the engine has published its state after the last request.
  EngineStats idle_stats() {
    for (int i = 0; i < 400; ++i) {
      const EngineStats s = engine->stats();
      if (s.running == 0 && s.waiting == 0 && s.kv_blocks_used == 0) return s;
      std::this_thread::sleep_for(5ms);
    }
    return engine->stats();
  }
};

EngineOptions device_spec_options(int32_t k, bool ngram, std::shared_ptr<Model> draft, int32_t num_blocks = 512) {
  EngineOptions o;
  o.block_size = 4;
  o.num_kv_blocks = num_blocks;
  o.max_num_batched_tokens = 48;  // chunked prefill
  o.max_num_seqs = 32;
  o.speculative.num_tokens = k;
  o.speculative.ngram = ngram;
  o.speculative.ngram_min = 1;  // random models rarely repeat longer n-grams: exercise proposals
  o.speculative.draft = std::move(draft);
  o.speculative.max_batch = 0;
  o.speculative.adaptive = false;  // every step proposes (the adaptive policy: below)
  return o;
}

std::vector<int32_t> periodic_prompt(std::mt19937& rng, int32_t period, int32_t len) {
  const std::vector<int32_t> motif = ascii_prompt(rng, period);
  std::vector<int32_t> p;
  while (static_cast<int32_t>(p.size()) < len) p.push_back(motif[p.size() % motif.size()]);
  return p;
}

// A draft that is not the target: its logits flattened and tilted.
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

// Greedy with batching, chunked prefill, prefix hits, preemption (a small pool) and EOS stops:
// the unpaged reference's ids, no wrong slot read, every block free at the end.
EngineStats expect_greedy_exact(const EngineOptions& o, const std::string& what) {
  DeviceHarness h(o);
  std::mt19937 rng(11);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<SamplingParams> ps;
  for (int i = 0; i < 24; ++i) {
    prompts.push_back(i % 3 == 0                      ? periodic_prompt(rng, 5, 9 + i)
                      : prompts.empty() || i % 3 == 2 ? ascii_prompt(rng, 6 + i)
                                                      : prompts.back());
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
  }
  EXPECT_EQ(h.model->violations.load(), 0) << what;
  const EngineStats s = h.idle_stats();
  EXPECT_EQ(s.kv_blocks_used, 0) << what;
  EXPECT_GT(s.spec_drafts, 0u) << what;
  EXPECT_GT(s.device_sampled_steps, 0u) << what;
  if (o.num_kv_blocks < 64) {
    EXPECT_GT(s.preemptions, 0u) << what;
  }
  if (auto draft = std::dynamic_pointer_cast<FakeModel>(o.speculative.draft)) {
    EXPECT_EQ(draft->violations.load(), 0) << what;
  }
  return s;
}

TEST(SpecOnDeviceSampling, NgramGreedyIdsAreTheReferenceAndNeverLeaveTheDevicePath) {
  for (int32_t blocks : {512, 40}) {
    const std::string what = "ngram, " + std::to_string(blocks) + " blocks";
    const EngineStats s = expect_greedy_exact(device_spec_options(blocks == 512 ? 3 : 5, true, nullptr, blocks), what);
    EXPECT_EQ(s.host_sampled_steps, 0u) << what;  // verified by the model's picks
  }
}

// A draft's proposals are verified on the host; the steps that propose nothing (prompt chunks,
// and above max_batch) run on the device path, and the draft catches up after them: a
// self-draft's proposals are then still all accepted (its KV exact).
TEST(SpecOnDeviceSampling, DraftProposalsAreVerifiedOnTheHostAndTheDraftCatchesUp) {
  EngineStats s = expect_greedy_exact(device_spec_options(3, false, std::make_shared<PerturbedFakeModel>()),
                                      "perturbed draft");
  EXPECT_GT(s.host_sampled_steps, 0u);
  for (int32_t max_batch : {0, 4}) {
    EngineOptions o = device_spec_options(4, false, std::make_shared<FakeModel>(), 40);
    o.speculative.max_batch = max_batch;  // 4: speculation pauses while more run
    const std::string what = "self draft, max batch " + std::to_string(max_batch);
    s = expect_greedy_exact(o, what);
    EXPECT_EQ(s.spec_accepted_tokens, s.spec_draft_tokens) << what;
    EXPECT_GT(s.host_sampled_steps, 0u) << what;
    EXPECT_GT(s.device_sampled_steps, 0u) << what;
  }
}

// One load of seeded requests (filters, penalties, min_tokens, a stop id, logprobs, n = 2) on
// a model that repeats itself (many proposals, some rejected): with n-gram speculation, always
// proposing or adaptive, overlapped or not, under preemption or not, every token and logprob is
// plain decoding's.
TEST(SpecOnDeviceSampling, SeededRequestsAreThoseOfPlainDecoding) {
  std::mt19937 rng(4);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<SamplingParams> ps;
  for (int i = 0; i < 8; ++i) {
    prompts.push_back(i % 2 ? periodic_prompt(rng, 4, 20) : ascii_prompt(rng, 12));
    SamplingParams p;
    p.temperature = 0.8f;
    p.top_p = i % 3 ? 0.9f : 1.0f;
    p.frequency_penalty = i % 2 ? 0.3f : 0.0f;
    p.repetition_penalty = i == 2 ? 1.2f : 1.0f;
    p.min_tokens = i == 4 ? 10 : 0;
    p.max_tokens = 40;
    p.ignore_eos = true;
    p.logprobs = i % 2 ? 2 : std::optional<int32_t>{};
    p.n = i == 5 ? 2 : 1;
    p.seed = 100 + i;
    ps.push_back(p);
  }
  auto repeating_model = [] {
    auto m = std::make_shared<FakeModel>();
    m->copy_period.store(4);
    m->copy_bonus.store(6.0f);
    return m;
  };
  EngineOptions plain = device_spec_options(3, true, nullptr);
  plain.speculative = SpeculativeOptions{};
  // Request 4 stops at its 13th token's id (masked before its 10th): found by a first run.
  ps[4].stop_token_ids = {DeviceHarness(plain, repeating_model()).run_all(prompts, ps)[4].completions[0].tokens[12]};
  const auto want = DeviceHarness(plain, repeating_model()).run_all(prompts, ps);
  ASSERT_EQ(want[4].completions[0].finish, FinishReason::Stop);
  ASSERT_GE(want[4].completions[0].tokens.size(), 11u);
  for (int mode = 0; mode < 4; ++mode) {
    EngineOptions o = device_spec_options(3, true, nullptr, mode == 3 ? 40 : 512);
    o.speculative.adaptive = mode == 2;
    o.overlap = mode != 1;
    const std::string what = mode == 0   ? "always"
                             : mode == 1 ? "always, no overlap"
                             : mode == 2 ? "adaptive"
                                         : "always, preemption";
    DeviceHarness h(o, repeating_model());
    const auto got = h.run_all(prompts, ps);
    for (size_t i = 0; i < prompts.size(); ++i)
      for (size_t c = 0; c < want[i].completions.size(); ++c) {
        const Completion& a = want[i].completions[c];
        const Completion& b = got[i].completions[c];
        EXPECT_EQ(b.tokens, a.tokens) << what << " request " << i << " completion " << c;
        EXPECT_EQ(b.finish, a.finish) << what << " request " << i;
        ASSERT_EQ(b.logprobs.size(), a.logprobs.size()) << what << " request " << i;
        for (size_t t = 0; t < a.logprobs.size(); ++t) {
          EXPECT_EQ(b.logprobs[t].logprob, a.logprobs[t].logprob) << what << " request " << i << " token " << t;
          EXPECT_EQ(b.logprobs[t].top, a.logprobs[t].top) << what << " request " << i << " token " << t;
        }
      }
    const EngineStats s = h.idle_stats();
    EXPECT_EQ(s.kv_blocks_used, 0) << what;
    EXPECT_EQ(h.model->violations.load(), 0) << what;
    EXPECT_EQ(s.host_sampled_steps, 0u) << what;
    if (mode != 2) {  // always proposing: many accepted, some rejected
      EXPECT_GT(s.spec_accepted_tokens, 40u) << what;
      EXPECT_LT(s.spec_accepted_tokens, s.spec_draft_tokens) << what;
    }
    if (mode == 3) {
      EXPECT_GT(s.preemptions, 0u) << what;
    }
  }
}

// Prompts of distinct tokens from a large vocabulary, sampled: n-gram lookup (n >= 2) never
// matches. Requests one at a time (c = 1) and four at a time: the steps overlap as they do
// without speculation, and nothing is verified.
TEST(SpecOnDeviceSampling, ANeverMatchingWorkloadRunsOverlapped) {
  const int32_t vocab = 4096;
  std::mt19937 rng(6);
  std::uniform_int_distribution<int32_t> token(3, vocab - 1);
  std::vector<std::vector<int32_t>> prompts(8);
  for (auto& p : prompts)
    for (int i = 0; i < 24; ++i) p.push_back(token(rng));
  SamplingParams p;
  p.temperature = 1.0f;
  p.max_tokens = 64;
  p.ignore_eos = true;
  auto run = [&](bool speculate) {
    EngineOptions o;
    o.block_size = 16;
    o.num_kv_blocks = 256;
    if (speculate) {
      o.speculative.num_tokens = 3;
      o.speculative.ngram = true;  // default n = 2..3, adaptive
    }
    DeviceHarness h(o, std::make_shared<FakeModel>(vocab), false);
    std::vector<std::vector<int32_t>> tokens;
    for (size_t i = 0; i < prompts.size(); ++i) {  // c = 1
      SamplingParams q = p;
      q.seed = i;
      tokens.push_back(collect(*h.engine->submit(prompts[i], q)).completions[0].tokens);
    }
    std::vector<std::shared_ptr<RequestStream>> streams;  // c = 4
    for (size_t i = 0; i < 4; ++i) {
      SamplingParams q = p;
      q.seed = 50 + i;
      streams.push_back(h.engine->submit(prompts[i], q));
    }
    for (auto& s : streams) tokens.push_back(collect(*s).completions[0].tokens);
    return std::make_pair(tokens, h.idle_stats());
  };
  const auto [plain_tokens, plain] = run(false);
  const auto [spec_tokens, spec] = run(true);
  EXPECT_EQ(spec_tokens, plain_tokens);
  EXPECT_EQ(spec.spec_draft_tokens, 0u);
  EXPECT_EQ(spec.host_sampled_steps, 0u);
  ASSERT_GT(plain.overlapped_steps, 0u);
  const double plain_share = double(plain.overlapped_steps) / double(plain.device_sampled_steps);
  const double spec_share = double(spec.overlapped_steps) / double(spec.device_sampled_steps);
  EXPECT_GT(plain_share, 0.9);
  EXPECT_GE(spec_share, plain_share - 0.02) << spec.overlapped_steps << " of " << spec.device_sampled_steps
                                            << " steps overlapped, without speculation " << plain.overlapped_steps
                                            << " of " << plain.device_sampled_steps;
}

// On a model that repeats itself, with a step cost that grows with its tokens, adaptive lookup
// keeps proposing where proposals are accepted (the lookup one token behind finds them); the
// ids stay the reference's.
TEST(SpecOnDeviceSampling, AdaptiveLookupSpeculatesWhereProposalsPay) {
  EngineOptions o = device_spec_options(3, true, nullptr);
  o.speculative.adaptive = true;
  o.speculative.ngram_min = 2;
  auto model = std::make_shared<FakeModel>();
  model->copy_period.store(5);
  model->step_delay_us.store(500);
  model->token_delay_us.store(50);
  DeviceHarness h(o, model);
  std::mt19937 rng(9);
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = 64;
  p.ignore_eos = true;
  std::vector<std::vector<int32_t>> got;
  std::vector<std::vector<int32_t>> prompts;
  for (int i = 0; i < 3; ++i) {
    prompts.push_back(periodic_prompt(rng, 5, 20));
    got.push_back(collect(*h.engine->submit(prompts.back(), p)).completions[0].tokens);
  }
  EngineOptions plain = o;
  plain.speculative = SpeculativeOptions{};
  DeviceHarness ref(plain, [] {
    auto m = std::make_shared<FakeModel>();
    m->copy_period.store(5);
    return m;
  }());
  for (size_t i = 0; i < prompts.size(); ++i)
    EXPECT_EQ(got[i], collect(*ref.engine->submit(prompts[i], p)).completions[0].tokens) << "request " << i;
  const EngineStats s = h.idle_stats();
  EXPECT_GT(s.spec_accepted_tokens, 60u) << s.spec_draft_tokens << " proposed";
  EXPECT_EQ(s.host_sampled_steps, 0u);
  EXPECT_EQ(h.model->violations.load(), 0);
}

}  // namespace
}  // namespace ferrum::testing
