// The byte grammar and its JSON compilers: what is accepted, what is a valid prefix, and the
// errors for what is not supported. Random documents are checked against nlohmann's parser.
#include <gtest/gtest.h>

#include <random>
#include <regex>

#include "core/error.h"
#include "core/json.h"
#include "structured/grammar.h"
#include "structured/json_schema.h"

namespace ferrum::structured {
namespace {

// Whether the whole of `text` is a sentence; `alive` = every byte was allowed.
bool accepts(const std::shared_ptr<const Grammar>& g, std::string_view text, bool* alive = nullptr) {
  GrammarMatcher m(g);
  const bool ok = m.advance(text);
  if (alive) *alive = ok;
  return ok && m.accepts();
}

std::shared_ptr<const Grammar> schema(const char* text) { return compile_json_schema(ordered_json::parse(text)); }

TEST(Grammar, HandWrittenRulesWithRecursion) {
  // s ::= "(" s ")" s | ""   (balanced parentheses)
  auto g = std::make_shared<Grammar>();
  const uint32_t s = g->add_rule();
  auto seq = g->literal("(");
  seq.push_back(Grammar::rule(s));
  seq.push_back(g->literal(")")[0]);
  seq.push_back(Grammar::rule(s));
  g->add_alternative(s, seq);
  g->add_alternative(s, {});
  g->set_root(s);
  g->finalize();
  EXPECT_TRUE(accepts(g, ""));
  EXPECT_TRUE(accepts(g, "(()())()"));
  bool alive = false;
  EXPECT_FALSE(accepts(g, "(()", &alive));
  EXPECT_TRUE(alive);  // a valid prefix
  EXPECT_FALSE(accepts(g, "())", &alive));
  EXPECT_FALSE(alive);
  GrammarMatcher m(g);
  EXPECT_FALSE(m.advance(std::string_view("(x")));  // all or nothing
  EXPECT_TRUE(m.accepts());
}

TEST(Grammar, LeftRecursionIsRefusedWhenBuilt) {
  auto g = std::make_shared<Grammar>();
  const uint32_t s = g->add_rule("s");  // s ::= s "a" | "a"
  g->add_alternative(s, {Grammar::rule(s), g->literal("a")[0]});
  g->add_alternative(s, g->literal("a"));
  g->set_root(s);
  try {
    g->finalize();
    ADD_FAILURE() << "left recursion accepted";
  } catch (const InvalidRequest& e) {
    EXPECT_NE(std::string(e.what()).find("'s' is left-recursive"), std::string::npos) << e.what();
  }
  // Through a nullable rule: t ::= e t "b" | "b", e ::= "" | "x".
  auto h = std::make_shared<Grammar>();
  const uint32_t t = h->add_rule("t"), e = h->add_rule("e");
  h->add_alternative(t, {Grammar::rule(e), Grammar::rule(t), h->literal("b")[0]});
  h->add_alternative(t, h->literal("b"));
  h->add_alternative(e, {});
  h->add_alternative(e, h->literal("x"));
  h->set_root(t);
  EXPECT_THROW(h->finalize(), InvalidRequest);
}

TEST(Grammar, AlternativesThatCannotFinishAreDropped) {
  // r ::= "a" loop | "b";  loop ::= "c" loop   (loop never ends: only "b" is left)
  auto g = std::make_shared<Grammar>();
  const uint32_t r = g->add_rule(), loop = g->add_rule();
  g->add_alternative(r, {g->literal("a")[0], Grammar::rule(loop)});
  g->add_alternative(r, g->literal("b"));
  g->add_alternative(loop, {g->literal("c")[0], Grammar::rule(loop)});
  g->set_root(r);
  g->finalize();
  GrammarMatcher m(g);
  EXPECT_FALSE(m.next_bytes().test('a'));
  EXPECT_TRUE(m.next_bytes().test('b'));
}

TEST(Grammar, CopyIsASnapshotForRollback) {
  auto g = json_object_grammar();
  GrammarMatcher m(g);
  ASSERT_TRUE(m.advance(std::string_view("{\"a\":")));
  const GrammarMatcher saved = m;
  ASSERT_TRUE(m.advance(std::string_view("[1]}")));
  EXPECT_TRUE(m.accepts());
  m = saved;  // roll back
  EXPECT_FALSE(m.accepts());
  EXPECT_TRUE(m.advance(std::string_view("null}")));
  EXPECT_TRUE(m.accepts());
  EXPECT_FALSE(m.can_continue());
}

TEST(JsonObject, AcceptsCompactObjectsOnly) {
  auto g = json_object_grammar();
  for (const char* ok : {"{}", R"({"a":1})", R"({"a":[1,-2.5e-3,"x\u00e9\n",true,false,null,{"b":{}}],"":[]})",
                         "{\"k\":\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\"}"})
    EXPECT_TRUE(accepts(g, ok)) << ok;
  for (const char* bad : {"[]", "1", "{ }", R"({"a":})", R"({"a":01})", R"({"a":1,})", R"({a:1})",
                          "{\"a\":\"\xc0\x80\"}", "{\"a\":\"\xed\xa0\x80\"}", "{\"a\":\"\x01\"}", R"({"a":"\x"})"})
    EXPECT_FALSE(accepts(g, bad)) << bad;
  GrammarMatcher m(g);
  ASSERT_TRUE(m.advance(std::string_view("{\"a\":1}")));
  EXPECT_TRUE(m.accepts());
  EXPECT_FALSE(m.can_continue());  // the completion can stop here
}

// Random JSON documents: every compact dump is accepted, and a one-byte change is accepted
// exactly when nlohmann still parses an object without whitespace.
ordered_json random_value(std::mt19937& rng, int depth) {
  const int kind = static_cast<int>(rng() % (depth > 3 ? 5 : 7));
  switch (kind) {
    case 0: return nullptr;
    case 1: return rng() % 2 == 0;
    case 2: return static_cast<int64_t>(rng() % 2000) - 1000;
    case 3: return (static_cast<double>(rng() % 100000) - 50000) / 64.0;
    case 4: {
      std::string s;
      const char* pool[] = {"a", "Z", " ", "\"", "\\", "\n", "\xc3\xa9", "\xe2\x82\xac", "/", "\t"};
      for (int i = static_cast<int>(rng() % 6); i > 0; --i) s += pool[rng() % 10];
      return s;
    }
    case 5: {
      ordered_json a = ordered_json::array();
      for (int i = static_cast<int>(rng() % 4); i > 0; --i) a.push_back(random_value(rng, depth + 1));
      return a;
    }
    default: {
      ordered_json o = ordered_json::object();
      for (int i = static_cast<int>(rng() % 4); i > 0; --i) o["k" + std::to_string(rng() % 5)] = random_value(rng, depth + 1);
      return o;
    }
  }
}

TEST(JsonObject, AgreesWithNlohmannOnRandomDocuments) {
  auto g = json_object_grammar();
  std::mt19937 rng(7);
  const std::string alphabet = "{}[]\",:0123456789.eE+-tfrunlasx\\";
  int accepted_mutants = 0;
  for (int i = 0; i < 300; ++i) {
    ordered_json doc = ordered_json::object();
    for (int k = static_cast<int>(rng() % 4); k > 0; --k) doc["p" + std::to_string(k)] = random_value(rng, 0);
    const std::string text = doc.dump();
    ASSERT_TRUE(accepts(g, text)) << text;
    for (int j = 0; j < 5; ++j) {
      std::string mutant = text;
      mutant[rng() % mutant.size()] = alphabet[rng() % alphabet.size()];
      // The grammar bounds digit runs (16 digits, 2-digit exponents) on purpose: skip those.
      static const std::regex kLongNumber("[0-9]{17,}|[eE][+-]?[0-9]{3,}");
      if (std::regex_search(mutant, kLongNumber)) continue;
      bool parses = false;
      try {
        parses = ordered_json::parse(mutant).is_object();
      } catch (const std::exception&) {
      }
      EXPECT_EQ(accepts(g, mutant), parses) << mutant;
      accepted_mutants += parses;
    }
  }
  EXPECT_GT(accepted_mutants, 10);  // the comparison saw both outcomes
}

TEST(JsonSchema, ObjectPropertiesInOrderRequiredAndOptional) {
  auto g = schema(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},"c":{"type":"boolean"}},
                      "required":["b"],"additionalProperties":false})");
  for (const char* ok : {R"({"b":""})", R"({"a":-3,"b":"x"})", R"({"b":"x","c":true})", R"({"a":0,"b":"","c":false})"})
    EXPECT_TRUE(accepts(g, ok)) << ok;
  for (const char* bad : {"{}", R"({"a":1})", R"({"b":"x","a":1})", R"({"a":1.5,"b":""})", R"({"b":"","d":1})",
                          R"({,"b":""})", R"({"b":"",})"})
    EXPECT_FALSE(accepts(g, bad)) << bad;
}

