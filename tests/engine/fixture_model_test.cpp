// The engine with a real model (tests/fixtures/models/tiny-llama) and its real tokenizer:
// batching, prefix caching and preemption must not change a single greedy token, and the
// greedy tokens are transformers' own (reference.json).
#include <gtest/gtest.h>

#include <fstream>
#include <random>

#include "core/json.h"
#include "engine/engine.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace ferrum {
namespace {

const std::string kModel = std::string(FERRUM_SOURCE_DIR) + "/tests/fixtures/models/tiny-llama";

struct Fixture {
  std::shared_ptr<Model> model = load_model(kModel, 2);
  std::shared_ptr<const Tokenizer> tok = Tokenizer::from_dir(kModel);
};

Fixture& fixture() {
  static Fixture f;
  return f;
}

struct Result {
  std::vector<int32_t> ids;
  std::string text;
  FinishReason reason = FinishReason::None;
  int32_t cached = 0;
};

Result drain(const std::shared_ptr<RequestStream>& s) {
  Result r;
  while (auto out = s->next()) {
    r.cached = out->cached_tokens;
    for (const auto& d : out->deltas) {
      r.ids.insert(r.ids.end(), d.token_ids.begin(), d.token_ids.end());
      r.text += d.text;
      if (d.finish_reason != FinishReason::None) r.reason = d.finish_reason;
    }
  }
  return r;
}

SamplingParams greedy(int n) {
  SamplingParams p;
  p.temperature = 0;
  p.max_tokens = n;
  p.ignore_eos = true;
  return p;
}

// Prompts of different lengths: the reference prompts plus slices of a longer text.
std::vector<std::vector<int32_t>> prompts(int count) {
  const std::string text =
      "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of "
      "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light";
  std::vector<std::vector<int32_t>> out;
  for (int i = 0; i < count; ++i) out.push_back(fixture().tok->encode(text.substr(0, 10 + 11 * i)));
  return out;
}

std::vector<Result> run_all(Engine& e, const std::vector<std::vector<int32_t>>& ps, const SamplingParams& sp) {
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& p : ps) streams.push_back(e.submit(p, sp));
  std::vector<Result> out;
  for (auto& s : streams) out.push_back(drain(s));
  return out;
}

TEST(EngineWithModel, GreedyMatchesTransformersAndIsTheSameInABatchOf16) {
  std::ifstream in(kModel + "/reference.json");
  json ref = json::parse(in);
  EngineOptions o;
  o.num_kv_blocks = 256;
  auto engine = Engine::create(fixture().model, fixture().tok, o);
  // transformers' greedy continuation, alone.
  for (const auto& p : ref["prompts"]) {
    auto ids = p["prompt_ids"].get<std::vector<int32_t>>();
    EXPECT_EQ(fixture().tok->encode(p["text"].get<std::string>()), ids);
    Result r = drain(engine->submit(ids, greedy(32)));
    EXPECT_EQ(r.ids, p["greedy_ids"].get<std::vector<int32_t>>());
  }
  auto ps = prompts(16);
  std::vector<Result> alone;
  for (const auto& p : ps) alone.push_back(drain(engine->submit(p, greedy(24))));
  auto fresh = Engine::create(fixture().model, fixture().tok, o);  // no prefix cache hits
  auto batched = run_all(*fresh, ps, greedy(24));
  for (size_t i = 0; i < ps.size(); ++i) {
    EXPECT_EQ(batched[i].ids, alone[i].ids) << "prompt " << i;
    EXPECT_EQ(batched[i].text, alone[i].text) << "prompt " << i;
    EXPECT_EQ(batched[i].ids.size(), 24u);
  }
}

