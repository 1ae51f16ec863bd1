// The constraint over a small made-up vocabulary: masks, EOS only when complete, and a
// reasoning model's free section before "</think>".
#include <gtest/gtest.h>

#include <cmath>

#include "structured/regex.h"
#include "structured/token_constraint.h"

namespace ferrum::structured {
namespace {

// ids: 0 "<eos>" (no bytes), 1 "ab", 2 "a", 3 "b", 4 "</think>", 5 "</think>a", 6 "</", 7 "think>",
// 8 "x", 9 "</think>\n\nb", 10 "</think>x"
std::shared_ptr<const TokenVocab> vocab() {
  return std::make_shared<const TokenVocab>(std::vector<std::string>{"", "ab", "a", "b", "</think>", "</think>a", "</", "think>", "x",
                                                                      "</think>\n\nb", "</think>x"});
}

// The tokens apply() leaves finite; the bitmask of allowed() (which the device samplers read,
// over a wider row of 40 ids here) must name the same ones.
std::vector<int> allowed(const TokenConstraint& c) {
  std::vector<float> logits(11, 0.0f);
  std::vector<uint32_t> scratch;
  const int32_t eos[] = {0};
  c.apply(logits, eos, true, scratch);
  std::vector<int> out;
  for (int i = 0; i < 11; ++i)
    if (!std::isinf(logits[i])) out.push_back(i);
  std::vector<uint32_t> bits(TokenVocab::words_for(40), 0xffffffffu);
  c.allowed(bits, 40, eos, true);
  std::vector<int> from_bits;
  for (int i = 0; i < 40; ++i)
    if ((bits[i / 32] >> (i % 32)) & 1u) from_bits.push_back(i);
  EXPECT_EQ(from_bits, out);
  return out;
}

TEST(TokenConstraint, MaskAndEosOnlyWhenComplete) {
  TokenConstraint c(compile_regex("a+b?"), vocab());
  EXPECT_EQ(allowed(c), (std::vector<int>{1, 2}));
  ASSERT_TRUE(c.advance(2));
  EXPECT_EQ(allowed(c), (std::vector<int>{0, 1, 2, 3}));  // complete: EOS allowed
  ASSERT_TRUE(c.advance(3));
  EXPECT_TRUE(c.complete());
  EXPECT_FALSE(c.advance(2));
}

TEST(TokenConstraint, FreeUntilTheEndOfReasoning) {
  TokenConstraint c(compile_regex("b+"), vocab(), "</think>");
  EXPECT_FALSE(c.started());
  // Free text, but no EOS, and a token that ends the reasoning must continue the grammar.
  EXPECT_EQ(allowed(c), (std::vector<int>{1, 2, 3, 4, 6, 7, 8, 9}));
  ASSERT_TRUE(c.advance(8));
  ASSERT_TRUE(c.advance(6));  // "</" then "think>": the marker across two tokens
  EXPECT_FALSE(c.started());
  ASSERT_TRUE(c.advance(7));
  EXPECT_TRUE(c.started());
  EXPECT_FALSE(c.accepts());
  EXPECT_EQ(allowed(c), (std::vector<int>{3}));
  ASSERT_TRUE(c.advance(3));
  EXPECT_TRUE(c.accepts());

  TokenConstraint d(compile_regex("b+"), vocab(), "</think>");
  ASSERT_TRUE(d.advance(9));  // "</think>\n\nb": white space skipped, "b" starts the grammar
  EXPECT_TRUE(d.accepts());
  TokenConstraint e(compile_regex("b+"), vocab(), "</think>");
  EXPECT_FALSE(e.advance(10));  // "</think>x" does not continue the grammar
  EXPECT_FALSE(e.started());
}

}  // namespace
}  // namespace ferrum::structured
