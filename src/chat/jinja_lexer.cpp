#include "chat/jinja_lexer.h"

#include <cstring>

#include "core/error.h"

#include "core/utf8.h"

namespace ferrum::chat::jinja {
namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }


class Lexer {
 public:
  Lexer(std::string src, const LexerOptions& opt) : src_(std::move(src)), opt_(opt) {}

  std::vector<Token> run() {
    bool line_starting = true;
    while (pos_ < src_.size()) {
      size_t start = find_tag(pos_);
      if (start == std::string::npos) {
        emit_text(src_.substr(pos_));
        pos_ = src_.size();
        break;
      }
      std::string text = src_.substr(pos_, start - pos_);
      char kind = src_[start + 1];  // '{', '%' or '#'
      char sign = start + 2 < src_.size() ? src_[start + 2] : 0;
      if (sign == '-') {
        size_t end = text.size();
        while (end > 0 && is_space(text[end - 1])) --end;
        text.resize(end);
      } else if (sign != '+' && opt_.lstrip_blocks && kind != '{') {
        size_t nl = text.rfind('\n');
        size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if (l_pos > 0 || line_starting) {
          if (text.find_first_not_of(" \t", l_pos) == std::string::npos) text.resize(l_pos);
        }
      }
      count_lines(pos_, start);
      emit_text(text);
      pos_ = start + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (kind == '#') {
        size_t end = src_.find("#}", pos_);
        if (end == std::string::npos) fail("template syntax error: unterminated comment (line {})", line_);
        bool strip = end > pos_ && src_[end - 1] == '-';
        bool keep = end > pos_ && src_[end - 1] == '+';
        count_lines(pos_, end);
        pos_ = end + 2;
        line_starting = after_tag(strip, !keep && opt_.trim_blocks);
        continue;
      }
      if (kind == '%' && try_raw()) {
        line_starting = last_consumed_newline_;
        continue;
      }
      bool block = kind == '%';
      tokens_.push_back({block ? TokenType::BlockBegin : TokenType::VarBegin, "", line_});
      line_starting = lex_tag(block);
    }
    tokens_.push_back({TokenType::Eof, "", line_});
    return std::move(tokens_);
  }

 private:
  size_t find_tag(size_t from) const {
    size_t p = from;
    while ((p = src_.find('{', p)) != std::string::npos) {
      if (p + 1 < src_.size() && (src_[p + 1] == '{' || src_[p + 1] == '%' || src_[p + 1] == '#')) return p;
      ++p;
    }
    return std::string::npos;
  }

  void count_lines(size_t from, size_t to) {
    for (size_t i = from; i < to && i < src_.size(); ++i)
      if (src_[i] == '\n') ++line_;
  }

  void emit_text(const std::string& text) {
    if (!text.empty()) tokens_.push_back({TokenType::Text, text, line_});
  }

