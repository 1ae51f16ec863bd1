// The engine end to end with FakeModel: outputs must equal the unpaged, unbatched reference
// whatever the batch composition, cache state or KV pressure.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "engine_test_util.h"

namespace ferrum::testing {
namespace {

using namespace std::chrono_literals;

struct Harness {
  std::shared_ptr<FakeModel> model = std::make_shared<FakeModel>();
  std::shared_ptr<FakeTokenizer> tok = std::make_shared<FakeTokenizer>();
  std::unique_ptr<Engine> engine;

  explicit Harness(EngineOptions o = small_options()) { engine = Engine::create(model, tok, o); }
  static EngineOptions small_options() {
    EngineOptions o;
    o.block_size = 4;
    o.num_kv_blocks = 512;
    o.max_num_batched_tokens = 48;  // forces chunked prefill
    o.max_num_seqs = 32;
    return o;
  }
  Collected run(const std::vector<int32_t>& prompt, const SamplingParams& p) {
    auto stream = engine->submit(prompt, p);
    return collect(*stream, p.n);
  }
  // Submits all, then drains: they run concurrently in the engine.
  std::vector<Collected> run_all(const std::vector<std::vector<int32_t>>& prompts,
                                 const std::vector<SamplingParams>& params) {
    std::vector<std::shared_ptr<RequestStream>> streams;
    model->pause();  // at most the first request's first step runs before all are queued
    for (size_t i = 0; i < prompts.size(); ++i) streams.push_back(engine->submit(prompts[i], params[i]));
    model->resume();
    std::vector<Collected> out;
    for (size_t i = 0; i < streams.size(); ++i) out.push_back(collect(*streams[i], params[i].n));
    return out;
  }
  // Stats are published after each engine iteration; wait until no block is in use.
  int32_t used_blocks_when_idle() {
    for (int i = 0; i < 200; ++i) {
      auto s = engine->stats();
      if (s.running == 0 && s.waiting == 0 && s.kv_blocks_used == 0) return 0;
      std::this_thread::sleep_for(5ms);
    }
    return engine->stats().kv_blocks_used;
  }
};

SamplingParams greedy(int32_t max_tokens, bool ignore_eos = false) {
  SamplingParams p;
  p.temperature = 0.0f;
  p.max_tokens = max_tokens;
  p.ignore_eos = ignore_eos;
  return p;
}

void expect_matches(const Completion& got, const Completion& ref, const std::string& what) {
  EXPECT_EQ(got.tokens, ref.tokens) << what;
  EXPECT_EQ(got.text, ref.text) << what;
  EXPECT_EQ(got.finish, ref.finish) << what;
}

TEST(Engine, GreedyOutputIsTheSameAloneAndInABatchOf16) {
  std::mt19937 rng(1);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<SamplingParams> params;
  for (int i = 0; i < 16; ++i) {
    prompts.push_back(ascii_prompt(rng, 1 + i * 7));  // 1 .. 106 tokens
    params.push_back(greedy(40 + i % 5, i % 2 == 0));
  }
  EngineOptions o = Harness::small_options();
  o.max_num_batched_tokens = 128;
  o.enable_prefix_caching = false;
  Harness h(o);
  std::vector<Completion> alone;
  for (int i = 0; i < 16; ++i) {
    auto ref = reference_greedy(prompts[i], params[i].max_tokens, *h.model, *h.tok, params[i].ignore_eos);
    auto c = h.run(prompts[i], params[i]);
    ASSERT_TRUE(c.finished);
    expect_matches(c.completions[0], ref, "alone #" + std::to_string(i));
    alone.push_back(c.completions[0]);
  }
  EXPECT_EQ(h.model->max_seqs_in_batch.load(), 1);
  auto batch = h.run_all(prompts, params);
  for (int i = 0; i < 16; ++i) expect_matches(batch[i].completions[0], alone[i], "batched #" + std::to_string(i));
  EXPECT_GE(h.model->max_seqs_in_batch.load(), 12);
  EXPECT_LE(h.model->max_tokens_in_batch.load(), 128);
  EXPECT_EQ(h.model->violations.load(), 0);
  EXPECT_EQ(h.used_blocks_when_idle(), 0);
}

TEST(Engine, CallbackDrivenStreamsSeeEveryOutput) {
  // The server's way of reading: no blocking next(); the ready callback (on the engine thread)
  // wakes a reader that drains with try_next() until done().
  Harness h;
  std::mt19937 rng(11);
  constexpr int kRequests = 12;
  std::vector<std::vector<int32_t>> prompts;
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::mutex mu;
  std::condition_variable cv;
  std::atomic<int> callbacks{0};
  h.model->pause();
  for (int i = 0; i < kRequests; ++i) {
    prompts.push_back(ascii_prompt(rng, 5 + 3 * i));
    streams.push_back(h.engine->submit(prompts.back(), greedy(8 + i, true)));
    streams.back()->set_on_ready([&] {
      ++callbacks;
      std::lock_guard lock(mu);
      cv.notify_all();
    });
  }
  h.model->resume();
  std::vector<Collected> got(kRequests);
  for (auto& g : got) g.completions.resize(1);
  auto all_done = [&] {
    for (auto& s : streams)
      if (!s->done()) return false;
    return true;
  };
  while (!all_done()) {
    bool any = false;
    for (int i = 0; i < kRequests; ++i)
      while (auto out = streams[i]->try_next()) add_output(got[i], *out), any = true;
    if (!any) {
      std::unique_lock lock(mu);
      cv.wait_for(lock, 5ms);
    }
  }
  for (int i = 0; i < kRequests; ++i) {
    EXPECT_TRUE(got[i].finished);
    EXPECT_FALSE(streams[i]->try_next().has_value());
    expect_matches(got[i].completions[0], reference_greedy(prompts[i], 8 + i, *h.model, *h.tok, true),
                   "request #" + std::to_string(i));
  }
  int outputs = 0;
  for (auto& g : got) outputs += g.num_outputs;
  EXPECT_GE(callbacks.load(), outputs);  // one per output pushed (set_on_ready may add one)
  for (auto& s : streams) s->set_on_ready(nullptr);
}

TEST(Engine, RepeatedPromptHitsThePrefixCache) {
  Harness h;
  std::mt19937 rng(2);
  auto prompt = ascii_prompt(rng, 41);
  auto ref = reference_greedy(prompt, 10, *h.model, *h.tok, true);
  auto first = h.run(prompt, greedy(10, true));
  EXPECT_EQ(first.num_outputs, 10);  // streamed: one output per generated token
  EXPECT_EQ(first.cached_tokens, 0);
  EXPECT_EQ(first.prompt_tokens, 41);
  auto second = h.run(prompt, greedy(10, true));
  EXPECT_EQ(second.cached_tokens, 40);  // 10 full blocks of 4
  expect_matches(first.completions[0], ref, "first");
  expect_matches(second.completions[0], ref, "second");
  // A prompt that extends the first one's output reuses its generated blocks too.
  std::vector<int32_t> longer = prompt;
  longer.insert(longer.end(), ref.tokens.begin(), ref.tokens.end());
  longer.push_back(5);
  auto third = h.run(longer, greedy(5, true));
  EXPECT_EQ(third.cached_tokens, 48);  // 41 + 9 computed tokens -> 12 full blocks
  expect_matches(third.completions[0], reference_greedy(longer, 5, *h.model, *h.tok, true), "third");
  auto s = h.engine->stats();
  EXPECT_EQ(s.prefix_cache_hits, 88u);
  EXPECT_EQ(h.model->violations.load(), 0);
}

TEST(Engine, PoolTooSmallForAllCompletesEveryRequestThroughPreemption) {
  EngineOptions o = Harness::small_options();
  o.num_kv_blocks = 24;  // 96 token slots; each request needs up to 49
  Harness h(o);
  std::mt19937 rng(3);
  std::vector<std::vector<int32_t>> prompts;
  std::vector<SamplingParams> params;
  for (int i = 0; i < 8; ++i) {
    prompts.push_back(ascii_prompt(rng, 12 + 2 * i));
    params.push_back(greedy(30, true));
  }
  auto out = h.run_all(prompts, params);
  for (int i = 0; i < 8; ++i) {
    auto ref = reference_greedy(prompts[i], 30, *h.model, *h.tok, true);
    expect_matches(out[i].completions[0], ref, "request " + std::to_string(i));
  }
  EXPECT_GT(h.engine->stats().preemptions, 0u);
  EXPECT_EQ(h.model->violations.load(), 0);
  EXPECT_EQ(h.used_blocks_when_idle(), 0);
}

TEST(Engine, RequestTooLargeForThePoolFailsWhileOthersFinish) {
  EngineOptions o = Harness::small_options();
  o.num_kv_blocks = 16;    // 64 token slots
  o.max_model_len = 4096;  // explicitly above the pool: the engine must fail the request itself
  Harness h(o);
  std::mt19937 rng(4);
  std::vector<std::vector<int32_t>> prompts{ascii_prompt(rng, 10), ascii_prompt(rng, 50), ascii_prompt(rng, 20)};
  std::vector<SamplingParams> params{greedy(20, true), greedy(30, true), greedy(20, true)};
  auto out = h.run_all(prompts, params);
  EXPECT_EQ(out[1].completions[0].finish, FinishReason::Error);
  EXPECT_NE(out[1].completions[0].error.find("KV cache"), std::string::npos) << out[1].completions[0].error;
  EXPECT_TRUE(out[1].completions[0].tokens.empty());
  EXPECT_TRUE(out[1].finished);
  for (int i : {0, 2})
    expect_matches(out[i].completions[0], reference_greedy(prompts[i], 20, *h.model, *h.tok, true),
                   "request " + std::to_string(i));
}

TEST(Engine, DefaultContextIsCappedToTheKvPool) {
  EngineOptions o = Harness::small_options();
  o.num_kv_blocks = 16;
  Harness h(o);
  EXPECT_EQ(h.engine->max_model_len(), 64);
  EXPECT_THROW(h.engine->submit(std::vector<int32_t>(50, 3), greedy(15)), InvalidRequest);
  auto ok = h.run(std::vector<int32_t>(50, 3), greedy(14, true));
  EXPECT_EQ(ok.completions[0].finish, FinishReason::Length);
  o.num_kv_blocks = 5000;
  EXPECT_EQ(Harness(o).engine->max_model_len(), 4096);  // the model's own limit
}

TEST(Engine, SeededSamplingIsReproducibleAcrossBatchCompositions) {
  Harness h;
  std::mt19937 rng(5);
  SamplingParams p;
  p.temperature = 0.9f;
  p.top_p = 0.95f;
  p.top_k = 20;
  p.seed = 1234;
  p.max_tokens = 24;
  p.ignore_eos = true;
  p.n = 3;
  auto prompt = ascii_prompt(rng, 30);
  auto alone = h.run(prompt, p);
  // The n completions draw from different streams.
  EXPECT_NE(alone.completions[0].tokens, alone.completions[1].tokens);

  std::vector<std::vector<int32_t>> prompts;
  std::vector<SamplingParams> params;
  for (int i = 0; i < 10; ++i) {
    prompts.push_back(ascii_prompt(rng, 5 + 9 * i));
    SamplingParams other = p;
    other.seed.reset();  // random seeds
    other.n = 1 + i % 2;
    params.push_back(other);
    if (i == 4) {
      prompts.push_back(prompt);
      params.push_back(p);
    }
  }
  auto batch = h.run_all(prompts, params);
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(batch[5].completions[k].tokens, alone.completions[k].tokens) << "completion " << k;
    EXPECT_EQ(batch[5].completions[k].text, alone.completions[k].text);
  }
  // Unseeded requests differ from run to run.
  SamplingParams unseeded = p;
  unseeded.seed.reset();
  unseeded.n = 1;
  EXPECT_NE(h.run(prompt, unseeded).completions[0].tokens, h.run(prompt, unseeded).completions[0].tokens);
}

TEST(Engine, NCompletionsShareThePromptAndMatchTheReference) {
  for (bool caching : {false, true}) {
    EngineOptions o = Harness::small_options();
    o.enable_prefix_caching = caching;
    Harness h(o);
    std::mt19937 rng(6);
    auto prompt = ascii_prompt(rng, 70);
    SamplingParams p = greedy(8, true);
    p.n = 4;
    auto out = h.run(prompt, p);
    auto ref = reference_greedy(prompt, 8, *h.model, *h.tok, true);
    for (int k = 0; k < 4; ++k) expect_matches(out.completions[k], ref, "completion " + std::to_string(k));
    // Prompt computed once, plus at most a block's worth per extra completion.
    EXPECT_LE(h.model->tokens_seen.load(), 70 + 3 * 4 + 4 * 8);
    EXPECT_EQ(h.model->violations.load(), 0);
    EXPECT_EQ(h.used_blocks_when_idle(), 0);
  }
}

}  // namespace
}  // namespace ferrum::testing
