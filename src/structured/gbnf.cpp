#include "structured/gbnf.h"

#include <map>
#include <string>

#include "core/error.h"
#include "structured/char_set.h"

namespace ferrum::structured {

namespace {

constexpr int kMaxRepeat = 1000;
constexpr size_t kMaxRules = 100000;
constexpr int kMaxNesting = 100;

using Seq = std::vector<Grammar::Symbol>;

bool is_name_char(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_'; }

class GbnfParser {
 public:
  GbnfParser(Grammar& g, std::string_view text) : g_(g), t_(text), chars_(g, false) {}

  void parse() {
    skip_space(true);
    while (!at_end()) {
      const std::string name = read_name();
      if (name.empty()) fail("expected a rule name");
      skip_space(false);
      if (t_.compare(pos_, 3, "::=") != 0) fail("expected '::=' after '" + name + "'");
      pos_ += 3;
      const uint32_t r = rule_of(name);
      if (defined_.count(name)) fail("rule '" + name + "' is defined twice");
      defined_[name] = line_;
      alternatives_into(r, 0);
      skip_space(true);
    }
    for (const auto& [name, id] : rules_)
      if (!defined_.count(name)) throw InvalidRequest("guided_grammar: rule '" + name + "' is used but not defined");
    if (!rules_.count("root")) throw InvalidRequest("guided_grammar: no 'root' rule");
    g_.set_root(rules_["root"]);
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw InvalidRequest("guided_grammar line " + std::to_string(line_) + ": " + what);
  }
  bool at_end() const { return pos_ >= t_.size(); }
  char peek() const { return at_end() ? '\0' : t_[pos_]; }

  // Skips blanks and comments; newlines too when `newlines`, or when the line goes on after
  // them (a rule continues on the next line unless that line starts a new rule).
  void skip_space(bool newlines) {
    while (!at_end()) {
      const char c = peek();
      if (c == '#') {
        while (!at_end() && peek() != '\n') ++pos_;
      } else if (c == ' ' || c == '\t' || c == '\r') {
        ++pos_;
      } else if (c == '\n' && (newlines || !starts_rule(pos_ + 1))) {
        ++pos_;
        ++line_;
      } else {
        break;
      }
    }
  }

  // Whether a new rule (`name ::=`) begins after position i's blank lines and comments.
  bool starts_rule(size_t i) const {
    while (i < t_.size()) {
      const char c = t_[i];
      if (c == ' ' || c == '\t' || c == '\r' || c == '\n') ++i;
      else if (c == '#') {
        while (i < t_.size() && t_[i] != '\n') ++i;
      } else break;
    }
    if (i >= t_.size()) return true;  // the end also ends the rule
    size_t j = i;
    while (j < t_.size() && is_name_char(t_[j])) ++j;
    if (j == i) return false;
    while (j < t_.size() && (t_[j] == ' ' || t_[j] == '\t')) ++j;
    return t_.compare(j, 3, "::=") == 0;
  }

  std::string read_name() {
    const size_t start = pos_;
    while (!at_end() && is_name_char(peek())) ++pos_;
    return std::string(t_.substr(start, pos_ - start));
  }

  uint32_t rule_of(const std::string& name) {
    if (auto it = rules_.find(name); it != rules_.end()) return it->second;
    return rules_[name] = new_rule(name);
  }

  uint32_t new_rule(std::string name = {}) {
    if (g_.num_rules() > kMaxRules) fail("the grammar is too large");
    return g_.add_rule(std::move(name));
  }

  // sequence ('|' sequence)* until the end of the rule or a ')'.
  void alternatives_into(uint32_t r, int depth) {
    if (depth > kMaxNesting) fail("groups nest too deep");
    while (true) {
      g_.add_alternative(r, sequence(depth));
      if (peek() != '|') break;
      ++pos_;
    }
  }

  Seq sequence(int depth) {
    Seq seq;
    while (true) {
      skip_space(false);
      if (at_end() || peek() == '|' || peek() == ')' || peek() == '\n') break;
      Seq item = primary(depth);
      skip_space(false);
      item = postfix(std::move(item));
      seq.insert(seq.end(), item.begin(), item.end());
    }
    return seq;
  }

  Seq postfix(Seq x) {
    while (!at_end()) {
      int lo = 0, hi = 0;
      const char c = peek();
      if (c == '?') lo = 0, hi = 1;
      else if (c == '*') lo = 0, hi = -1;
      else if (c == '+') lo = 1, hi = -1;
      else if (c == '{') {
        ++pos_;
        lo = number();
        hi = lo;
        if (peek() == ',') {
          ++pos_;
          skip_space(false);
          hi = peek() == '}' ? -1 : number();
        }
        skip_space(false);
        if (peek() != '}') fail("expected '}'");
        if (hi >= 0 && hi < lo) fail("a {m,n} with n < m");
      } else break;
      ++pos_;
      x = repeat_symbols(g_, std::move(x), lo, hi, [this] { return new_rule(); });
      skip_space(false);
    }
    return x;
  }

  int number() {
    skip_space(false);
    long v = 0;
    const size_t start = pos_;
    while (!at_end() && peek() >= '0' && peek() <= '9') {
      v = v * 10 + (peek() - '0');
      if (v > kMaxRepeat) fail("repetition counts above " + std::to_string(kMaxRepeat) + " are not supported");
      ++pos_;
    }
    if (pos_ == start) fail("expected a number");
    skip_space(false);
    return static_cast<int>(v);
  }

  Seq primary(int depth) {
    const char c = peek();
    if (c == '"') return literal();
    if (c == '[') return {chars_.symbol(char_class())};
    if (c == '.') {
      ++pos_;
      return {chars_.symbol(CharSet::any())};
    }
    if (c == '(') {
      ++pos_;
      const uint32_t r = new_rule();
      alternatives_into(r, depth + 1);
      skip_space(true);
      if (peek() != ')') fail("missing ')'");
      ++pos_;
      return {Grammar::rule(r)};
    }
    if (c == '<') fail("token references (<...>) are not supported");
    if (is_name_char(c)) return {Grammar::rule(rule_of(read_name()))};
    fail(std::string("unexpected '") + c + "'");
  }

  uint32_t hex(int n) {
    uint32_t v = 0;
    for (int k = 0; k < n; ++k) {
      const char h = peek();
      const int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
      if (d < 0) fail("a bad hex escape");
      v = v * 16 + static_cast<uint32_t>(d);
      ++pos_;
    }
    return v;
  }

  // One character of a literal or class, escapes decoded.
  uint32_t character() {
    if (at_end()) fail("unterminated literal or class");
    if (peek() == '\\') {
      ++pos_;
      const char e = peek();
      ++pos_;
      switch (e) {
        case 'n': return '\n';
        case 'r': return '\r';
        case 't': return '\t';
        case 'x': return hex(2);
        case 'u': return hex(4);
        case 'U': return hex(8);
        case '\\': case '"': case '[': case ']': case '-': case '^': return static_cast<uint8_t>(e);
        default: fail(std::string("unknown escape \\") + e);
      }
    }
    if (peek() == '\n') fail("a newline inside a literal or class");
    uint32_t cp = 0;
    if (!next_utf8(t_, pos_, cp)) fail("the grammar is not valid UTF-8");
    return cp;
  }

  Seq literal() {
    ++pos_;
    std::string bytes;
    while (peek() != '"') append_utf8(bytes, character());
    ++pos_;
    return g_.literal(bytes);
  }

  CharSet char_class() {
    ++pos_;
    bool negate = false;
    if (peek() == '^') {
      negate = true;
      ++pos_;
    }
    CharSet set;
    while (peek() != ']') {
      const uint32_t lo = character();
      uint32_t hi = lo;
      if (peek() == '-' && pos_ + 1 < t_.size() && t_[pos_ + 1] != ']') {
        ++pos_;
        hi = character();
        if (hi < lo) fail("a class range out of order");
      }
      set.add(lo, hi);
    }
    ++pos_;
    return negate ? set.complement() : set;
  }

  Grammar& g_;
  std::string_view t_;
  CharSymbols chars_;
  size_t pos_ = 0;
  int line_ = 1;
  std::map<std::string, uint32_t> rules_;
  std::map<std::string, int> defined_;
};

}  // namespace

std::shared_ptr<const Grammar> compile_gbnf(std::string_view text) {
  auto g = std::make_shared<Grammar>();
  GbnfParser(*g, text).parse();
  try {
    g->finalize();
  } catch (const InvalidRequest& e) {
    throw InvalidRequest(std::string("guided_grammar: ") + e.what());
  }
  return g;
}

}  // namespace ferrum::structured