TEST(JsonSchema, ScalarsEnumsConstAnyOfArrays) {
  EXPECT_TRUE(accepts(schema(R"({"type":"number"})"), "-0.5E+12"));
  EXPECT_FALSE(accepts(schema(R"({"type":"integer"})"), "1.0"));
  EXPECT_TRUE(accepts(schema(R"({"type":"number"})"), "-1234567890123456.1234567890123456e-99"));
  EXPECT_FALSE(accepts(schema(R"({"type":"integer"})"), "12345678901234567"));  // 17 digits
  EXPECT_FALSE(accepts(schema(R"({"type":"number"})"), "1e100"));
  EXPECT_TRUE(accepts(schema(R"({"type":["integer","null"]})"), "null"));
  auto e = schema(R"({"enum":["red","green",3,null]})");
  for (const char* ok : {"\"red\"", "\"green\"", "3", "null"}) EXPECT_TRUE(accepts(e, ok)) << ok;
  EXPECT_FALSE(accepts(e, "\"blue\""));
  EXPECT_TRUE(accepts(schema(R"({"const":{"x":[1,"y"]}})"), R"({"x":[1,"y"]})"));
  auto any = schema(R"({"anyOf":[{"type":"string"},{"type":"array","items":{"type":"integer"}}]})");
  EXPECT_TRUE(accepts(any, "[1,2,3]"));
  EXPECT_TRUE(accepts(any, "\"s\""));
  EXPECT_FALSE(accepts(any, "[\"s\"]"));
  auto closed = schema(R"({"type":"object","additionalProperties":false})");
  EXPECT_TRUE(accepts(closed, "{}"));
  EXPECT_FALSE(accepts(closed, R"({"a":1})"));
  EXPECT_TRUE(accepts(schema(R"({"type":"object"})"), R"({"a":{"b":[]}})"));
  EXPECT_TRUE(accepts(schema("true"), "[null]"));
}

