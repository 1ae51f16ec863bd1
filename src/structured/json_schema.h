// JSON grammars: any JSON object (response_format json_object) and a subset of JSON Schema
// compiled into a byte grammar.
//
// Supported: type (one or a list), properties, required, additionalProperties (true or
// false), items, prefixItems, minItems / maxItems, enum, const, anyOf, oneOf (as anyOf: a
// grammar cannot enforce "exactly one", as in xgrammar and vLLM; the output matches at least
// one branch), allOf (the branches are merged: types intersected, properties and required
// joined, additionalProperties false wins; the same keyword with different values in two
// branches is refused), $ref to the document itself (#, #/$defs/..., #/definitions/..., any
// local JSON pointer; recursion allowed), minLength / maxLength, pattern (regex.h, may match
// anywhere unless anchored), format (date, time, date-time, uuid, email, ipv4, uri, hostname:
// fixed regexes, stricter than the RFCs), minimum / maximum / exclusiveMinimum /
// exclusiveMaximum. Annotations (title, description, default, examples, $schema, $id,
// $comment, readOnly, writeOnly, deprecated) are ignored. Any other keyword is an
// InvalidRequest that names it with its JSON pointer.
//
// What is written: objects have their listed properties only, in the listed order (required
// ones always, optional ones maybe); every such output is valid whatever additionalProperties
// says. Numbers have at most 16 integer digits, 16 fraction digits and a 2-digit exponent,
// so that sampling cannot write digits forever. Integer ranges are exact (number_range.h).
// Numbers with bounds are written without exponent: integers exactly in range, and
// fractions I.F only where the whole interval [I, I+1] lies in range (so maximum 2.5 allows
// 2 but not 2.2). Strings with `pattern` or `format` cannot also have minLength/maxLength,
// and their characters exclude control characters other than \n \r \t.
#pragma once
#include <memory>

#include "core/json.h"
#include "structured/grammar.h"

namespace ferrum::structured {

struct JsonGrammarOptions {
  // Compact output (no white space between tokens) by default. With any_whitespace, up to
  // kMaxWhitespace spaces, tabs and newlines may follow '{' '[' ',' ':' and precede '}' ']'
  // (bounded so that a model cannot pad forever).
  bool any_whitespace = false;
};
constexpr int kMaxWhitespace = 24;

// Any JSON object.
std::shared_ptr<const Grammar> json_object_grammar(const JsonGrammarOptions& options = {});

// Throws InvalidRequest naming the unsupported keywords (with their JSON pointer) or the
// malformed part of the schema.
std::shared_ptr<const Grammar> compile_json_schema(const ordered_json& schema, const JsonGrammarOptions& options = {});

// Adds the rules of `schema` to g (for grammars that embed JSON, such as tool calls) and
// returns the rule of its values.
uint32_t add_json_schema(Grammar& g, const ordered_json& schema, const JsonGrammarOptions& options = {});

}  // namespace ferrum::structured