  // Whitespace handling after a tag end; returns whether what it consumed ended a line.
  bool after_tag(bool strip_after, bool trim_newline) {
    size_t begin = pos_;
    if (strip_after) {
      while (pos_ < src_.size() && is_space(src_[pos_])) ++pos_;
    } else if (trim_newline && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
    count_lines(begin, pos_);
    last_consumed_newline_ = pos_ > begin && src_[pos_ - 1] == '\n';
    return last_consumed_newline_;
  }

  // {% raw %}...{% endraw %}: everything in between is literal text.
  bool try_raw() {
    size_t p = pos_;
    while (p < src_.size() && is_space(src_[p])) ++p;
    if (src_.compare(p, 3, "raw") != 0) return false;
    p += 3;
    while (p < src_.size() && is_space(src_[p])) ++p;
    bool strip_after_open = false;
    if (src_.compare(p, 3, "-%}") == 0) {
      strip_after_open = true;
      p += 3;
    } else if (src_.compare(p, 2, "%}") == 0) {
      p += 2;
    } else {
      return false;
    }
    pos_ = p;
    after_tag(strip_after_open, opt_.trim_blocks);
    // Find {%[-+]? endraw [-+]?%}
    size_t search = pos_;
    while (true) {
      size_t open = src_.find("{%", search);
      if (open == std::string::npos) fail("template syntax error: missing endraw (line {})", line_);
      size_t q = open + 2;
      char sign = q < src_.size() ? src_[q] : 0;
      if (sign == '-' || sign == '+') ++q;
      while (q < src_.size() && is_space(src_[q])) ++q;
      if (src_.compare(q, 6, "endraw") != 0) {
        search = open + 2;
        continue;
      }
      q += 6;
      while (q < src_.size() && is_space(src_[q])) ++q;
      bool strip_after = src_.compare(q, 3, "-%}") == 0;
      if (!strip_after && src_.compare(q, 2, "%}") != 0) fail("template syntax error: bad endraw (line {})", line_);
      std::string text = src_.substr(pos_, open - pos_);
      if (sign == '-') {
        while (!text.empty() && is_space(text.back())) text.pop_back();
      } else if (sign != '+' && opt_.lstrip_blocks) {
        size_t nl = text.rfind('\n');
        size_t l_pos = nl == std::string::npos ? 0 : nl + 1;
        if (nl != std::string::npos && text.find_first_not_of(" \t", l_pos) == std::string::npos) text.resize(l_pos);
      }
      count_lines(pos_, q);
      emit_text(text);
      pos_ = q + (strip_after ? 3 : 2);
      after_tag(strip_after, opt_.trim_blocks);
      return true;
    }
  }

  // Lexes expression tokens up to the tag end; returns whether the consumed end ended a line.
  bool lex_tag(bool block) {
    int depth = 0;
    const char* end_plain = block ? "%}" : "}}";
    while (true) {
      while (pos_ < src_.size() && is_space(src_[pos_])) {
        if (src_[pos_] == '\n') ++line_;
        ++pos_;
      }
      if (pos_ >= src_.size()) fail("template syntax error: unexpected end of template, tag not closed (line {})", line_);
      if (depth == 0) {
        bool minus = src_[pos_] == '-' && src_.compare(pos_ + 1, 2, end_plain) == 0;
        bool plus = src_[pos_] == '+' && block && src_.compare(pos_ + 1, 2, end_plain) == 0;
        if (minus || plus || src_.compare(pos_, 2, end_plain) == 0) {
          pos_ += (minus || plus) ? 3 : 2;
          tokens_.push_back({block ? TokenType::BlockEnd : TokenType::VarEnd, "", line_});
          return after_tag(minus, block && !plus && opt_.trim_blocks);
        }
      }
      char c = src_[pos_];
      if (c == '\'' || c == '"') {
        lex_string(c);
      } else if (is_digit(c)) {
        lex_number();
      } else if (is_name_start(c)) {
        size_t b = pos_;
        while (pos_ < src_.size() && (is_name_start(src_[pos_]) || is_digit(src_[pos_]))) ++pos_;
        tokens_.push_back({TokenType::Name, src_.substr(b, pos_ - b), line_});
      } else {
        static const char* two[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* t : two)
          if (src_.compare(pos_, 2, t) == 0) op = t;
        if (op.empty()) {
          if (!std::strchr("+-*/%~<>=()[]{},.:|;!", c))
            fail("template syntax error: unexpected character '{}' (line {})", c, line_);
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if (op == ")" || op == "]" || op == "}") --depth;
        pos_ += op.size();
        tokens_.push_back({TokenType::Operator, op, line_});
      }
    }
  }

  void lex_string(char quote) {
    size_t p = pos_ + 1;
    std::string out;
    int start_line = line_;
    while (true) {
      if (p >= src_.size()) fail("template syntax error: unterminated string (line {})", start_line);
      char c = src_[p];
      if (c == quote) break;
      if (c == '\n') ++line_;
      if (c != '\\') {
        out += c;
        ++p;
        continue;
      }
      if (p + 1 >= src_.size()) fail("template syntax error: unterminated string (line {})", start_line);
      char e = src_[p + 1];
      p += 2;
      switch (e) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\n': break;
        case 'x': case 'u': case 'U': {
          size_t n = e == 'x' ? 2 : e == 'u' ? 4 : 8;
          if (p + n > src_.size()) fail("template syntax error: bad escape in string (line {})", line_);
          uint32_t cp = 0;
          for (size_t i = 0; i < n; ++i) {
            char h = src_[p + i];
            int d = is_digit(h) ? h - '0' : (h >= 'a' && h <= 'f') ? h - 'a' + 10 : (h >= 'A' && h <= 'F') ? h - 'A' + 10 : -1;
            if (d < 0) fail("template syntax error: bad escape in string (line {})", line_);
            cp = cp * 16 + uint32_t(d);
          }
          if (cp > 0x10FFFF) fail("template syntax error: bad escape in string (line {})", line_);
          append_utf8(out, cp);
          p += n;
          break;
        }
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = uint32_t(e - '0');
            for (int i = 0; i < 2 && p < src_.size() && src_[p] >= '0' && src_[p] <= '7'; ++i) cp = cp * 8 + uint32_t(src_[p++] - '0');
            append_utf8(out, cp);
          } else {
            out += '\\';  // Python keeps unknown escapes as they are
            out += e;
          }
      }
    }
    pos_ = p + 1;
    tokens_.push_back({TokenType::String, out, start_line});
  }

  void lex_number() {
    size_t b = pos_;
    auto digits = [&] {
      while (pos_ < src_.size() && (is_digit(src_[pos_]) || (src_[pos_] == '_' && pos_ + 1 < src_.size() && is_digit(src_[pos_ + 1])))) ++pos_;
    };
    digits();
    bool is_float = false;
    if (pos_ + 1 < src_.size() && src_[pos_] == '.' && is_digit(src_[pos_ + 1])) {
      ++pos_;
      digits();
      is_float = true;
    }
    if (pos_ < src_.size() && (src_[pos_] == 'e' || src_[pos_] == 'E')) {
      size_t save = pos_;
      ++pos_;
      if (pos_ < src_.size() && (src_[pos_] == '+' || src_[pos_] == '-')) ++pos_;
      if (pos_ < src_.size() && is_digit(src_[pos_])) {
        digits();
        is_float = true;
      } else {
        pos_ = save;
      }
    }
    std::string text;
    for (size_t i = b; i < pos_; ++i)
      if (src_[i] != '_') text += src_[i];
    tokens_.push_back({is_float ? TokenType::Float : TokenType::Integer, text, line_});
  }

  std::string src_;
  LexerOptions opt_;
  size_t pos_ = 0;
  int line_ = 1;
  bool last_consumed_newline_ = false;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> tokenize(const std::string& source, const LexerOptions& options) {
  // jinja2 normalizes newlines in template data and drops one trailing newline.
  std::string src;
  src.reserve(source.size());
  for (size_t i = 0; i < source.size(); ++i) {
    if (source[i] == '\r') {
      src += '\n';
      if (i + 1 < source.size() && source[i + 1] == '\n') ++i;
    } else {
      src += source[i];
    }
  }
  if (!options.keep_trailing_newline && !src.empty() && src.back() == '\n') src.pop_back();
  return Lexer(std::move(src), options).run();
}

}  // namespace ferrum::chat::jinja