TEST(JsonSchema, StringLengthsCountCharacters) {
  auto g = schema(R"({"type":"string","minLength":2,"maxLength":3})");
  EXPECT_FALSE(accepts(g, "\"a\""));
  EXPECT_TRUE(accepts(g, "\"ab\""));
  EXPECT_TRUE(accepts(g, "\"\xc3\xa9\\n\xe2\x82\xac\""));  // 3 characters, 7 bytes
  EXPECT_FALSE(accepts(g, "\"abcd\""));
  GrammarMatcher m(g);
  ASSERT_TRUE(m.advance(std::string_view("\"abc")));
  EXPECT_EQ(m.next_bytes().count(), 1u);  // only the closing quote
}

TEST(JsonSchema, ArrayItemCounts) {
  auto g = schema(R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3})");
  for (const char* bad : {"[]", "[1]", "[1,2,3,4]"}) EXPECT_FALSE(accepts(g, bad)) << bad;
  for (const char* ok : {"[1,2]", "[1,2,3]"}) EXPECT_TRUE(accepts(g, ok)) << ok;
  auto upto1 = schema(R"({"items":{"const":7},"maxItems":1})");
  EXPECT_TRUE(accepts(upto1, "[]"));
  EXPECT_TRUE(accepts(upto1, "[7]"));
  EXPECT_FALSE(accepts(upto1, "[7,7]"));
  EXPECT_TRUE(accepts(schema(R"({"type":"array","maxItems":0})"), "[]"));
  EXPECT_FALSE(accepts(schema(R"({"type":"array","maxItems":0})"), "[1]"));
  EXPECT_TRUE(accepts(schema(R"({"type":"array","minItems":1})"), "[1,[],{}]"));
  EXPECT_FALSE(accepts(schema(R"({"type":"array","minItems":1})"), "[]"));
}

