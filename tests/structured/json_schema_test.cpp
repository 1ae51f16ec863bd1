// JSON Schema beyond the core: $ref and recursion, oneOf/allOf, prefixItems, number and
// integer bounds (checked exhaustively against the bounds), patterns, formats, white space.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "core/error.h"
#include "core/json.h"
#include "structured/grammar.h"
#include "structured/json_schema.h"

namespace ferrum::structured {
namespace {

bool accepts(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  GrammarMatcher m(g);
  return m.advance(text) && m.accepts();
}

std::shared_ptr<const Grammar> schema(const std::string& text, JsonGrammarOptions o = {}) {
  return compile_json_schema(ordered_json::parse(text), o);
}

TEST(JsonSchemaRefs, DefsDefinitionsAndRecursion) {
  auto tree = schema(R"({"$defs":{"node":{"type":"object","properties":{"v":{"type":"integer"},
      "kids":{"type":"array","items":{"$ref":"#/$defs/node"}}},"required":["v"],"additionalProperties":false}},
      "$ref":"#/$defs/node"})");
  EXPECT_TRUE(accepts(tree, R"({"v":1})"));
  EXPECT_TRUE(accepts(tree, R"({"v":1,"kids":[{"v":2,"kids":[]},{"v":3,"kids":[{"v":4}]}]})"));
  EXPECT_FALSE(accepts(tree, R"({"v":1,"kids":[{"w":2}]})"));
  auto old = schema(R"({"definitions":{"s":{"type":"string","maxLength":2}},"type":"array","items":{"$ref":"#/definitions/s"}})");
  EXPECT_TRUE(accepts(old, R"(["ab","c"])"));
  EXPECT_FALSE(accepts(old, R"(["abc"])"));
  // The root itself, recursively: a list nests lists.
  auto nest = schema(R"({"type":"array","items":{"$ref":"#"},"maxItems":2})");
  EXPECT_TRUE(accepts(nest, "[[],[[]]]"));
  EXPECT_FALSE(accepts(nest, "[[],[],[]]"));
  // $ref beside other keywords: merged like allOf.
  auto both = schema(R"({"$defs":{"p":{"type":"object","properties":{"a":{"type":"integer"}}}},
      "$ref":"#/$defs/p","required":["a"],"description":"x"})");
  EXPECT_FALSE(accepts(both, "{}"));
  EXPECT_TRUE(accepts(both, R"({"a":3})"));
}

TEST(JsonSchemaComposition, OneOfAsAnyOfAndAllOfMerged) {
  auto one = schema(R"({"oneOf":[{"type":"integer"},{"type":"string","maxLength":1}]})");
  EXPECT_TRUE(accepts(one, "12"));
  EXPECT_TRUE(accepts(one, "\"x\""));
  EXPECT_FALSE(accepts(one, "\"xy\""));
  auto all = schema(R"({"allOf":[{"type":"object","properties":{"a":{"type":"string"}},"required":["a"]},
      {"properties":{"b":{"type":"boolean"}},"required":["b"]}]})");
  EXPECT_TRUE(accepts(all, R"({"a":"","b":true})"));
  EXPECT_FALSE(accepts(all, R"({"a":""})"));
  // additionalProperties false keeps only the names that branch lists.
  auto closed = schema(R"({"allOf":[{"properties":{"a":{"type":"integer"}},"additionalProperties":false},
      {"properties":{"b":{"type":"integer"}}}]})");
  EXPECT_TRUE(accepts(closed, R"({"a":1})"));
  EXPECT_FALSE(accepts(closed, R"({"a":1,"b":2})"));
}

TEST(JsonSchemaArrays, PrefixItems) {
  auto pair = schema(R"({"type":"array","prefixItems":[{"type":"string"},{"type":"integer"}],"items":false})");
  EXPECT_TRUE(accepts(pair, R"(["a",1])"));
  EXPECT_FALSE(accepts(pair, R"(["a",1,2])"));
  EXPECT_FALSE(accepts(pair, R"([1,"a"])"));
  auto more = schema(R"({"type":"array","prefixItems":[{"const":"x"}],"items":{"type":"boolean"},"maxItems":3})");
  EXPECT_TRUE(accepts(more, R"(["x"])"));
  EXPECT_TRUE(accepts(more, R"(["x",true,false])"));
  EXPECT_FALSE(accepts(more, R"(["x",true,false,true])"));
  EXPECT_FALSE(accepts(more, R"(["x",1])"));
  auto counted = schema(R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3})");
  EXPECT_FALSE(accepts(counted, "[1]"));
  EXPECT_TRUE(accepts(counted, "[1,2]"));
  EXPECT_TRUE(accepts(counted, "[1,2,3]"));
  EXPECT_FALSE(accepts(counted, "[1,2,3,4]"));
}

