// Unit tests of tokenizer stages against behaviour fixed by HF tokenizers' own documentation
// and tests (and Oniguruma / Unicode for regex classes), for the features that the five real
// vocabularies of test_hf_parity.cpp do not exercise.
#include <gtest/gtest.h>

#include <atomic>
#include <fstream>
#include <thread>

#include "core/error.h"
#include "core/json.h"
#include "tokenizer/hf_tokenizer.h"
#include "tokenizer/regex.h"
#include "tokenizer/tokenizer_json.h"
#include "tokenizer/unicode_text.h"

using ferrum::json;
using namespace ferrum::tok;

namespace {

std::vector<std::string> pre_tokenize(const json& spec, const std::string& text) {
  auto p = make_pre_tokenizer(spec);
  std::vector<PreToken> words{{text, true}};
  p->pre_tokenize(words);
  std::vector<std::string> out;
  for (auto& w : words) out.push_back(w.text);
  return out;
}

using Strings = std::vector<std::string>;

TEST(Regex, WhitespaceClassIsUnicodeWhiteSpaceLikeOniguruma) {
  Regex re(R"(\s+)");
  EXPECT_EQ(re.find_all("a\u0085b").size(), 1u);       // NEL is White_Space
  EXPECT_EQ(re.find_all("a\u3000\u00a0b").size(), 1u);
  EXPECT_TRUE(re.find_all("a\ufeffb").empty());         // BOM is not (JavaScript says it is)
  EXPECT_TRUE(re.find_all("a\u180eb").empty());         // nor U+180E (PCRE2's \h says it is)
  Regex negated(R"([^\s\p{L}]+)");
  EXPECT_EQ(negated.find_all("a\u180e\ufeff b").at(0), (std::pair<size_t, size_t>{1, 7}));
}

TEST(Regex, CaseInsensitiveGroupUsesUnicodeCaseFolding) {
  Regex re(R"((?i:'s|'t))");
  EXPECT_EQ(re.find_all("'S").size(), 1u);
  EXPECT_EQ(re.find_all("'\u017f").size(), 1u);  // LATIN SMALL LETTER LONG S folds to s
}

TEST(Utf8, LossyRepairReplacesMaximalSubparts) {
  EXPECT_EQ(utf8_lossy("a\xF0\x9F\x98"), "a\uFFFD");           // truncated 4-byte sequence
  EXPECT_EQ(utf8_lossy("\xC0\x80"), "\uFFFD\uFFFD");           // overlong: two bad bytes
  EXPECT_EQ(utf8_lossy("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");  // surrogate
  EXPECT_EQ(utf8_lossy("ok \uFFFD"), "ok \uFFFD");
}

TEST(PreTokenizers, MetaspaceSplitsLikeHf) {
  const json ms = {{"type", "Metaspace"}, {"replacement", "\u2581"}, {"prepend_scheme", "always"}, {"split", true}};
  EXPECT_EQ(pre_tokenize(ms, "Hey friend!"), (Strings{"\u2581Hey", "\u2581friend!"}));
  EXPECT_EQ(pre_tokenize(ms, "Hey   friend!"), (Strings{"\u2581Hey", "\u2581", "\u2581", "\u2581friend!"}));
  json never = ms;
  never["prepend_scheme"] = "never";
  EXPECT_EQ(pre_tokenize(never, "Hey"), (Strings{"Hey"}));
}

TEST(PreTokenizers, DigitsWhitespacePunctuation) {
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", true}}, "Hey 123 friend!"),
            (Strings{"Hey ", "1", "2", "3", " friend!"}));
  EXPECT_EQ(pre_tokenize({{"type", "Digits"}, {"individual_digits", false}}, "Hey 123 friend!"),
            (Strings{"Hey ", "123", " friend!"}));
  EXPECT_EQ(pre_tokenize({{"type", "Whitespace"}}, "Hey man!! How are you?"),
            (Strings{"Hey", "man", "!!", "How", "are", "you", "?"}));
  EXPECT_EQ(pre_tokenize({{"type", "WhitespaceSplit"}}, "Hey man!\tok"), (Strings{"Hey", "man!", "ok"}));
  EXPECT_EQ(pre_tokenize({{"type", "Punctuation"}}, "Hey friend!     How are you?!?"),
            (Strings{"Hey friend", "!", "     How are you", "?", "!", "?"}));
}

TEST(PreTokenizers, SplitBehaviours) {
  auto split = [](const char* behavior, bool invert) {
    return json{{"type", "Split"}, {"pattern", {{"String", "-"}}}, {"behavior", behavior}, {"invert", invert}};
  };
  const std::string text = "the-final--countdown";
  EXPECT_EQ(pre_tokenize(split("Removed", false), text), (Strings{"the", "final", "countdown"}));
  EXPECT_EQ(pre_tokenize(split("Isolated", false), text), (Strings{"the", "-", "final", "-", "-", "countdown"}));
  EXPECT_EQ(pre_tokenize(split("MergedWithPrevious", false), text), (Strings{"the-", "final-", "-", "countdown"}));
  EXPECT_EQ(pre_tokenize(split("MergedWithNext", false), text), (Strings{"the", "-final", "-", "-countdown"}));
  EXPECT_EQ(pre_tokenize(split("Contiguous", false), text), (Strings{"the", "-", "final", "--", "countdown"}));
  EXPECT_EQ(pre_tokenize(split("Removed", true), text), (Strings{"-", "-", "-"}));
}

// A tiny tokenizer.json with a word-level BPE vocabulary, for added-token flags and decoders.
json tiny_tokenizer(json added_tokens, json decoder = nullptr) {
  json vocab = json::object();
  const char* tokens[] = {"<unk>", "a", "b", "c", " ", "ab", "abc", "<0x41>", "\u2581", "\u2581a"};
  for (int i = 0; i < 10; ++i) vocab[tokens[i]] = i;
  return {{"model",
           {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b", "ab c", "\u2581 a"})},
            {"unk_token", "<unk>"}, {"fuse_unk", true}, {"byte_fallback", true}}},
          {"added_tokens", added_tokens},
          {"normalizer", nullptr},
          {"pre_tokenizer", nullptr},
          {"post_processor", nullptr},
          {"decoder", decoder}};
}

json added(const char* content, int id, bool lstrip, bool rstrip, bool single_word) {
  return {{"content", content}, {"id", id},         {"lstrip", lstrip},    {"rstrip", rstrip},
          {"single_word", single_word}, {"normalized", false}, {"special", true}};
}

TEST(AddedTokens, StripAndSingleWordFlags) {
  ferrum::HfTokenizer lstrip(tiny_tokenizer(json::array({added("<m>", 20, true, false, false)})), nullptr);
  EXPECT_EQ(lstrip.encode("a  <m> b"), (std::vector<int32_t>{1, 20, 4, 2}));
  ferrum::HfTokenizer rstrip(tiny_tokenizer(json::array({added("<m>", 20, false, true, false)})), nullptr);
  EXPECT_EQ(rstrip.encode("a  <m> b"), (std::vector<int32_t>{1, 4, 4, 20, 2}));
  ferrum::HfTokenizer single(tiny_tokenizer(json::array({added("c", 20, false, false, true)})), nullptr);
  EXPECT_EQ(single.encode("ab c"), (std::vector<int32_t>{5, 4, 20}));
  EXPECT_EQ(single.encode("abc"), (std::vector<int32_t>{6}));  // inside a word: not the added token
  // Leftmost-longest: "<mm>" wins over "<m" at the same start.
  ferrum::HfTokenizer longest(
      tiny_tokenizer(json::array({added("<m", 20, false, false, false), added("<mm>", 21, false, false, false)})),
      nullptr);
  EXPECT_EQ(longest.encode("a<mm>"), (std::vector<int32_t>{1, 21}));
}

TEST(BpeModel, UnknownCharactersFuseAndBytesFallBack) {
  ferrum::HfTokenizer tok(tiny_tokenizer(json::array()), nullptr);
  // 'A' exists only as the byte token <0x41>; 'é' has no byte tokens -> fused unk.
  EXPECT_EQ(tok.encode("aAbc\u00e9\u00e9a"), (std::vector<int32_t>{1, 7, 2, 3, 0, 1}));
}

TEST(Decoders, ByteFallbackFuseStripMetaspace) {
  json seq = {{"type", "Sequence"},
              {"decoders", json::array({{{"type", "Replace"}, {"pattern", {{"String", "\u2581"}}}, {"content", " "}},
                                        {{"type", "ByteFallback"}},
                                        {{"type", "Fuse"}},
                                        {{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}}})}};
  ferrum::HfTokenizer tok(tiny_tokenizer(json::array(), seq), nullptr);
  EXPECT_EQ(tok.decode(std::vector<int32_t>{9, 7, 8, 2}), "aA b");
  ferrum::HfTokenizer ms(tiny_tokenizer(json::array(), {{"type", "Metaspace"}, {"replacement", "\u2581"},
                                                         {"prepend_scheme", "always"}}),
                         nullptr);
  EXPECT_EQ(ms.decode(std::vector<int32_t>{9, 8, 1}), "a a");
}

TEST(Loading, UnsupportedPiecesFailClearly) {
  json t = tiny_tokenizer(json::array());
  t["normalizer"] = {{"type", "Precompiled"}};
  EXPECT_THROW(ferrum::HfTokenizer(t, nullptr), ferrum::Error);
  t = tiny_tokenizer(json::array());
  t["model"]["type"] = "Unigram";
  EXPECT_THROW(ferrum::HfTokenizer(t, nullptr), ferrum::Error);
  EXPECT_THROW(ferrum::Tokenizer::from_dir("/nonexistent"), ferrum::Error);
  t = tiny_tokenizer(json::array());
  t["model"]["vocab"]["huge"] = 2000000000;
  EXPECT_THROW(ferrum::HfTokenizer(t, nullptr), ferrum::Error);
  t = tiny_tokenizer(json::array());
  t["model"]["merges"] = json::array({"a"});
  EXPECT_THROW(ferrum::HfTokenizer(t, nullptr), ferrum::Error);
  t = tiny_tokenizer(json::array());
  t["model"]["vocab"] = json::array({1, 2});
  EXPECT_THROW(ferrum::HfTokenizer(t, nullptr), ferrum::Error);
  t = tiny_tokenizer(json::array());
  t["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  EXPECT_THROW(ferrum::HfTokenizer(t, nullptr), ferrum::Error);
  // A Strip decoder's counts beyond any integer (the fuzzer's 8.9e24 cast to int was undefined).
  for (const json& bad : {json(8.88889e24), json(-1), json(1.5), json("1")}) {
    json strip = {{"type", "Strip"}, {"content", " "}, {"start", bad}, {"stop", 0}};
    EXPECT_THROW(ferrum::HfTokenizer(tiny_tokenizer(json::array(), strip), nullptr), ferrum::Error) << bad.dump();
  }
  // tokenizer_config.json asking for a BOS the vocabulary lacks.
  EXPECT_THROW(ferrum::HfTokenizer(tiny_tokenizer(json::array()), {{"add_bos_token", true}, {"bos_token", "<s>"}}),
               ferrum::Error);
}

TEST(Loading, TruncatedFileFailsWithItsName) {
  const std::string path = std::string(FERRUM_BINARY_DIR) + "/truncated_tokenizer.json";
  {
    std::ofstream out(path);
    out << R"({"model": {"type": "BPE", "vocab": {"a": 0)";
  }
  try {
    ferrum::Tokenizer::from_files(path);
    FAIL() << "expected an error";
  } catch (const ferrum::Error& e) {
    EXPECT_NE(std::string(e.what()).find("truncated_tokenizer.json"), std::string::npos) << e.what();
  }
}

TEST(Encode, InvalidUtf8IsReadAsReplacementCharacters) {
  ferrum::HfTokenizer tok(tiny_tokenizer(json::array()), nullptr);
  // U+FFFD is unknown to the tiny vocabulary and has no byte tokens: one fused unk.
  EXPECT_EQ(tok.encode("a\xff\xfe"), (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(tok.decode(std::vector<int32_t>{1, 999999, -5}), "a");  // unknown ids are skipped
}

}  // namespace

namespace {

TEST(Concurrency, EncodeFromManyThreadsAgrees) {
  const ferrum::HfTokenizer tok(tiny_tokenizer(json::array({added("<m>", 20, false, false, false)})), nullptr);
  const std::vector<std::string> texts = {"abc abc", "a<m>bcc", "ccc bbb aaa", "\u00e9A<m>", "ab ab ab c"};
  std::vector<std::vector<int32_t>> expected;
  for (const auto& t : texts) expected.push_back(tok.encode(t));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int k = 0; k < 4; ++k)
    threads.emplace_back([&] {
      for (int round = 0; round < 500; ++round)
        for (size_t i = 0; i < texts.size(); ++i)
          if (tok.encode(texts[i]) != expected[i]) ++mismatches;
    });
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

}  // namespace

namespace {

TEST(TokenizerJson, SaxReaderCollectsVocabAndMergesAndKeepsTheRest) {
  const std::string text = R"({"version": "1.0", "added_tokens": [{"id": 3, "content": "<s>"}],
    "model": {"type": "BPE", "vocab": {"a": 0, "b": 1, "ab": 2}, "merges": ["a b", ["a", "b"]],
              "nested": {"vocab": {"x": 1}}},
    "decoder": {"type": "Fuse"}})";
  const TokenizerJson t = parse_tokenizer_json(text, "test.json");
  EXPECT_TRUE(t.has_vocab && t.has_merges);
  EXPECT_EQ(t.vocab, (BpeVocab{{"a", 0}, {"b", 1}, {"ab", 2}}));
  EXPECT_EQ(t.merges, (BpeMerges{{"a", "b"}, {"a", "b"}}));
  EXPECT_TRUE(t.doc.at("model").at("vocab").is_null());
  EXPECT_EQ(t.doc.at("model").at("nested").at("vocab").at("x"), 1);  // only model.vocab is taken
  EXPECT_EQ(t.doc.at("decoder").at("type"), "Fuse");
  EXPECT_EQ(t.doc.at("added_tokens").at(0).at("content"), "<s>");
  EXPECT_THROW(parse_tokenizer_json(R"({"model": {"vocab": {"a": "zero"}}})", "x"), ferrum::Error);
  EXPECT_THROW(parse_tokenizer_json(R"({"model": {"merges": [["a", "b", "c"]]}})", "x"), ferrum::Error);
  EXPECT_THROW(parse_tokenizer_json(R"({"model": {"vocab": {"a": 0})", "x"), ferrum::Error);
}

}  // namespace
