// The perplexity evaluator against transformers, on the golden fixtures' recorded logits (every
// prompt row) and on ferrum-tiny.
// ferrum-tiny (models/ferrum-tiny, trained by tools/train_tiny_model.py) against PyTorch:
// reference.json holds transformers' float32 results on the same bf16 weights, recorded at
// training time: the held-out perplexity for two context windows (and per window), and
// greedy continuations of four prompts. ferrum must agree to 1e-3 relative and token for token.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>

#include "core/error.h"
#include "core/json.h"
#include "io/safetensors.h"
#include "models/model.h"
#include "models/perplexity.h"

namespace ferrum {
namespace {

const std::string kTinyDir = std::string(FERRUM_SOURCE_DIR) + "/models/ferrum-tiny";

// Greedy steps whose top-2 logit gap in PyTorch is below this are too close to call between two
// float32 implementations; the comparison stops there (none of the recorded prompts has one).
constexpr double kMinMargin = 1e-3;

class FerrumTiny : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    if (!std::filesystem::exists(kTinyDir + "/reference.json")) return;
    std::ifstream in(kTinyDir + "/reference.json");
    ref_ = new json(json::parse(in));
    model_ = load_model(kTinyDir, 2).release();
  }
  static void TearDownTestSuite() {
    delete model_;
    delete ref_;
    model_ = nullptr;
    ref_ = nullptr;
  }
  void SetUp() override {
    ASSERT_TRUE(ref_) << kTinyDir << " has no reference.json: the shipped model is missing (docs/ferrum-tiny.md)";
  }
  static inline Model* model_ = nullptr;
  static inline json* ref_ = nullptr;
};

double rel_diff(double a, double b) { return std::abs(a - b) / std::abs(b); }

TEST_F(FerrumTiny, HeldOutPerplexityMatchesPyTorch) {
  const auto ids = (*ref_)["perplexity"]["token_ids"].get<std::vector<int32_t>>();
  ASSERT_GE(ids.size(), 1024u);
  const auto& results = (*ref_)["perplexity"]["results"];
  ASSERT_GE(results.size(), 2u);
  for (const auto& want : results) {
    PerplexityOptions opt;
    opt.ctx = want["ctx"].get<int32_t>();
    const PerplexityResult got = compute_perplexity(*model_, ids, opt);
    EXPECT_EQ(got.num_windows, want["num_windows"].get<int32_t>());
    EXPECT_EQ(got.num_scored, want["num_scored"].get<int64_t>());
    EXPECT_LT(rel_diff(got.ppl, want["ppl"].get<double>()), 1e-3)
        << "ctx " << opt.ctx << ": ferrum " << got.ppl << " PyTorch " << want["ppl"].get<double>();
    const auto per_window = want["window_mean_nll"].get<std::vector<double>>();
    ASSERT_EQ(got.window_mean_nll.size(), per_window.size());
    for (size_t w = 0; w < per_window.size(); ++w)
      EXPECT_LT(rel_diff(got.window_mean_nll[w], per_window[w]), 1e-3) << "ctx " << opt.ctx << " window " << w;
    // A trained model, not noise: far below the vocabulary size.
    EXPECT_LT(got.ppl, 200.0);
  }
}

// The windows and the scored rows, checked on the golden fixtures: each prompt twice (two
// windows of ctx = prompt length) plus a short tail that must be dropped; the expected NLL
// comes from transformers' float32 logits at every prompt row (tests/fixtures/models).
double reference_nll(const float* logits, int64_t vocab, int32_t target) {
  double max = logits[0], sum = 0;
  for (int64_t v = 1; v < vocab; ++v) max = std::max<double>(max, logits[v]);
  for (int64_t v = 0; v < vocab; ++v) sum += std::exp(logits[v] - max);
  return std::log(sum) + max - logits[target];
}

