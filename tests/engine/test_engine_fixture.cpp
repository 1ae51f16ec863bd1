// The engine with the real CPU models on the tiny fixture checkpoints: greedy ids must equal
// transformers' (tests/fixtures/models/*/reference.json) for 16 concurrent requests, under
// chunked prefill, prefix-cache hits and preemption, and the streamed text its decode.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "core/json.h"
#include "engine_test_util.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"
#include "backend/backend.h"

namespace ferrum::testing {
namespace {

namespace fs = std::filesystem;

class FixtureModels : public ::testing::TestWithParam<std::string> {};

TEST_P(FixtureModels, ConcurrentGreedyMatchesTransformersUnderKvPressure) {
  const fs::path dir = fs::path(FERRUM_SOURCE_DIR) / "tests/fixtures/models" / GetParam();
  if (!fs::exists(dir / "reference.json")) GTEST_SKIP() << "no fixture at " << dir;
  auto refs = load_references(dir);
  ASSERT_FALSE(refs.empty());
  std::shared_ptr<Model> model = load_model(dir.string(), 2);

  EngineOptions o;
  o.block_size = 16;
  o.max_num_batched_tokens = 40;  // prompts are chunked
  o.num_kv_blocks = 24;           // 16 requests need ~80 blocks at once: preemption
  std::shared_ptr<const Tokenizer> tok = Tokenizer::from_dir(dir.string());
  auto engine = Engine::create(model, tok, o);

  std::vector<std::shared_ptr<RequestStream>> streams;
  std::vector<const Reference*> expected;
  for (int copy = 0; copy < 4; ++copy) {
    for (const Reference& r : refs) {
      SamplingParams p = greedy_like(r);
      streams.push_back(engine->submit(r.prompt, p));
      expected.push_back(&r);
    }
  }
  for (size_t i = 0; i < streams.size(); ++i) {
    auto c = collect(*streams[i]);
    EXPECT_EQ(c.completions[0].tokens, expected[i]->greedy) << GetParam() << " request " << i;
    // The streamed pieces concatenate to transformers' decode of the same ids.
    EXPECT_EQ(c.completions[0].text, expected[i]->greedy_text) << GetParam() << " request " << i;
    for (const auto& piece : c.completions[0].pieces) EXPECT_TRUE(valid_utf8(piece));
  }
  auto s = engine->stats();
  EXPECT_GT(s.prefix_cache_hits, 0u);
  EXPECT_GT(s.preemptions, 0u);
}

TEST_P(FixtureModels, SampledTextStreamsAsWholeCharactersAndMatchesTheDecode) {
  const fs::path dir = fs::path(FERRUM_SOURCE_DIR) / "tests/fixtures/models" / GetParam();
  if (!fs::exists(dir / "reference.json")) GTEST_SKIP() << "no fixture at " << dir;
  auto refs = load_references(dir);
  std::shared_ptr<Model> model = load_model(dir.string(), 2);
  std::shared_ptr<const Tokenizer> tok = Tokenizer::from_dir(dir.string());
  EngineOptions o;
  o.num_kv_blocks = 64;
  auto engine = Engine::create(model, tok, o);
  std::vector<std::shared_ptr<RequestStream>> streams;
  SamplingParams p;
  p.temperature = 1.5f;  // wander into byte-fallback and multi-byte tokens
  p.max_tokens = 40;
  p.ignore_eos = true;
  p.skip_special_tokens = false;
  for (uint64_t seed = 0; seed < 8; ++seed) {
    p.seed = seed;
    streams.push_back(engine->submit(refs[seed % refs.size()].prompt, p));
  }
  for (size_t i = 0; i < streams.size(); ++i) {
    auto c = collect(*streams[i]).completions[0];
    for (const auto& piece : c.pieces) EXPECT_TRUE(valid_utf8(piece)) << GetParam();
    // The text of the continuation: decode(prompt + output) past decode(prompt). (Decoders
    // that drop a leading space at the start of a text, like Metaspace, keep it here, as vLLM.)
    std::vector<int32_t> all = refs[i % refs.size()].prompt;
    const std::string prompt_text = tok->decode(all, false);
    all.insert(all.end(), c.tokens.begin(), c.tokens.end());
    const std::string full = tok->decode(all, false);
    ASSERT_EQ(full.compare(0, prompt_text.size(), prompt_text), 0) << GetParam();
    EXPECT_EQ(c.text, full.substr(prompt_text.size())) << GetParam();
  }
}

// The GPU model under the same load: chunked prefill, prefix hits and preemption, and decode
// steps of changing batch sizes replayed from CUDA graphs. tiny-qwen2 has float32 weights, so
// the GPU computes in float32 (exact SGEMM) and must give transformers' greedy ids exactly.
TEST(FixtureModelsCuda, ConcurrentGreedyMatchesTransformersWithGraphs) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  const fs::path dir = fs::path(FERRUM_SOURCE_DIR) / "tests/fixtures/models/tiny-qwen2";
  auto refs = load_references(dir);
  std::shared_ptr<Model> model = load_model(dir.string(), 2, "cuda");
  for (int round = 0; round < 2; ++round) {  // a second engine, new cache and block size: graphs re-recorded
    EngineOptions o;
    o.block_size = round == 0 ? 16 : 32;
    o.max_num_batched_tokens = 40;
    o.num_kv_blocks = round == 0 ? 24 : 12;  // both force preemption
    auto engine = Engine::create(model, Tokenizer::from_dir(dir.string()), o);
    std::vector<std::shared_ptr<RequestStream>> streams;
    std::vector<const Reference*> expected;
    for (int copy = 0; copy < 4; ++copy) {
      for (const Reference& r : refs) {
        SamplingParams p;
        p.temperature = 0.0f;
        p.ignore_eos = true;
        p.max_tokens = static_cast<int32_t>(r.greedy.size()) - copy * 5;
        streams.push_back(engine->submit(r.prompt, p));
        expected.push_back(&r);
      }
    }
    for (size_t i = 0; i < streams.size(); ++i) {
      auto c = collect(*streams[i]);
      std::vector<int32_t> want(expected[i]->greedy.begin(), expected[i]->greedy.begin() + c.completions[0].tokens.size());
      EXPECT_EQ(c.completions[0].tokens.size(), expected[i]->greedy.size() - (i / refs.size()) * 5) << "request " << i;
      EXPECT_EQ(c.completions[0].tokens, want) << "round " << round << " request " << i;
    }
    EXPECT_GT(engine->stats().preemptions, 0u);
  }
}

// Graphs, batch padding, device sampling and overlapped steps change how a step runs, never
// its greedy output: each combination gives transformers' ids on the float32 fixture.
TEST(FixtureModelsCuda, GraphsPaddingAndDeviceSamplingDoNotChangeGreedyOutput) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  const fs::path dir = fs::path(FERRUM_SOURCE_DIR) / "tests/fixtures/models/tiny-qwen2";
  auto refs = load_references(dir);
  std::shared_ptr<Model> model = load_model(dir.string(), 2, "cuda");
  for (int combo = 0; combo < 16; ++combo) {
    ModelRunOptions run;
    run.graphs = combo & 1;
    run.pad_batches = combo & 2;
    model->set_run_options(run);
    EngineOptions o;
    o.num_kv_blocks = 64;
    o.host_sampling = combo & 4;
    o.overlap = !(combo & 8);
    auto engine = Engine::create(model, Tokenizer::from_dir(dir.string()), o);
    std::vector<std::shared_ptr<RequestStream>> streams;
    for (int copy = 0; copy < 3; ++copy)  // 3 x 4 prompts: batches of 12, 11, ... padded to 16, 8, ...
      for (const Reference& r : refs) {
        SamplingParams p;
        p.temperature = 0.0f;
        p.ignore_eos = true;
        p.max_tokens = static_cast<int32_t>(r.greedy.size()) - 3 * copy;
        streams.push_back(engine->submit(r.prompt, p));
      }
    for (size_t i = 0; i < streams.size(); ++i) {
      const Reference& r = refs[i % refs.size()];
      auto got = collect(*streams[i]).completions[0].tokens;
      EXPECT_EQ(got, std::vector<int32_t>(r.greedy.begin(), r.greedy.begin() + got.size()))
          << "graphs " << run.graphs << " padding " << run.pad_batches << " host sampling " << o.host_sampling
          << " overlap " << o.overlap;
      EXPECT_EQ(got.size(), r.greedy.size() - 3 * (i / refs.size()));
    }
  }
  model->set_run_options(ModelRunOptions{});
}

INSTANTIATE_TEST_SUITE_P(Engine, FixtureModels,
                         ::testing::Values("tiny-llama", "tiny-llama-mqa", "tiny-mistral", "tiny-qwen2", "tiny-qwen3",
                                           "tiny-qwen3-moe", "tiny-qwen3-moe-nonorm", "tiny-qwen2-moe"));

}  // namespace
}  // namespace ferrum::testing
