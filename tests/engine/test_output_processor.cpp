// Incremental detokenization and stop strings, token by token.
#include <gtest/gtest.h>

#include "engine/output_processor.h"
#include "fakes.h"

namespace ferrum::testing {
namespace {

struct Stepper {
  FakeTokenizer tok;
  OutputProcessor proc{&tok, {1}};
  SamplingParams params;
  Sequence seq;

  void start(std::vector<int32_t> prompt) {
    seq.params = &params;
    seq.tokens = std::move(prompt);
    seq.prompt_len = static_cast<int32_t>(seq.tokens.size());
    proc.init(seq);
  }
  // Feeds one piece (by its text) and returns the text streamed for it.
  std::string feed(const std::string& piece) {
    proc.append_token(seq, *tok.token_to_id(piece));
    CompletionDelta d;
    OutputProcessor::take_delta(seq, d);
    return d.text;
  }
};

TEST(OutputProcessor, HoldsBackAPossibleStopStringAndDropsIt) {
  Stepper s;
  s.params.stop = {"STOP"};
  s.params.max_tokens = 20;
  s.start({3, 4});
  EXPECT_EQ(s.feed("ab"), "ab");
  EXPECT_EQ(s.feed("S"), "");   // could start "STOP"
  EXPECT_EQ(s.feed("TO"), "");  // "STO" still could
  EXPECT_EQ(s.feed("P"), "");   // matched: never emitted
  EXPECT_EQ(s.seq.finish_reason, FinishReason::Stop);
  EXPECT_EQ(s.seq.stop_reason, "STOP");
  EXPECT_EQ(s.seq.detok.text, "ab");
}

TEST(OutputProcessor, ReleasesHeldTextWhenTheMatchFails) {
  Stepper s;
  s.params.stop = {"STOP", "xyz"};
  s.start({3});
  EXPECT_EQ(s.feed("ST"), "");
  EXPECT_EQ(s.feed("ok"), "STok");
  EXPECT_EQ(s.feed("xy"), "");
  EXPECT_EQ(s.feed("a"), "xya");
  EXPECT_EQ(s.seq.finish_reason, FinishReason::None);
}

TEST(OutputProcessor, IncludeStopStringKeepsIt) {
  Stepper s;
  s.params.stop = {"TOP"};
  s.params.include_stop_str_in_output = true;
  s.start({3});
  std::string out;
  for (const char* piece : {"a", "S", "TO", "P"}) out += s.feed(piece);
  EXPECT_EQ(out, "aSTOP");
  EXPECT_EQ(s.seq.finish_reason, FinishReason::Stop);
}

TEST(OutputProcessor, StopStringInsideOneTokenCutsTheText) {
  Stepper s;
  s.params.stop = {"b"};
  s.start({3});
  EXPECT_EQ(s.feed("q "), "q ");
  EXPECT_EQ(s.feed("ab"), "a");
  EXPECT_EQ(s.seq.stop_reason, "b");
}

TEST(OutputProcessor, NeverSplitsAUtf8Character) {
  Stepper s;
  s.params.max_tokens = 10;
  s.start({3});
  EXPECT_EQ(s.feed(std::string(1, '\xE2')), "");
  EXPECT_EQ(s.feed(std::string(1, '\x82')), "");
  EXPECT_EQ(s.feed(std::string(1, '\xAC')), "\xE2\x82\xAC");  // €
  EXPECT_EQ(s.feed(" the"), " the");
}

TEST(OutputProcessor, FlushesAnIncompleteCharacterAtTheEnd) {
  Stepper s;
  s.params.max_tokens = 2;
  s.start({3});
  EXPECT_EQ(s.feed("a"), "a");
  EXPECT_EQ(s.feed(std::string(1, '\xC3')), "\xEF\xBF\xBD");  // length reached: U+FFFD, as the full decode
  EXPECT_EQ(s.seq.finish_reason, FinishReason::Length);
}

TEST(OutputProcessor, MinTokensDefersStopChecks) {
  Stepper s;
  s.params.stop = {"a"};
  s.params.min_tokens = 2;
  s.start({3});
  EXPECT_EQ(s.feed("a"), "a");  // below min_tokens: no stop yet
  EXPECT_EQ(s.seq.finish_reason, FinishReason::None);
  EXPECT_EQ(s.feed("ba"), "b");
  EXPECT_EQ(s.seq.finish_reason, FinishReason::Stop);
}

TEST(OutputProcessor, EosTextIsNotEmitted) {
  Stepper s;
  s.params.skip_special_tokens = false;
  s.start({3});
  EXPECT_EQ(s.feed("a"), "a");
  EXPECT_EQ(s.feed("</s>"), "");
  EXPECT_EQ(s.seq.finish_reason, FinishReason::Stop);
  EXPECT_EQ(s.seq.stop_reason, "");
}

TEST(OutputProcessor, Utf8Helpers) {
  EXPECT_TRUE(ends_with_incomplete_utf8("a\xC3"));
  EXPECT_TRUE(ends_with_incomplete_utf8("a\xF0\x9F\x98"));
  EXPECT_FALSE(ends_with_incomplete_utf8("a\xF0\x9F\x98\x80"));
  EXPECT_TRUE(ends_with_incomplete_utf8("a\xEF\xBF\xBD"));
  EXPECT_FALSE(ends_with_incomplete_utf8("abc"));
  std::vector<std::string> stops{"STOP", "xyz"};
  EXPECT_EQ(stop_prefix_holdback("abSTO", 0, stops), 3u);
  EXPECT_EQ(stop_prefix_holdback("abST", 3, stops), 0u);  // only text after `from` counts
  EXPECT_EQ(stop_prefix_holdback("abxS", 3, stops), 1u);
  EXPECT_EQ(stop_prefix_holdback("abx", 0, stops), 1u);
  EXPECT_EQ(stop_prefix_holdback("abc", 0, stops), 0u);
}

}  // namespace
}  // namespace ferrum::testing
