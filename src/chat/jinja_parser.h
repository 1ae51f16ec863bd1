// Recursive-descent parser for the Jinja subset chat templates use, following jinja2's
// grammar and operator precedence.
#pragma once
#include <string>
#include <vector>

#include "chat/jinja_ast.h"
#include "chat/jinja_lexer.h"

namespace ferrum::chat::jinja {

// Throws ferrum::Error("template syntax error: ...") with the line of the offending token.
Body parse(const std::vector<Token>& tokens);

}  // namespace ferrum::chat::jinja