TEST(Perplexity, MatchesTransformersLogitsOnFixtures) {
  for (const std::string name : {"tiny-llama", "tiny-qwen3"}) {
    const std::string dir = std::string(FERRUM_SOURCE_DIR) + "/tests/fixtures/models/" + name;
    auto model = load_model(dir, 2);
    const int64_t vocab = model->config().vocab_size;
    std::ifstream in(dir + "/reference.json");
    const json ref = json::parse(in);
    WeightStore store = WeightStore::open_file(dir + "/reference.safetensors");
    for (size_t i = 0; i < ref["prompts"].size(); ++i) {
      const auto& p = ref["prompts"][i];
      const auto prompt = p["prompt_ids"].get<std::vector<int32_t>>();
      const auto rows = p["logit_rows"].get<std::vector<int32_t>>();
      const int32_t ctx = static_cast<int32_t>(prompt.size());
      const float* logits = store.get("logits_" + std::to_string(i)).ptr<float>();
      double sum = 0;
      int64_t count = 0;
      for (int32_t j = ctx / 2; j + 1 < ctx; ++j, ++count) {
        ASSERT_EQ(rows[j], j);
        sum += reference_nll(logits + j * vocab, vocab, prompt[j + 1]);
      }
      std::vector<int32_t> tokens = prompt;
      tokens.insert(tokens.end(), prompt.begin(), prompt.end());
      tokens.insert(tokens.end(), prompt.begin(), prompt.begin() + 3);
      PerplexityOptions opt;
      opt.ctx = ctx;
      std::vector<double> running;
      opt.on_window = [&](int32_t, double ppl) { running.push_back(ppl); };
      const PerplexityResult r = compute_perplexity(*model, tokens, opt);
      EXPECT_EQ(r.num_windows, 2);
      EXPECT_EQ(r.num_scored, 2 * count);
      EXPECT_EQ(running.size(), 2u);
      EXPECT_LT(rel_diff(r.mean_nll, sum / count), 1e-4) << name << " prompt " << i;
      EXPECT_LT(rel_diff(r.window_mean_nll[1], sum / count), 1e-4) << name << " prompt " << i;
      EXPECT_NEAR(r.ppl, std::exp(r.mean_nll), 1e-9 * r.ppl);
    }
  }
}

// Greedy decoding through the paged KV cache: the prompt in one prefill, then one token a step.
std::vector<int32_t> greedy(Model& model, const std::vector<int32_t>& prompt, int new_tokens) {
  const int32_t block = 16;
  const int32_t total = static_cast<int32_t>(prompt.size()) + new_tokens;
  const int32_t blocks = (total + block - 1) / block;
  auto cache = model.create_kv_cache(blocks, block);
  const int64_t vocab = model.config().vocab_size;
  std::vector<int32_t> out;
  std::vector<int32_t> feed = prompt;
  int32_t pos = 0;
  std::vector<float> logits;
  while (static_cast<int>(out.size()) < new_tokens) {
    ForwardBatch b;
    b.token_ids = feed;
    for (size_t i = 0; i < feed.size(); ++i) b.positions.push_back(pos + static_cast<int32_t>(i));
    b.slot_mapping = b.positions;
    pos += static_cast<int32_t>(feed.size());
    b.query_start = {0, static_cast<int32_t>(feed.size())};
    b.seq_lens = {pos};
    b.max_blocks_per_seq = blocks;
    for (int32_t i = 0; i < blocks; ++i) b.block_tables.push_back(i);
    b.logits_indices = {static_cast<int32_t>(feed.size()) - 1};
    model.forward(b, *cache, logits);
    const auto best = std::max_element(logits.begin(), logits.begin() + vocab);
    out.push_back(static_cast<int32_t>(best - logits.begin()));
    feed = {out.back()};
  }
  return out;
}

TEST_F(FerrumTiny, GreedyContinuationsMatchPyTorch) {
  const int new_tokens = (*ref_)["greedy"]["new_tokens"].get<int>();
  const auto& prompts = (*ref_)["greedy"]["prompts"];
  ASSERT_EQ(prompts.size(), 4u);
  for (const auto& p : prompts) {
    const auto prompt = p["prompt_ids"].get<std::vector<int32_t>>();
    const auto want = p["greedy_ids"].get<std::vector<int32_t>>();
    const auto margins = p["margins"].get<std::vector<double>>();
    ASSERT_EQ(static_cast<int>(want.size()), new_tokens);
    const auto got = greedy(*model_, prompt, new_tokens);
    size_t comparable = 0;
    while (comparable < want.size() && margins[comparable] >= kMinMargin) ++comparable;
    EXPECT_GE(comparable, 8u) << "reference margins too small to test: " << p["text"];
    EXPECT_EQ(std::vector<int32_t>(got.begin(), got.begin() + comparable),
              std::vector<int32_t>(want.begin(), want.begin() + comparable))
        << "prompt " << p["text"] << "\nPyTorch: " << p["greedy_text"];
  }
}

TEST_F(FerrumTiny, PerplexityRejectsBadInputClearly) {
  const std::vector<int32_t> ids((*ref_)["perplexity"]["token_ids"].get<std::vector<int32_t>>());
  auto message = [&](std::vector<int32_t> tokens, int32_t ctx) {
    PerplexityOptions opt;
    opt.ctx = ctx;
    try {
      compute_perplexity(*model_, tokens, opt);
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message(ids, 2).find("at least 4"), std::string::npos);
  EXPECT_NE(message(ids, 1 << 16).find("max_position_embeddings"), std::string::npos);
  EXPECT_NE(message({ids.begin(), ids.begin() + 100}, 256).find("fewer than one window"), std::string::npos);
  std::vector<int32_t> bad(ids.begin(), ids.begin() + 64);
  bad[10] = static_cast<int32_t>(model_->config().vocab_size);
  EXPECT_NE(message(bad, 32).find("outside the model's vocabulary"), std::string::npos);
}

}  // namespace
}  // namespace ferrum
