// GBNF grammars in llama.cpp's style (written for these tests): what each accepts and
// rejects, and the errors for what is not supported.
#include <gtest/gtest.h>

#include "core/error.h"
#include "structured/gbnf.h"
#include "structured/grammar.h"

namespace ferrum::structured {
namespace {

bool accepts(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  GrammarMatcher m(g);
  return m.advance(text) && m.accepts();
}

const char* kArithmetic = R"G(# integer arithmetic with precedence
root   ::= expr
expr   ::= term (("+" | "-") term)*
term   ::= factor (("*" | "/") factor)*
factor ::= number | "(" expr ")" | "-" factor
number ::= [0-9]+
)G";

const char* kJson = R"G(
root    ::= object
value   ::= object | array | string | number | ("true" | "false" | "null")
object  ::=
  "{" ws (
            string ":" ws value
    ("," ws string ":" ws value)*
  )? "}" ws
array   ::=
  "[" ws (
            value
    ("," ws value)*
  )? "]" ws
string  ::=
  "\"" (
    [^"\\\x7F\x00-\x1F] |
    "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4}) # escapes
  )* "\"" ws
number  ::= ("-"? ([0-9] | [1-9] [0-9]{0,15})) ("." [0-9]+)? ([eE] [-+]? [0-9] [1-9]{0,15})? ws
ws      ::= | " " | "\n" [ \t]{0,20}
)G";

const char* kList = R"G(root ::= item{1,3}
item ::= "- " [^\n]+ "\n"   # one line per item
)G";

TEST(Gbnf, Arithmetic) {
  auto g = compile_gbnf(kArithmetic);
  for (const char* ok : {"1", "1+2*3", "(1+2)*-3", "10/(2-3)*4", "--5"}) EXPECT_TRUE(accepts(g, ok)) << ok;
  for (const char* bad : {"", "1+", "(1", "1 + 2", "a", "1**2"}) EXPECT_FALSE(accepts(g, bad)) << bad;
}

TEST(Gbnf, Json) {
  auto g = compile_gbnf(kJson);
  for (const char* ok : {"{}", "{\"a\":1}", "{\"a\": [1, 2.5e3, \"x\\n\", true, null], \"b\": {}}", "{\"k\":\"\\u00e9\"}",
                         "{\"\xc3\xa9\": -0.5}"})
    EXPECT_TRUE(accepts(g, ok)) << ok;
  for (const char* bad : {"[]", "{\"a\"}", "{\"a\":01x}", "{\"a\":\"\x01\"}", "{'a':1}"}) EXPECT_FALSE(accepts(g, bad)) << bad;
}

TEST(Gbnf, ListWithBoundedRepetition) {
  auto g = compile_gbnf(kList);
  EXPECT_TRUE(accepts(g, "- milk\n"));
  EXPECT_TRUE(accepts(g, "- milk\n- eggs\n- flour\n"));
  EXPECT_FALSE(accepts(g, "- a\n- b\n- c\n- d\n"));
  EXPECT_FALSE(accepts(g, "- \n"));
  EXPECT_FALSE(accepts(g, "milk\n"));
}

TEST(Gbnf, ErrorsNameTheProblem) {
  auto message = [](const std::string& text) {
    try {
      compile_gbnf(text);
    } catch (const InvalidRequest& e) {
      return std::string(e.what());
    }
    return std::string("(no error)");
  };
  EXPECT_NE(message("root ::= <think> \"x\"").find("token references"), std::string::npos);
  EXPECT_NE(message("root ::= foo").find("'foo' is used but not defined"), std::string::npos);
  EXPECT_NE(message("start ::= \"a\"").find("no 'root'"), std::string::npos);
  EXPECT_NE(message("root ::= root \"a\" | \"a\"").find("left-recursive"), std::string::npos);
  EXPECT_NE(message("root ::= \"a\"\nroot ::= \"b\"").find("defined twice"), std::string::npos);
  EXPECT_NE(message("root ::= \"a\" ]").find("line 1"), std::string::npos);
  EXPECT_NE(message("root ::= x\nx ::= \"a\" x").find("no finite output"), std::string::npos);
}

}  // namespace
}  // namespace ferrum::structured
