// Splits a template into text and tag tokens the way jinja2 does with transformers' settings
// (trim_blocks, lstrip_blocks, keep_trailing_newline off), and tag contents into expression
// tokens.
#pragma once
#include <string>
#include <vector>

namespace ferrum::chat::jinja {

enum class TokenType {
  Text,         // literal template text (raw blocks included)
  VarBegin,     // {{
  VarEnd,       // }}
  BlockBegin,   // {%
  BlockEnd,     // %}
  Name,
  String,       // value already unescaped
  Integer,
  Float,
  Operator,
  Eof,
};

struct Token {
  TokenType type;
  std::string value;
  int line;
};

struct LexerOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
};

// Throws ferrum::Error("syntax error ... line N") on unterminated tags, strings or comments.
std::vector<Token> tokenize(const std::string& source, const LexerOptions& options = {});

}  // namespace ferrum::chat::jinja