// Every integer in [-1200, 1200] is accepted exactly when it lies within the bounds.
TEST(JsonSchemaNumbers, IntegerRangesAreExact) {
  const std::vector<std::string> bounds = {
      R"("minimum":0)", R"("minimum":-7,"maximum":13)", R"("minimum":13,"maximum":271)", R"("maximum":-100)",
      R"("exclusiveMinimum":9,"exclusiveMaximum":1000)", R"("minimum":-999,"maximum":-10)", R"("minimum":1.5,"maximum":99.5)",
      R"("minimum":5,"maximum":5)"};
  for (const auto& b : bounds) {
    const ordered_json s = ordered_json::parse("{\"type\":\"integer\"," + b + "}");
    auto g = compile_json_schema(s);
    for (int v = -1200; v <= 1200; ++v) {
      bool ok = true;
      if (s.contains("minimum")) ok = ok && v >= s["minimum"].get<double>();
      if (s.contains("maximum")) ok = ok && v <= s["maximum"].get<double>();
      if (s.contains("exclusiveMinimum")) ok = ok && v > s["exclusiveMinimum"].get<double>();
      if (s.contains("exclusiveMaximum")) ok = ok && v < s["exclusiveMaximum"].get<double>();
      EXPECT_EQ(accepts(g, std::to_string(v)), ok) << b << " " << v;
    }
    EXPECT_FALSE(accepts(g, "-0"));
    EXPECT_FALSE(accepts(g, "007"));
  }
}

// Random walks through bounded number grammars only write numbers within the bounds.
TEST(JsonSchemaNumbers, BoundedNumbersStayInBounds) {
  const std::vector<std::pair<double, double>> ranges = {{0, 1}, {-1, 1}, {-2.5, 7.25}, {100, 1000}, {-50, -3}, {0, 0.5}};
  std::mt19937 rng(3);
  for (const auto& [lo, hi] : ranges) {
    for (const bool exclusive : {false, true}) {
      ordered_json s = {{"type", "number"}};
      s[exclusive ? "exclusiveMinimum" : "minimum"] = lo;
      s[exclusive ? "exclusiveMaximum" : "maximum"] = hi;
      std::shared_ptr<const Grammar> g;
      try {
        g = compile_json_schema(s);
      } catch (const InvalidRequest&) {
        EXPECT_TRUE(exclusive && hi - lo <= 1) << s.dump();  // no integer and no whole unit inside
        continue;
      }
      for (int walk = 0; walk < 300; ++walk) {
        GrammarMatcher m(g);
        std::string text;
        while (m.can_continue() && !(m.accepts() && rng() % 4 == 0)) {
          const ByteSet next = m.next_bytes();
          std::vector<int> options;
          for (int b = 0; b < 256; ++b)
            if (next.test(b)) options.push_back(b);
          const int b = options[rng() % options.size()];
          text.push_back(static_cast<char>(b));
          ASSERT_TRUE(m.advance(static_cast<uint8_t>(b)));
        }
        if (!m.accepts()) continue;
        const double v = std::stod(text);
        EXPECT_TRUE(exclusive ? v > lo && v < hi : v >= lo && v <= hi) << s.dump() << " wrote " << text;
      }
    }
  }
}

