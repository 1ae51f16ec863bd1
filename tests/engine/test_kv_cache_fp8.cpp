// --kv-cache-dtype fp8 through the whole engine on a GPU (skipped elsewhere): ferrum-tiny's
// bf16 model with an E4M3 KV cache gives the greedy ids of its bf16 cache for at least the
// first 8 tokens of every prompt (E4M3 keeps 3 mantissa bits of K and V, so a near tie later
// may part them), with decode graphs, chunked prefill, prefix-cache hits and the model's own
// sampler, as the engine runs by default.
#include <gtest/gtest.h>

#include <filesystem>

#include "backend/backend.h"
#include "engine_test_util.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::testing {
namespace {

namespace fs = std::filesystem;

// Each prompt's greedy ids (48 tokens) from an engine over `model`; a long prompt is chunked.
std::vector<std::vector<int32_t>> greedy_ids(std::shared_ptr<Model> model, std::shared_ptr<const Tokenizer> tok,
                                             const std::vector<std::string>& texts) {
  EngineOptions o;
  o.block_size = 16;
  o.num_kv_blocks = 64;
  o.max_num_batched_tokens = 64;
  auto engine = Engine::create(std::move(model), tok, o);
  return greedy_ids_of(*engine, *tok, texts, 48);
}

TEST(KvCacheFp8, CudaFerrumTinyGreedyIdsMatchTheBf16CacheAtFirst) {
  if (!cuda_available()) GTEST_SKIP() << "no CUDA device (or a build without CUDA)";
  const fs::path dir = fs::path(FERRUM_SOURCE_DIR) / "models/ferrum-tiny";
  std::shared_ptr<const Tokenizer> tok = Tokenizer::from_dir(dir.string());
  std::shared_ptr<Model> bf16 = load_model(dir.string(), 2, "cuda");
  std::shared_ptr<Model> fp8 = load_model(dir.string(), 2, "cuda", "", "fp8");
  ASSERT_EQ(fp8->kv_cache_dtype(), DType::F8E4M3);
  std::string long_prompt;
  for (int i = 0; i < 6; ++i)  // chunked over two steps or more
    long_prompt += "And the LORD spake unto Moses, saying, Speak unto the children of Israel. ";
  const std::vector<std::string> texts = {
      "And God said, Let there be light: and there was light. And God said, Let there be",
      "In the beginning God created the heaven and the earth.",
      "And it came to pass, when the king heard the words of the book of the law, that he rent his clothes.",
      "In the beginning God created the heaven and the earth.",  // a prefix-cache hit
      long_prompt};
  const auto want = greedy_ids(bf16, tok, texts);
  const auto got = greedy_ids(fp8, tok, texts);
  ASSERT_EQ(got.size(), want.size());
  size_t same = 0, total = 0;
  for (size_t r = 0; r < texts.size(); ++r) {
    ASSERT_EQ(got[r].size(), 48u) << "prompt " << r;
    size_t prefix = 0;
    while (prefix < got[r].size() && got[r][prefix] == want[r][prefix]) ++prefix;
    EXPECT_GE(prefix, 8u) << "prompt " << r << ": the fp8 cache's ids part from the bf16 cache's at token " << prefix;
    for (size_t i = 0; i < got[r].size(); ++i) same += got[r][i] == want[r][i];
    total += got[r].size();
  }
  std::printf("fp8 KV cache: %zu of %zu greedy ids as with the bf16 cache\n", same, total);
  EXPECT_GE(same * 2, total);  // mostly the same ids
}

}  // namespace
}  // namespace ferrum::testing
