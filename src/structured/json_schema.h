// JSON grammars: any JSON object (response_format json_object) and a core subset of JSON
// Schema compiled into a byte grammar. Output is compact (no whitespace between tokens).
//
// Supported keywords: type (one or a list of object, array, string, number, integer,
// boolean, null), properties, required, additionalProperties (true or false), items, enum,
// const, anyOf, minLength / maxLength (strings), minItems / maxItems (arrays); annotations (title, description, default,
// examples, $schema, $id, $comment) are ignored. Any other keyword is an InvalidRequest that
// names it. Objects are generated with their listed properties only, in the listed order
// (required ones always, optional ones maybe): every such output is valid whether or not
// additionalProperties allows more. Numbers have at most 16 integer digits, 16 fraction
// digits and a 2-digit exponent, so that sampling cannot write digits forever.
#pragma once
#include <memory>

#include "core/json.h"
#include "structured/grammar.h"

namespace ferrum::structured {

// Any JSON object, compact.
std::shared_ptr<const Grammar> json_object_grammar();

// Throws InvalidRequest naming the unsupported keywords (with their JSON pointer) or the
// malformed part of the schema.
std::shared_ptr<const Grammar> compile_json_schema(const ordered_json& schema);

}  // namespace ferrum::structured
