// The regex compiler against std::regex (ECMAScript): random strings over each pattern's
// alphabet, and strings walked out of the grammar, must be accepted by both or neither.
#include <gtest/gtest.h>

#include <random>
#include <regex>

#include "core/error.h"
#include "structured/grammar.h"
#include "structured/regex.h"

namespace ferrum::structured {
namespace {

bool accepts(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  GrammarMatcher m(g);
  return m.advance(text) && m.accepts();
}

// A random sentence of g in ASCII, or nullopt when the walk met only non-ASCII bytes.
std::optional<std::string> walk(const std::shared_ptr<const Grammar>& g, std::mt19937& rng, size_t max_len) {
  GrammarMatcher m(g);
  std::string text;
  while (m.can_continue() && text.size() < max_len && !(m.accepts() && rng() % 3 == 0)) {
    const ByteSet next = m.next_bytes();
    std::vector<int> ascii;
    for (int b = 1; b < 128; ++b)
      if (next.test(b) && b != '\r') ascii.push_back(b);
    if (ascii.empty()) return std::nullopt;
    const int b = ascii[rng() % ascii.size()];
    text.push_back(static_cast<char>(b));
    m.advance(static_cast<uint8_t>(b));
  }
  if (!m.accepts()) return std::nullopt;
  return text;
}

TEST(Regex, AgreesWithStdRegexOnRandomStrings) {
  const std::vector<std::pair<std::string, std::string>> cases = {  // pattern, alphabet
      {"abc", "abc"},
      {"a|b|cd", "abcd"},
      {"(ab)*c", "abc"},
      {"a+b?c*", "abc"},
      {"[a-c]{2,3}", "abcd"},
      {"[^a-c]x", "abcdx1 "},
      {"\\d+(\\.\\d{1,2})?", "0123.a"},
      {"\\w+@\\w+\\.(com|org)", "ab_1@.comorgx"},
      {"\\s*-?\\d{1,3}\\s*", " \t\n-1234x"},
      {"(a|ab)(c|bcd)(d*)", "abcd"},
      {"x{3}|y{0,2}z", "xyz"},
      {"[\\d\\-]+", "12-ab"},
      {"(?:foo|bar)+baz", "fobarz"},
      {"^[A-Z][a-z]*( [A-Z][a-z]*)*$", "AbcZ z"},
      {"a.c", "abc\n."},
      {"[.]\\.", ".a"},
      {"(?<year>\\d{2})-(?P<m>\\d)", "12-3"},
      {"\\x41\\u0042[\\x43-\\x45]", "ABCDEF"},
      {"(a{1,2}b){2}", "ab"},
      {"[\\w.+-]+", "a.+-_ !"},
  };
  std::mt19937 rng(7);
  for (const auto& [pattern, alphabet] : cases) {
    const auto g = compile_regex(pattern);
    const std::regex re(pattern.find("(?P<") == std::string::npos ? pattern : std::regex_replace(pattern, std::regex("\\(\\?P?<\\w+>"), "("),
                        std::regex::ECMAScript);
    int matched = 0;
    for (int i = 0; i < 3000; ++i) {
      std::string s;
      const size_t len = rng() % 10;
      for (size_t k = 0; k < len; ++k) s.push_back(alphabet[rng() % alphabet.size()]);
      const bool want = std::regex_match(s, re);
      matched += want;
      EXPECT_EQ(accepts(g, s), want) << "/" << pattern << "/ on '" << s << "'";
    }
    for (int i = 0; i < 300; ++i) {
      const auto s = walk(g, rng, 40);
      if (s) {
        EXPECT_TRUE(std::regex_match(*s, re)) << "/" << pattern << "/ wrote '" << *s << "'";
        ++matched;
      }
    }
    EXPECT_GT(matched, 0) << pattern;
  }
}

TEST(Regex, UnicodeLiteralsAndClasses) {
  const auto g = compile_regex("caf\xc3\xa9 [\xce\xb1-\xcf\x89]+ [^a]");
  EXPECT_TRUE(accepts(g, "caf\xc3\xa9 \xce\xb1\xce\xb2 \xe2\x82\xac"));  // café αβ €
  EXPECT_FALSE(accepts(g, "caf\xc3\xa9 a b"));
  EXPECT_FALSE(accepts(g, "caf\xc3\xa9 \xce\xb1 a"));
  EXPECT_FALSE(accepts(g, "caf\xc3\xa9 \xce\xb1 \xed\xa0\x80"));  // a surrogate is not UTF-8
}

TEST(Regex, UnsupportedFeaturesAreNamed) {
  auto message = [](const std::string& p) {
    try {
      compile_regex(p);
    } catch (const InvalidRequest& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(message("(a)\\1").find("backreferences"), std::string::npos);
  EXPECT_NE(message("a(?=b)").find("lookaround"), std::string::npos);
  EXPECT_NE(message("\\bword").find("word boundaries"), std::string::npos);
  EXPECT_NE(message("(?i)abc").find("inline flags"), std::string::npos);
  EXPECT_NE(message("(a*)*").find("empty string"), std::string::npos);
  EXPECT_NE(message("a{2000}").find("above 1000"), std::string::npos);
  EXPECT_NE(message("(ab").find("missing ')'"), std::string::npos);
  EXPECT_NE(message("a^b").find("'^'"), std::string::npos);
  EXPECT_NE(message("*a").find("nothing to repeat"), std::string::npos);
}

// A catastrophic regex for backtracking matchers is linear here: the matcher keeps a set of
// positions, not a backtracking stack.
TEST(Regex, CatastrophicPatternsStayFast) {
  const auto g = compile_regex("(a|aa)+b|(x+x+)+y");
  GrammarMatcher m(g);
  EXPECT_TRUE(m.advance(std::string(2000, 'a')));
  EXPECT_FALSE(m.accepts());
  EXPECT_TRUE(m.advance(std::string_view("b")));
  EXPECT_TRUE(m.accepts());
  GrammarMatcher x(g);
  EXPECT_TRUE(x.advance(std::string(2000, 'x')));
  EXPECT_FALSE(x.advance(std::string_view("z")));
}

}  // namespace
}  // namespace ferrum::structured
