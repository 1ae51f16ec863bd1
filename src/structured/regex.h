// Regular expressions (the subset common to ECMAScript and Python) compiled into the byte
// grammar: literals and escapes (\n \t \r \f \v \0 \xHH \uHHHH, escaped punctuation), classes
// with ranges and negation, \d \w \s \D \W \S, '.', groups ((?:...), named (?<n>...) and
// (?P<n>...)), alternation, ? * + {m} {m,} {m,n} (lazy forms mean the same language), and
// ^ / $ at the start / end of a top-level alternative. Anything else (backreferences,
// lookaround, \b, inline flags) is an InvalidRequest naming it.
//
// \s is the ASCII white space and '.' any character but \n and \r: for generation a subset of
// what a matcher accepts is always safe.
#pragma once
#include <memory>
#include <string_view>

#include "structured/grammar.h"

namespace ferrum::structured {

struct RegexOptions {
  // Characters as the inside of a JSON string writes them (see CharSymbols).
  bool json_string = false;
  // JSON Schema's `pattern`: the regex may match anywhere, so a side without its anchor
  // allows any text there. Otherwise the whole output must match (vLLM's guided_regex).
  bool search = false;
};

// Adds the rules for `pattern` to g and returns the rule that matches it.
uint32_t add_regex(Grammar& g, std::string_view pattern, const RegexOptions& options);

// A grammar whose sentences are exactly the strings `pattern` matches in full.
std::shared_ptr<const Grammar> compile_regex(std::string_view pattern);

}  // namespace ferrum::structured
