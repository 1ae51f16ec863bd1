#include "structured/regex.h"

#include <map>
#include <string>

#include "core/error.h"
#include "structured/char_set.h"

namespace ferrum::structured {

namespace {

constexpr int kMaxRepeat = 1000;      // {m,n} bounds unroll into rules
constexpr size_t kMaxRules = 100000;  // a bound on compile time and memory
constexpr int kMaxGroupDepth = 100;

using Sym = Grammar::Symbol;
using Seq = std::vector<Sym>;

CharSet digits() { return CharSet::range('0', '9'); }
CharSet word() {
  CharSet s = CharSet::range('0', '9');
  s.add('a', 'z');
  s.add('A', 'Z');
  s.add('_', '_');
  return s;
}
CharSet space() {
  CharSet s = CharSet::range('\t', '\r');  // \t \n \v \f \r
  s.add(' ', ' ');
  return s;
}

class RegexParser {
 public:
  RegexParser(Grammar& g, std::string_view p, const RegexOptions& o) : g_(g), p_(p), opt_(o), chars_(g, o.json_string) {}

  uint32_t parse() {
    const uint32_t r = alternation(0);
    if (pos_ < p_.size()) fail("unbalanced ')'");
    return r;
  }

 private:
  [[noreturn]] void fail(const std::string& what) const {
    throw InvalidRequest("regex '" + std::string(p_) + "' at offset " + std::to_string(pos_) + ": " + what);
  }
  bool at_end() const { return pos_ >= p_.size(); }
  char peek() const { return at_end() ? '\0' : p_[pos_]; }

  uint32_t new_rule() {
    if (g_.num_rules() > kMaxRules) fail("too large (it unrolls into more than " + std::to_string(kMaxRules) + " rules)");
    return g_.add_rule();
  }

  // alternative ('|' alternative)*, as one rule.
  uint32_t alternation(int depth) {
    if (depth > kMaxGroupDepth) fail("groups nest too deep");
    const uint32_t r = new_rule();
    while (true) {
      bool nullable = false;
      g_.add_alternative(r, branch(depth, nullable));
      nullable_[r] = nullable_[r] || nullable;
      if (peek() != '|') break;
      ++pos_;
    }
    return r;
  }

  Seq any_text() {  // .* for unanchored sides of a search
    const uint32_t star = new_rule();
    g_.add_alternative(star, {});
    g_.add_alternative(star, {chars_.symbol(CharSet::any()), Grammar::rule(star)});
    return {Grammar::rule(star)};
  }

  Seq branch(int depth, bool& nullable) {
    Seq seq;
    nullable = true;
    const bool top = depth == 0;
    bool anchored_start = false, anchored_end = false;
    if (peek() == '^') {
      if (!top) fail("'^' is supported only at the start of the pattern or of a top-level alternative");
      anchored_start = true;
      ++pos_;
    }
    while (!at_end() && peek() != '|' && peek() != ')') {
      if (peek() == '$') {
        ++pos_;
        if (!top || !(at_end() || peek() == '|')) fail("'$' is supported only at the end of the pattern or of a top-level alternative");
        anchored_end = true;
        break;
      }
      if (peek() == '^') fail("'^' is supported only at the start of the pattern or of a top-level alternative");
      bool piece_nullable = false;
      Seq piece = quantified(depth, piece_nullable);
      nullable = nullable && piece_nullable;
      seq.insert(seq.end(), piece.begin(), piece.end());
    }
    if (top && opt_.search) {
      if (!anchored_start) {
        Seq pre = any_text();
        seq.insert(seq.begin(), pre.begin(), pre.end());
      }
      if (!anchored_end) {
        Seq post = any_text();
        seq.insert(seq.end(), post.begin(), post.end());
      }
    }
    return seq;
  }

