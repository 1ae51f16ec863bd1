// Overlapped steps (EngineOptions::overlap): the engine issues step N+1 before it takes step
// N's tokens, which then reach step N+1 on the model's side. On the CPU the model picks tokens
// with the reference sampler (EngineOptions::model_sampling), so CI runs the same engine path
// as a GPU. Outputs must not change: greedy ids as transformers', and every request of a mixed
// load (stop strings and ids, n, seeds, logprobs, penalties, min_tokens) the same with and
// without overlap, under preemption; aborts end a request at once and free its blocks.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <future>
#include <thread>

#include "engine_test_util.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::testing {
namespace {

namespace fs = std::filesystem;

fs::path fixture(const std::string& name) { return fs::path(FERRUM_SOURCE_DIR) / "tests/fixtures/models" / name; }

EngineOptions model_sampling(bool overlap, int32_t kv_blocks, int32_t overlap_max_step_tokens = 512) {
  EngineOptions o;
  o.model_sampling = true;
  o.overlap = overlap;
  o.overlap_max_step_tokens = overlap_max_step_tokens;
  o.block_size = 16;
  o.max_num_batched_tokens = 40;  // prompts are chunked
  o.num_kv_blocks = kv_blocks;
  return o;
}

// The blocks in use once the engine has published its state after the last request (stats
// are published after each step, a moment after the request's last output).
int32_t blocks_in_use_when_idle(const Engine& engine) {
  for (int i = 0; i < 200 && engine.stats().kv_blocks_used != 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  return engine.stats().kv_blocks_used;
}

class OverlapFixtures : public ::testing::TestWithParam<std::string> {};

// 16 concurrent greedy requests on 24 blocks (they need ~80): chunked prefill, prefix hits and
// preemption, with every step overlapped.
TEST_P(OverlapFixtures, GreedyMatchesTransformersUnderKvPressure) {
  const fs::path dir = fixture(GetParam());
  auto refs = load_references(dir);
  std::shared_ptr<Model> model = load_model(dir.string(), 2);
  // Overlapped always, after short steps only (prompt chunks are waited for), and never.
  for (int mode = 0; mode < 3; ++mode) {
    const bool overlap = mode < 2;
    auto engine =
        Engine::create(model, Tokenizer::from_dir(dir.string()), model_sampling(overlap, 24, mode == 1 ? 4 : 512));
    std::vector<std::shared_ptr<RequestStream>> streams;
    std::vector<const Reference*> expected;
    for (int copy = 0; copy < 4; ++copy)
      for (const Reference& r : refs) {
        SamplingParams p = greedy_like(r);
        streams.push_back(engine->submit(r.prompt, p));
        expected.push_back(&r);
      }
    for (size_t i = 0; i < streams.size(); ++i) {
      auto c = collect(*streams[i]);
      EXPECT_EQ(c.completions[0].tokens, expected[i]->greedy) << GetParam() << " overlap " << overlap << " request " << i;
      EXPECT_EQ(c.completions[0].text, expected[i]->greedy_text) << GetParam() << " overlap " << overlap;
      EXPECT_EQ(c.completions[0].finish, FinishReason::Length);
    }
    const EngineStats s = engine->stats();
    EXPECT_GT(s.preemptions, 0u) << "overlap " << overlap;
    EXPECT_EQ(blocks_in_use_when_idle(*engine), 0) << "overlap " << overlap;
  }
}

INSTANTIATE_TEST_SUITE_P(Engine, OverlapFixtures, ::testing::Values("tiny-llama", "tiny-qwen3", "tiny-qwen3-moe"));

// One request of every kind, all at once, with and without overlap: the same outputs.
TEST(Overlap, MixedRequestsGiveTheSameOutputsWithAndWithoutOverlap) {
  const fs::path dir = fixture("tiny-llama");
  auto refs = load_references(dir);
  std::shared_ptr<Model> model = load_model(dir.string(), 2);
  std::shared_ptr<const Tokenizer> tok = Tokenizer::from_dir(dir.string());
  const Reference& r0 = refs[0];
  const Reference& r1 = refs[1 % refs.size()];

  std::vector<std::pair<std::vector<int32_t>, SamplingParams>> load;
  auto add = [&](const std::vector<int32_t>& prompt, SamplingParams p) { load.emplace_back(prompt, std::move(p)); };
  SamplingParams greedy;
  greedy.temperature = 0.0f;
  greedy.max_tokens = 24;
  greedy.ignore_eos = true;
  {  // a stop string from the middle of the greedy text: the text ends right before it
    SamplingParams p = greedy;
    const std::string text = r0.greedy_text;
    p.stop = {text.substr(text.size() / 2, 3)};
    add(r0.prompt, p);
  }
  {  // a stop id: the sixth greedy token
    SamplingParams p = greedy;
    p.stop_token_ids = {r1.greedy[5]};
    add(r1.prompt, p);
  }
  {  // n = 3 seeded samples with logprobs
    SamplingParams p;
    p.n = 3;
    p.temperature = 0.9f;
    p.top_p = 0.95f;
    p.seed = 42;
    p.max_tokens = 20;
    p.ignore_eos = true;
    p.logprobs = 2;
    add(r0.prompt, p);
  }
  {  // penalties see every earlier token: these steps wait for the one in flight
    SamplingParams p = greedy;
    p.repetition_penalty = 1.3f;
    p.presence_penalty = 0.5f;
    p.frequency_penalty = 0.3f;
    add(r1.prompt, p);
  }
  {  // min_tokens masks the stop id for the first 8 tokens
    SamplingParams p = greedy;
    p.min_tokens = 8;
    p.stop_token_ids = {r0.greedy[2]};
    add(r0.prompt, p);
  }
  for (int i = 0; i < 6; ++i) {  // and some plain traffic of every length
    SamplingParams p = greedy;
    p.max_tokens = 1 + 5 * i;
    add(refs[i % refs.size()].prompt, p);
  }

  std::vector<std::vector<Collected>> runs;
  for (int mode = 0; mode < 3; ++mode) {  // without overlap, overlapped always, after short steps only
    auto engine = Engine::create(model, tok, model_sampling(mode > 0, 40, mode == 2 ? 4 : 512));
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (auto& [prompt, p] : load) streams.push_back(engine->submit(prompt, p));
    runs.emplace_back();
    for (size_t i = 0; i < streams.size(); ++i) runs.back().push_back(collect(*streams[i], load[i].second.n));
  }
  for (size_t i = 0; i < load.size() * 2; ++i) {
    const auto& a = runs[0][i % load.size()].completions;
    const auto& b = runs[1 + i / load.size()][i % load.size()].completions;
    ASSERT_EQ(a.size(), b.size());
    for (size_t k = 0; k < a.size(); ++k) {
      EXPECT_EQ(a[k].tokens, b[k].tokens) << "request " << i << " completion " << k;
      EXPECT_EQ(a[k].text, b[k].text) << "request " << i;
      EXPECT_EQ(a[k].finish, b[k].finish) << "request " << i;
      EXPECT_EQ(a[k].stop_reason, b[k].stop_reason) << "request " << i;
      ASSERT_EQ(a[k].logprobs.size(), b[k].logprobs.size()) << "request " << i;
      for (size_t t = 0; t < a[k].logprobs.size(); ++t) {
        EXPECT_EQ(a[k].logprobs[t].token_id, b[k].logprobs[t].token_id);
        EXPECT_NEAR(a[k].logprobs[t].logprob, b[k].logprobs[t].logprob, 1e-4);
        ASSERT_EQ(a[k].logprobs[t].top.size(), 2u);
      }
    }
  }
  // The stops took effect (and the same way in both runs, checked above).
  EXPECT_EQ(runs[1][0].completions[0].finish, FinishReason::Stop);
  EXPECT_EQ(runs[1][0].completions[0].text.find(load[0].second.stop[0]), std::string::npos);
  EXPECT_LT(runs[1][0].completions[0].tokens.size(), 24u);
  EXPECT_EQ(runs[1][1].completions[0].tokens.size(), 6u);  // up to and including the stop id
  EXPECT_EQ(runs[1][1].completions[0].finish, FinishReason::Stop);
  EXPECT_GE(runs[1][4].completions[0].tokens.size(), 8u);
  for (int i = 0; i < 6; ++i) EXPECT_EQ(runs[1][5 + i].completions[0].tokens.size(), 1u + 5 * i);
  // The 3 seeded samples differ from each other.
  EXPECT_NE(runs[1][2].completions[0].tokens, runs[1][2].completions[1].tokens);
}

// Requests that arrive while others decode: steps with prompt chunks are waited for before
// the next schedule (overlap_max_step_tokens), the others overlap; every request must still
// get all its tokens and its finish (a token taken in that wait was once never emitted, and
// its request never finished).
TEST(Overlap, StaggeredArrivalsAllFinishWithTheirGreedyTokens) {
  const fs::path dir = fixture("tiny-llama");
  auto refs = load_references(dir);
  std::shared_ptr<Model> model = load_model(dir.string(), 2);
  auto engine = Engine::create(model, Tokenizer::from_dir(dir.string()), model_sampling(true, 64, 4));
  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<size_t> lengths;
  for (int i = 0; i < 16; ++i) {
    const Reference& r = refs[i % refs.size()];
    SamplingParams p;
    p.temperature = 0.0f;
    p.ignore_eos = true;
    p.max_tokens = 3 + (i * 7) % static_cast<int32_t>(r.greedy.size() - 2);
    lengths.push_back(static_cast<size_t>(p.max_tokens));
    streams.push_back(engine->submit(r.prompt, p));
    if (i % 3 == 2) std::this_thread::sleep_for(std::chrono::milliseconds(2));  // arrive mid-decode
  }
  auto all = std::async(std::launch::async, [&] {
    std::vector<Collected> got;
    for (auto& s : streams) got.push_back(collect(*s));
    return got;
  });
  ASSERT_EQ(all.wait_for(std::chrono::seconds(60)), std::future_status::ready) << "a request never finished";
  const std::vector<Collected> got = all.get();
  for (size_t i = 0; i < got.size(); ++i) {
    const Reference& r = refs[i % refs.size()];
    EXPECT_EQ(got[i].completions[0].tokens, std::vector<int32_t>(r.greedy.begin(), r.greedy.begin() + lengths[i]))
        << "request " << i;
    EXPECT_EQ(got[i].completions[0].finish, FinishReason::Length);
  }
}

// An abort while steps are in flight ends the request at once; its blocks are freed and the
// engine goes on serving.
TEST(Overlap, AbortEndsTheRequestAndFreesItsBlocks) {
  const fs::path dir = fixture("tiny-llama");
  auto refs = load_references(dir);
  std::shared_ptr<Model> model = load_model(dir.string(), 2);
  auto engine = Engine::create(model, Tokenizer::from_dir(dir.string()), model_sampling(true, 64));
  SamplingParams p;
  p.temperature = 0.0f;
  p.ignore_eos = true;
  p.max_tokens = 200;
  auto stream = engine->submit(refs[0].prompt, p);
  Collected c;
  c.completions.resize(1);
  auto first = stream->next();
  ASSERT_TRUE(first);
  add_output(c, *first);
  stream->abort();
  while (auto out = stream->next()) add_output(c, *out);
  EXPECT_TRUE(c.finished);
  EXPECT_EQ(c.completions[0].finish, FinishReason::Abort);
  EXPECT_LT(c.completions[0].tokens.size(), 200u);
  // The tokens it did send are the greedy ones.
  const auto& got = c.completions[0].tokens;
  const size_t n = std::min(got.size(), refs[0].greedy.size());
  EXPECT_EQ(std::vector<int32_t>(got.begin(), got.begin() + n),
            std::vector<int32_t>(refs[0].greedy.begin(), refs[0].greedy.begin() + n));

  p.max_tokens = static_cast<int32_t>(refs[1].greedy.size());
  EXPECT_EQ(collect(*engine->submit(refs[1].prompt, p)).completions[0].tokens, refs[1].greedy);
  EXPECT_EQ(blocks_in_use_when_idle(*engine), 0);
}

}  // namespace
}  // namespace ferrum::testing