TEST(JsonSchema, UnsupportedKeywordsAreNamedWithTheirPath) {
  auto message = [](const char* text) {
    try {
      compile_json_schema(ordered_json::parse(text));
    } catch (const InvalidRequest& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  auto m = message(R"({"type":"object","properties":{"when":{"type":"string","multipleOf":2,"uniqueItems":true}}})");
  EXPECT_NE(m.find("'multipleOf'"), std::string::npos) << m;
  EXPECT_NE(m.find("'uniqueItems'"), std::string::npos) << m;
  EXPECT_NE(m.find("/properties/when"), std::string::npos) << m;
  EXPECT_NE(message(R"({"$ref":"https://example.com/a.json"})").find("'$ref'"), std::string::npos);
  EXPECT_NE(message(R"({"$ref":"#/$defs/missing"})").find("points to nothing"), std::string::npos);
  EXPECT_NE(message(R"({"type":"string","format":"ipv6"})").find("'format' \"ipv6\""), std::string::npos);
  EXPECT_NE(message(R"({"type":"string","pattern":"(a)\\1"})").find("backreferences"), std::string::npos);
  EXPECT_NE(message(R"({"type":"string","pattern":"a","maxLength":3})").find("'pattern'"), std::string::npos);
  EXPECT_NE(message(R"({"type":"integer","minimum":5,"maximum":4})").find("within the bounds"), std::string::npos);
  EXPECT_NE(message(R"({"allOf":[{"type":"string"},{"type":"integer"}]})").find("no 'type' in common"), std::string::npos);
  EXPECT_NE(message(R"({"allOf":[{"minLength":1},{"minLength":2}]})").find("'minLength' different values"), std::string::npos);
  // A recursion that must go on forever has no finite output.
  EXPECT_NE(message(R"({"$defs":{"n":{"type":"object","properties":{"next":{"$ref":"#/$defs/n"}},"required":["next"]}},"$ref":"#/$defs/n"})")
                .find("no finite output"), std::string::npos);
  EXPECT_NE(message(R"({"anyOf":[{"$ref":"#"},{"type":"null"}]})").find("left-recursive"), std::string::npos);
  EXPECT_NE(message(R"({"type":"object","additionalProperties":{"type":"string"}})").find("additionalProperties"), std::string::npos);
  EXPECT_NE(message(R"({"type":"date"})").find("unknown type"), std::string::npos);
  EXPECT_NE(message(R"({"enum":[1],"type":"string"})").find("does not match"), std::string::npos);
  EXPECT_NE(message(R"({"type":"object","required":["x"]})").find("'x'"), std::string::npos);
  std::string deep = "true";
  for (int i = 0; i < 100; ++i) deep = R"({"type":"array","items":)" + deep + "}";
  EXPECT_NE(message(deep.c_str()).find("nested more than"), std::string::npos);
}

}  // namespace
}  // namespace ferrum::structured