  // Reads {m}, {m,} or {m,n} at pos_ when it is one; otherwise leaves pos_ (a literal '{').
  bool braces(int& lo, int& hi) {
    size_t i = pos_ + 1;
    auto number = [&](int& out) {
      const size_t start = i;
      long v = 0;
      while (i < p_.size() && p_[i] >= '0' && p_[i] <= '9') {
        v = v * 10 + (p_[i++] - '0');
        if (v > 1000000) v = 1000000;
      }
      out = static_cast<int>(v);
      return i > start;
    };
    if (!number(lo)) return false;
    hi = lo;
    if (i < p_.size() && p_[i] == ',') {
      ++i;
      if (!number(hi)) hi = -1;
    }
    if (i >= p_.size() || p_[i] != '}') return false;
    pos_ = i + 1;
    return true;
  }

  Seq quantified(int depth, bool& nullable) {
    Seq atom_seq = atom(depth, nullable);
    while (!at_end()) {
      int lo = 0, hi = 0;
      const char c = peek();
      if (c == '?') lo = 0, hi = 1, ++pos_;
      else if (c == '*') lo = 0, hi = -1, ++pos_;
      else if (c == '+') lo = 1, hi = -1, ++pos_;
      else if (c == '{' && braces(lo, hi)) {
      } else break;
      if (peek() == '?') ++pos_;  // lazy: the same language
      else if (peek() == '+') fail("possessive quantifiers are not supported");
      if (hi >= 0 && hi < lo) fail("a {m,n} with n < m");
      if (lo > kMaxRepeat || hi > kMaxRepeat) fail("repetition counts above " + std::to_string(kMaxRepeat) + " are not supported");
      atom_seq = repeat(std::move(atom_seq), nullable, lo, hi);
      nullable = nullable || lo == 0;
    }
    return atom_seq;
  }

  Seq repeat(Seq x, bool x_nullable, int lo, int hi) {
    if (hi < 0 && x_nullable)
      fail("an unbounded repetition of something that can match the empty string (e.g. (a*)*) is not supported");
    return repeat_symbols(g_, std::move(x), lo, hi, [this] { return new_rule(); });
  }

  Seq atom(int depth, bool& nullable) {
    nullable = false;
    const char c = peek();
    if (c == '(') {
      ++pos_;
      if (peek() == '?') {
        ++pos_;
        if (peek() == ':') {
          ++pos_;
        } else if (peek() == '<' && pos_ + 1 < p_.size() && p_[pos_ + 1] != '=' && p_[pos_ + 1] != '!') {
          skip_group_name('>');
        } else if (peek() == 'P' && pos_ + 1 < p_.size() && p_[pos_ + 1] == '<') {
          ++pos_;
          skip_group_name('>');
        } else if (peek() == '=' || peek() == '!' || peek() == '<') {
          fail("lookaround assertions are not supported");
        } else {
          fail("inline flags and other (?...) groups are not supported");
        }
      }
      const uint32_t r = alternation(depth + 1);
      if (peek() != ')') fail("missing ')'");
      ++pos_;
      nullable = nullable_[r];
      return {Grammar::rule(r)};
    }
    if (c == '[') return {chars_.symbol(char_class())};
    if (c == '.') {
      ++pos_;
      CharSet s = CharSet::any().minus(CharSet::single('\n')).minus(CharSet::single('\r'));
      return {chars_.symbol(s)};
    }
    if (c == '*' || c == '+' || c == '?') fail(std::string("nothing to repeat before '") + c + "'");
    if (c == '\\') return {chars_.symbol(escape(false))};
    return {chars_.symbol(CharSet::single(literal_codepoint()))};
  }

  void skip_group_name(char close) {
    ++pos_;  // '<'
    while (!at_end() && peek() != close) ++pos_;
    if (at_end()) fail("unterminated group name");
    ++pos_;
  }

  uint32_t literal_codepoint() {
    uint32_t cp = 0;
    if (!next_utf8(p_, pos_, cp)) fail("the pattern is not valid UTF-8");
    return cp;
  }

