// tool_choice "required" and a named function as a grammar: the model's own tool-call
// syntax, with each call's arguments valid against the tool's `parameters` schema (compact
// JSON, json_schema.h). The syntaxes are the ones src/chat/output_parser.h parses back:
//   Hermes (Qwen, Hermes):  <tool_call>\n{"name": "f", "arguments": {...}}\n</tool_call>
//                           calls separated by "\n"
//   Llama 3 JSON:           {"name": "f", "parameters": {...}}, calls separated by "; "
#pragma once
#include <memory>
#include <string>

#include "core/json.h"
#include "structured/grammar.h"

namespace ferrum::structured {

enum class ToolCallSyntax { Hermes, Llama3Json };

// The most calls tool_choice "required" allows with parallel_tool_calls (bounded, so that a
// model cannot call forever).
constexpr int kMaxParallelToolCalls = 8;

// tools: OpenAI's tools array (validated: objects with function.name). only: the one tool to
// call (exactly one call), or empty for tool_choice "required": 1 to max_calls calls to any
// of them. Throws InvalidRequest for an unknown `only` or an unsupported parameters schema.
std::shared_ptr<const Grammar> compile_tool_calls(ToolCallSyntax syntax, const ordered_json& tools, const std::string& only,
                                                  int max_calls = kMaxParallelToolCalls);

}  // namespace ferrum::structured
