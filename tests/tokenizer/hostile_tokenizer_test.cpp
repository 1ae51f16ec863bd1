// Regression tests for tokenizer.json inputs found by fuzzing (fuzz/targets/fuzz_tokenizer_load).
#include <gtest/gtest.h>

#include <string>

#include "core/error.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/tokenizer_json.h"

namespace ferrum {
namespace {

std::string tokenizer_with_special_ids(const std::string& ids) {
  return R"({"added_tokens": [{"id": 0, "content": "<s>", "special": true}],
    "normalizer": null, "pre_tokenizer": null, "decoder": null,
    "post_processor": {"type": "TemplateProcessing", "single": [{"SpecialToken": {"id": "<s>", "type_id": 0}},
      {"Sequence": {"id": "A", "type_id": 0}}], "pair": [],
      "special_tokens": {"<s>": {"id": "<s>", "ids": )" + ids + R"(, "tokens": ["<s>"]}}},
    "model": {"type": "BPE", "vocab": {"<s>": 0, "a": 1}, "merges": []}})";
}

HfTokenizer load(const std::string& text) {
  return HfTokenizer(tok::parse_tokenizer_json(text, "test.json"), json());
}

// A special token id of 1.8e20 was cast to int (undefined behaviour, UBSan); it is an error now.
TEST(HostileTokenizer, OutOfRangeSpecialTokenIdIsAnError) {
  EXPECT_NO_THROW(load(tokenizer_with_special_ids("[0]")));
  EXPECT_THROW(load(tokenizer_with_special_ids("[184467440737095516160]")), Error);
  EXPECT_THROW(load(tokenizer_with_special_ids("[4294967296]")), Error);
  EXPECT_THROW(load(tokenizer_with_special_ids("[0.5]")), Error);
}

TEST(HostileTokenizer, OutOfRangeAddedTokenIdIsAnError) {
  std::string text = tokenizer_with_special_ids("[0]");
  text.replace(text.find(R"("id": 0, "content")"), 7, R"("id": 1e300)");
  EXPECT_THROW(load(text), Error);
}

}  // namespace
}  // namespace ferrum
