// The structured-output parameters of a request, compiled into SamplingParams::grammar
// through the shared grammar cache (structured/grammar_cache.h):
//   response_format: {"type": "text" | "json_object" | "json_schema", "json_schema": {"schema": ...}}
//   vLLM's guided_json (schema object or its JSON text), guided_regex (full match),
//   guided_choice (list of strings: the output is one of them), guided_grammar (GBNF), and
//   the newer structured_outputs: {json | regex | choice | grammar | json_object: true}.
//   White space in JSON output: compact unless any_whitespace is true (top level or in
//   structured_outputs; vLLM's structured_outputs.disable_any_whitespace false means the same).
// At most one constraint per request; a second one, or a malformed one, is a 400 naming it.
#pragma once
#include <memory>
#include <string>

#include "core/json.h"
#include "engine/sampling_params.h"
#include "structured/tool_call_grammar.h"

namespace ferrum::server {

void parse_structured_output(const ordered_json& body, SamplingParams& p);

// tool_choice "required" (only empty; up to kMaxParallelToolCalls calls, or one without
// parallel calls) or a named function (one call), in the model's tool-call syntax.
std::shared_ptr<const structured::Grammar> tool_choice_grammar(structured::ToolCallSyntax syntax, const ordered_json& tools,
                                                               const std::string& only, bool parallel = true);

}  // namespace ferrum::server