  uint32_t hex(int n) {
    if (pos_ + n > p_.size()) fail("a truncated hex escape");
    uint32_t v = 0;
    for (int k = 0; k < n; ++k) {
      const char h = p_[pos_++];
      const int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : h >= 'A' && h <= 'F' ? h - 'A' + 10 : -1;
      if (d < 0) fail("a bad hex escape");
      v = v * 16 + static_cast<uint32_t>(d);
    }
    return v;
  }

  // After a backslash (pos_ at it). in_class: \b is a backspace there.
  CharSet escape(bool in_class) {
    ++pos_;
    if (at_end()) fail("a trailing backslash");
    const char c = p_[pos_++];
    switch (c) {
      case 'd': return digits();
      case 'D': return digits().complement();
      case 'w': return word();
      case 'W': return word().complement();
      case 's': return space();
      case 'S': return space().complement();
      case 'n': return CharSet::single('\n');
      case 't': return CharSet::single('\t');
      case 'r': return CharSet::single('\r');
      case 'f': return CharSet::single('\f');
      case 'v': return CharSet::single('\v');
      case '0': return CharSet::single(0);
      case 'x': return CharSet::single(hex(2));
      case 'u': return CharSet::single(hex(4));
      case 'b':
        if (in_class) return CharSet::single('\b');
        fail("word boundaries (\\b) are not supported");
      case 'B': fail("word boundaries (\\B) are not supported");
      default: break;
    }
    if (c >= '1' && c <= '9') fail("backreferences are not supported");
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) fail(std::string("the escape \\") + c + " is not supported");
    --pos_;
    return CharSet::single(literal_codepoint());  // escaped punctuation or character
  }

  CharSet char_class() {
    ++pos_;  // '['
    bool negate = false;
    if (peek() == '^') {
      negate = true;
      ++pos_;
    }
    CharSet set;
    bool first = true;
    while (true) {
      if (at_end()) fail("missing ']'");
      if (peek() == ']' && !first) break;
      if (peek() == ']') fail("an empty class '[]' is not supported");
      first = false;
      if (p_.compare(pos_, 2, "[:") == 0) fail("POSIX classes ([:alpha:]) are not supported");
      CharSet lo_set;
      bool single = true;
      uint32_t lo = 0;
      if (peek() == '\\') {
        lo_set = escape(true);
        single = lo_set.ranges().size() == 1 && lo_set.ranges()[0].first == lo_set.ranges()[0].second;
        lo = lo_set.empty() ? 0 : lo_set.ranges()[0].first;
      } else {
        lo = literal_codepoint();
        lo_set = CharSet::single(lo);
      }
      if (single && peek() == '-' && pos_ + 1 < p_.size() && p_[pos_ + 1] != ']') {
        ++pos_;
        uint32_t hi = 0;
        if (peek() == '\\') {
          CharSet h = escape(true);
          if (h.ranges().size() != 1 || h.ranges()[0].first != h.ranges()[0].second) fail("a class range ends in a class escape");
          hi = h.ranges()[0].first;
        } else {
          hi = literal_codepoint();
        }
        if (hi < lo) fail("a class range out of order");
        set.add(lo, hi);
      } else {
        set.add(lo_set);
      }
    }
    ++pos_;  // ']'
    return negate ? set.complement() : set;
  }

  Grammar& g_;
  std::string_view p_;
  RegexOptions opt_;
  CharSymbols chars_;
  size_t pos_ = 0;
  std::map<uint32_t, bool> nullable_;  // alternation rule -> whether it can match ""
};

}  // namespace

uint32_t add_regex(Grammar& g, std::string_view pattern, const RegexOptions& options) {
  return RegexParser(g, pattern, options).parse();
}

std::shared_ptr<const Grammar> compile_regex(std::string_view pattern) {
  auto g = std::make_shared<Grammar>();
  g->set_root(add_regex(*g, pattern, {}));
  g->finalize();
  return g;
}

}  // namespace ferrum::structured
