// GBNF grammars as llama.cpp writes them (vLLM's guided_grammar): rules `name ::= ...`,
// alternation |, grouping ( ), postfix ? * + {m} {m,} {m,n}, string literals with escapes
// (\n \r \t \\ \" \xHH \uHHHH \UHHHHHHHH), character classes [a-z] [^...] with the same
// escapes, '.' (any character), and # comments; the start rule is `root`. A rule may span
// lines. Token references (<...>, <[id]>) and anything else are an InvalidRequest naming
// the line; so are undefined rules and left recursion.
#pragma once
#include <memory>
#include <string_view>

#include "structured/grammar.h"

namespace ferrum::structured {

std::shared_ptr<const Grammar> compile_gbnf(std::string_view text);

}  // namespace ferrum::structured