TEST(JsonSchemaStrings, PatternsAndFormats) {
  auto code = schema(R"({"type":"string","pattern":"^[A-Z]{3}-\\d{2,4}$"})");
  EXPECT_TRUE(accepts(code, R"("ABC-12")"));
  EXPECT_TRUE(accepts(code, R"("XYZ-1234")"));
  EXPECT_FALSE(accepts(code, R"("ABC-1")"));
  EXPECT_FALSE(accepts(code, R"("xABC-12")"));
  auto loose = schema(R"({"type":"string","pattern":"ab+c"})");  // unanchored: anywhere
  EXPECT_TRUE(accepts(loose, R"("zzabbbc!")"));
  EXPECT_FALSE(accepts(loose, R"("ac")"));
  auto quote = schema(R"({"type":"string","pattern":"^a\"b\\\\$"})");  // a"b\ escaped in JSON
  EXPECT_TRUE(accepts(quote, R"("a\"b\\")"));
  EXPECT_FALSE(accepts(quote, "\"a\"b\\\""));
  auto date = schema(R"({"type":"string","format":"date"})");
  EXPECT_TRUE(accepts(date, R"("2024-02-28")"));
  EXPECT_FALSE(accepts(date, R"("2024-02-30")"));
  EXPECT_FALSE(accepts(date, R"("2024-13-01")"));
  auto dt = schema(R"({"type":"string","format":"date-time"})");
  EXPECT_TRUE(accepts(dt, R"("2024-06-30T23:59:59+02:00")"));
  EXPECT_FALSE(accepts(dt, R"("2024-06-30T23:59:59.5+02:00")"));  // no fractions: some validators refuse them
  EXPECT_TRUE(accepts(dt, R"("1999-12-31T00:00:00Z")"));
  EXPECT_FALSE(accepts(dt, R"("1999-12-31 00:00:00Z")"));
  auto uuid = schema(R"({"type":"string","format":"uuid"})");
  EXPECT_TRUE(accepts(uuid, R"("123e4567-e89b-42d3-a456-426614174000")"));
  EXPECT_FALSE(accepts(uuid, R"("123e4567e89b42d3a456426614174000")"));
  auto email = schema(R"({"type":"string","format":"email"})");
  EXPECT_TRUE(accepts(email, R"("ada.lovelace@example.co.uk")"));
  EXPECT_FALSE(accepts(email, R"("ada@")"));
  EXPECT_TRUE(accepts(schema(R"({"format":"time"})"), R"("08:30:00Z")"));
  EXPECT_TRUE(accepts(schema(R"({"format":"ipv4"})"), R"("192.168.0.255")"));
  EXPECT_FALSE(accepts(schema(R"({"format":"ipv4"})"), R"("192.168.0.256")"));
}

TEST(JsonSchemaWhitespace, CompactByDefaultAnyWhenAsked) {
  const std::string s = R"({"type":"object","properties":{"a":{"type":"array","items":{"type":"integer"}}},"required":["a"]})";
  const std::string spaced = "{ \"a\" : [1, 2,\n\t3] }";
  EXPECT_TRUE(accepts(schema(s), R"({"a":[1,2,3]})"));
  EXPECT_FALSE(accepts(schema(s), spaced));
  JsonGrammarOptions o;
  o.any_whitespace = true;
  EXPECT_TRUE(accepts(schema(s, o), spaced));
  EXPECT_TRUE(accepts(schema(s, o), R"({"a":[1,2,3]})"));
  EXPECT_FALSE(accepts(schema(s, o), "{\"a\":[1" + std::string(kMaxWhitespace + 1, ' ') + "]}"));  // bounded
  EXPECT_TRUE(accepts(json_object_grammar(o), "{ \"x\" : { } }"));
}

// A pattern of many stacked optional quantifiers (found by fuzz_json_schema): its expansion
// reaches the same stacks by 2^n paths, which ran for minutes; remembering the stacks it has
// seen makes each expansion once per distinct stack.
TEST(JsonSchemaStrings, StackedOptionalQuantifiersExpandOnce) {
  const ordered_json schema = ordered_json::parse(
      R"({"type": "object", "properties": {"phone": {"type": "string", "pattern": "^\\+\\???????????????????????????????????????{6}-\\d{4}$"}}, "required": ["phone"]})");
  const auto g = compile_json_schema(schema);
  EXPECT_TRUE(accepts(g, R"({"phone":"+-1234"})"));
  EXPECT_TRUE(accepts(g, R"({"phone":"+??????-1234"})"));
  EXPECT_FALSE(accepts(g, R"({"phone":"+???????-1234"})"));
  EXPECT_FALSE(accepts(g, R"({"phone":"+??-123"})"));
}

}  // namespace
}  // namespace ferrum::structured