TEST(EngineWithModel, RepeatedPromptHitsThePrefixCacheWithIdenticalOutput) {
  EngineOptions o;
  o.num_kv_blocks = 64;
  auto engine = Engine::create(fixture().model, fixture().tok, o);
  auto p = prompts(16).back();  // > 3 blocks of 16 tokens
  ASSERT_GT(p.size(), 48u);
  Result first = drain(engine->submit(p, greedy(16)));
  Result second = drain(engine->submit(p, greedy(16)));
  EXPECT_EQ(first.cached, 0);
  EXPECT_EQ(second.cached, static_cast<int32_t>((p.size() - 1) / 16 * 16));
  EXPECT_EQ(first.ids, second.ids);
}

TEST(EngineWithModel, SmallPoolPreemptsAndStillGivesIdenticalOutputs) {
  auto ps = prompts(8);
  EngineOptions big;
  big.num_kv_blocks = 256;
  big.enable_prefix_caching = false;
  auto reference = run_all(*Engine::create(fixture().model, fixture().tok, big), ps, greedy(40));
  EngineOptions small = big;
  small.num_kv_blocks = 14;  // far less than 8 requests need at once
  auto engine = Engine::create(fixture().model, fixture().tok, small);
  auto got = run_all(*engine, ps, greedy(40));
  EXPECT_GT(engine->stats().preemptions, 0u);
  for (size_t i = 0; i < ps.size(); ++i) EXPECT_EQ(got[i].ids, reference[i].ids) << "prompt " << i;
}

TEST(EngineWithModel, RequestLargerThanThePoolFailsCleanlyWhileOthersFinish) {
  EngineOptions o;
  o.num_kv_blocks = 6;     // 96 tokens
  o.max_model_len = 256;  // explicit: by default the context is capped to the pool
  auto engine = Engine::create(fixture().model, fixture().tok, o);
  auto ps = prompts(3);
  std::vector<int32_t> huge;
  for (int i = 0; i < 6; ++i) huge.insert(huge.end(), ps[2].begin(), ps[2].end());
  auto a = engine->submit(ps[0], greedy(8));
  auto big = engine->submit(huge, greedy(60));
  auto b = engine->submit(ps[1], greedy(8));
  EXPECT_EQ(drain(big).reason, FinishReason::Error);
  EXPECT_EQ(drain(a).ids.size(), 8u);
  EXPECT_EQ(drain(b).ids.size(), 8u);
}

TEST(EngineWithModel, SeededSamplingIsReproducibleAcrossBatchCompositions) {
  EngineOptions o;
  o.num_kv_blocks = 256;
  SamplingParams sp;
  sp.temperature = 1.0f;
  sp.top_p = 0.9f;
  sp.max_tokens = 20;
  sp.ignore_eos = true;
  sp.seed = 1234;
  auto ps = prompts(6);
  Result alone = drain(Engine::create(fixture().model, fixture().tok, o)->submit(ps[3], sp));
  SamplingParams other = sp;
  other.seed.reset();
  auto engine = Engine::create(fixture().model, fixture().tok, o);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (size_t i = 0; i < ps.size(); ++i) streams.push_back(engine->submit(ps[i], i == 3 ? sp : other));
  std::vector<Result> rs;
  for (auto& s : streams) rs.push_back(drain(s));
  EXPECT_EQ(rs[3].ids, alone.ids);
}

TEST(EngineWithModel, StopStringIsNeverEmitted) {
  EngineOptions o;
  o.num_kv_blocks = 64;
  auto engine = Engine::create(fixture().model, fixture().tok, o);
  auto p = prompts(4)[2];
  Result full = drain(engine->submit(p, greedy(32)));
  ASSERT_GT(full.text.size(), 12u);
  // A stop string that spans the boundary of two tokens somewhere in the middle.
  const std::string stop = full.text.substr(full.text.size() / 2 - 2, 4);
  SamplingParams sp = greedy(32);
  sp.stop = {stop};
  Result cut = drain(engine->submit(p, sp));
  EXPECT_EQ(cut.reason, FinishReason::Stop);
  EXPECT_EQ(cut.text, full.text.substr(0, full.text.find(stop)));
  EXPECT_EQ(cut.text.find(stop), std::string::npos);
}

}  // namespace
}  // namespace ferrum
